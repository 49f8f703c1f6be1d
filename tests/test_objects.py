"""Signed objects: known answers, tampering, limits and strict decoding."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commons.model.errors import InvalidObject
from commons.model.identity import Identity
from commons.model.objects import (
    MAX_FUTURE_SECONDS,
    Document,
    PeerRecord,
    Profile,
    Retraction,
    SignedObject,
    content_from_fields,
    parse,
    sign,
)
from commons.service import Commons

VECTORS = json.loads((Path(__file__).parent / "data" / "vectors.json").read_text())
NOW = 1_800_000_000


def doc(identity: Identity, **overrides: object) -> Document:
    fields: dict[str, object] = {
        "author": identity.public_key,
        "created_at": NOW,
        "title": "Seed saving",
        "body": "Dry the seeds well before storing them.",
        "tags": ("garden",),
    }
    fields.update(overrides)
    return Document(**fields)  # type: ignore[arg-type]


# -- known answers ------------------------------------------------------------


def test_vector_key_derives_the_stated_public_key() -> None:
    key = Identity(bytes.fromhex(VECTORS["secret_key_seed"]))
    assert key.public_key.hex() == VECTORS["public_key"]


@pytest.mark.parametrize("vector", VECTORS["objects"], ids=lambda v: v["kind"])
def test_vectors_bytes_id_and_signature(vector: dict) -> None:
    key = Identity(bytes.fromhex(VECTORS["secret_key_seed"]))
    canonical = bytes.fromhex(vector["canonical_bytes_hex"])
    assert canonical.decode("utf-8") == vector["canonical_text"]
    # The id and signature are checked with hashlib and nacl directly, not our code.
    assert hashlib.sha256(canonical).hexdigest() == vector["id"]
    nacl.signing.VerifyKey(key.public_key).verify(
        bytes.fromhex(vector["id"]), bytes.fromhex(vector["sig"])
    )
    # Our encoder produces the same bytes from the fields, and the same signature.
    content = content_from_fields(vector["fields"])
    assert content.canonical_bytes() == canonical
    signed = sign(content, key)
    assert signed.id.hex() == vector["id"]
    assert signed.sig.hex() == vector["sig"]
    assert parse(vector["wire"], now=NOW).id.hex() == vector["id"]


def test_canonical_form_sorts_keys_and_escapes_like_rfc8785(alice: Identity) -> None:
    content = doc(alice, body='a "q" \\ \n\t\x0c\r é 😀', tags=())
    text = content.canonical_bytes().decode("utf-8")
    assert text.startswith('{"author":"')
    assert '"body":"a \\"q\\" \\\\ \\n\\t\\f\\r é 😀"' in text
    keys = list(json.loads(text))
    assert keys == sorted(keys)
    assert (
        " "
        not in text.replace("Seed saving", "").replace("Dry the seeds well", "").split('"body"')[0]
    )


# -- tampering ----------------------------------------------------------------


def test_every_flipped_byte_of_a_signed_object_is_refused(alice: Identity) -> None:
    signed = sign(doc(alice), alice)
    wire = signed.to_bytes()
    # The untouched bytes are accepted, so a refusal below is the flip's doing.
    assert parse(wire, now=NOW) == signed
    accepted = []
    for position in range(len(wire)):
        tampered = bytearray(wire)
        tampered[position] ^= 0x01
        assert bytes(tampered) != wire
        try:
            parse(bytes(tampered), now=NOW)
        except InvalidObject:
            continue
        accepted.append(position)
    assert accepted == [], f"flipped bytes at {accepted} were accepted"


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_any_tampered_byte_fails(position: int, mask: int) -> None:
    key = Identity(bytes(range(32)))
    wire = bytearray(sign(doc(key), key).to_bytes())
    wire[position % len(wire)] ^= mask
    with pytest.raises(InvalidObject):
        parse(bytes(wire), now=NOW)


def test_wrong_id_is_refused(alice: Identity) -> None:
    signed = sign(doc(alice), alice)
    other = sign(doc(alice, title="Other"), alice)
    forged = SignedObject(content=signed.content, id=other.id, sig=other.sig)
    with pytest.raises(InvalidObject, match="does not match"):
        parse(forged.to_bytes(), now=NOW)


def test_signature_by_another_key_is_refused(alice: Identity, bob: Identity) -> None:
    signed = sign(doc(alice), alice)
    forged = SignedObject(
        content=signed.content, id=signed.id, sig=bytes(bob.sign(signed.id).signature)
    )
    with pytest.raises(InvalidObject, match="not made by its author"):
        parse(forged.to_bytes(), now=NOW)


def test_cannot_sign_for_someone_else(alice: Identity, bob: Identity) -> None:
    with pytest.raises(InvalidObject, match="not the key"):
        sign(doc(alice), bob)


# -- limits and types ---------------------------------------------------------


def wire_with(alice: Identity, **changes: object) -> bytes:
    fields = sign(doc(alice), alice).to_json()
    fields.update(changes)
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "poem"}, "unknown kind"),
        ({"created_at": "yesterday"}, "must be an integer"),
        ({"created_at": True}, "must be an integer"),
        ({"created_at": -1}, "between 0"),
        ({"title": 7}, "must be a string"),
        ({"title": ""}, "1 to 300"),
        ({"title": "x" * 301}, "1 to 300"),
        ({"title": "two\nlines"}, "control character"),
        ({"title": "Cafe\u0301"}, "NFC"),
        ({"tags": "garden"}, "must be a list"),
        ({"tags": ["Garden"]}, "lower case"),
        ({"tags": ["b", "a"]}, "sorted"),
        ({"tags": ["t"] * 33}, "at most 32"),
        ({"media_type": "image/png"}, "media_type"),
        ({"replaces": "abc"}, "hex"),
        ({"extra": 1}, "no field 'extra'"),
        ({"author": "00" * 31}, "hex"),
    ],
)
def test_bad_fields_are_refused_with_a_reason(alice: Identity, changes: dict, message: str) -> None:
    with pytest.raises(InvalidObject, match=message):
        parse(wire_with(alice, **changes), now=NOW)


def test_missing_field_is_named(alice: Identity) -> None:
    fields = sign(doc(alice), alice).to_json()
    del fields["licence"]
    with pytest.raises(InvalidObject, match="needs the field 'licence'"):
        parse(json.dumps(fields), now=NOW)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"kind": "document"', "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"a": 1.5}', "integers"),
        (b'{"a": NaN}', "integers"),
        (b'{"a": 1, "a": 2}', "appears twice"),
        (b"", "not valid JSON"),
    ],
)
def test_garbage_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidObject, match=message):
        parse(data, now=NOW)


def test_future_timestamp_is_refused_but_a_small_skew_is_not(alice: Identity) -> None:
    near = sign(doc(alice, created_at=NOW + MAX_FUTURE_SECONDS), alice)
    assert parse(near.to_bytes(), now=NOW).id == near.id
    far = sign(doc(alice, created_at=NOW + MAX_FUTURE_SECONDS + 1), alice)
    with pytest.raises(InvalidObject, match="in the future"):
        parse(far.to_bytes(), now=NOW)


def test_oversized_object_is_refused(alice: Identity) -> None:
    with pytest.raises(InvalidObject, match="limit"):
        sign(doc(alice, body="x" * (1024 * 1024)), alice)


def test_unpaired_surrogate_is_refused(alice: Identity) -> None:
    with pytest.raises(InvalidObject):
        doc(alice, body="bad \ud800 text").canonical_bytes()


def test_other_kinds_check_their_fields(alice: Identity) -> None:
    a = alice.public_key
    with pytest.raises(InvalidObject, match="target"):
        Retraction(author=a, created_at=NOW, target=b"short")
    with pytest.raises(InvalidObject, match="http"):
        PeerRecord(author=a, created_at=NOW, addresses=("ftp://x",), name="n")
    with pytest.raises(InvalidObject, match="at least one address"):
        PeerRecord(author=a, created_at=NOW, addresses=(), name="n")
    with pytest.raises(InvalidObject, match="true or false"):
        PeerRecord(author=a, created_at=NOW, addresses=("http://x",), name="n", mirror=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidObject, match="1 to 64"):
        Profile(author=a, created_at=NOW, name="")


# -- whatever a peer sends, parse() can only refuse it --------------------------

_KEY = Identity(bytes(range(32)))
_FIELDS = sign(doc(_KEY), _KEY).to_json()

# Every character, lone surrogates included (json.dumps escapes them as \udxxx).
_TEXTS = st.text(st.characters(exclude_categories=()), max_size=20)
# Digit counts past MAX_INT, some past Python's 4,300-digit conversion limit.
_DIGITS = st.one_of(st.integers(min_value=17, max_value=100), st.integers(4_300, 6_000))
_HUGE_DIGITS = _DIGITS.map(lambda n: "9" * n)
_STRING_JSON = st.one_of(
    _TEXTS.map(json.dumps),
    st.sampled_from(['"\\ud800"', '"x\\udfff"', '"\\u12"', '"\\x"', '"open']),
    st.sampled_from(["document", "retraction", "peer", "profile", "http://a", "00" * 32]).map(
        json.dumps
    ),
)
_NUMBER_JSON = st.one_of(
    st.integers().map(str),
    _HUGE_DIGITS,
    _HUGE_DIGITS.map(lambda digits: "-" + digits),
    st.floats().map(json.dumps),  # NaN and Infinity included
    st.sampled_from(["1e999999", "-1e999999", "1.5", "-0", "01"]),
)
_DEEP_JSON = st.integers(min_value=1, max_value=5_000).map(lambda n: "[" * n + "]" * n)
# Arbitrary JSON texts (and some that are almost JSON), built as text so that
# integers of any length can be written.
_JSON = st.recursive(
    st.one_of(st.sampled_from(["null", "true", "false"]), _NUMBER_JSON, _STRING_JSON, _DEEP_JSON),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(_STRING_JSON, inner), max_size=4).map(
            lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
        ),
    ),
    max_leaves=8,
)
# Arbitrary JSON values as Python objects (the form a remote API hands over),
# with huge integers and keys that are not strings.
_KEYS = st.one_of(_TEXTS, st.integers(), st.none())
_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        _DIGITS.map(lambda n: 10**n),
        st.floats(),
        _TEXTS,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=8,
)


def _object_json(replaced: dict[str, str]) -> str:
    fields = {name: json.dumps(value) for name, value in _FIELDS.items()}
    fields.update(replaced)
    return "{" + ",".join(f"{json.dumps(name)}:{text}" for name, text in fields.items()) + "}"


def _parse_or_refuse(data: bytes | str | dict) -> None:
    """Anything but InvalidObject (or success) escapes and fails the test."""
    with contextlib.suppress(InvalidObject):
        parse(data, now=NOW)


_FIELD_NAMES = st.sampled_from([*_FIELDS, "reason", "name", "addresses", "mirror", "extra"])


@settings(max_examples=100, deadline=None)
@given(data=_JSON)
def test_any_json_text_is_parsed_or_refused(data: str) -> None:
    _parse_or_refuse(data)
    _parse_or_refuse(data.encode("utf-8", "surrogatepass"))


@settings(max_examples=100, deadline=None)
@given(replaced=st.dictionaries(_FIELD_NAMES, _JSON, max_size=4))
def test_an_object_with_any_json_in_its_fields_is_parsed_or_refused(
    replaced: dict[str, str],
) -> None:
    data = _object_json(replaced)
    _parse_or_refuse(data)
    _parse_or_refuse(data.encode("utf-8", "surrogatepass"))


@settings(max_examples=100, deadline=None)
@given(value=_VALUES, replaced=st.dictionaries(st.one_of(_FIELD_NAMES, _KEYS), _VALUES, max_size=4))
def test_any_json_value_is_parsed_or_refused(value: object, replaced: dict[str, object]) -> None:
    if isinstance(value, dict):
        _parse_or_refuse(value)
    _parse_or_refuse({**_FIELDS, **replaced})


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2000), position=st.integers(min_value=0))
def test_any_bytes_are_parsed_or_refused(data: bytes, position: int) -> None:
    _parse_or_refuse(data)
    wire = sign(doc(_KEY), _KEY).to_bytes()
    at = position % len(wire)
    _parse_or_refuse(wire[:at] + data + wire[at:])


@pytest.mark.parametrize(
    "data",
    [
        b'{"created_at":' + b"9" * 5000 + b"}",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":1e999999}',
        b'{"title":"\\ud800"}',
        b"\xed\xa0\x80",  # a surrogate encoded as UTF-8: not UTF-8
    ],
    ids=["huge-int", "deep", "huge-float", "lone-surrogate", "utf8-surrogate"],
)
def test_hostile_json_is_invalid_not_a_crash(data: bytes) -> None:
    with pytest.raises(InvalidObject):
        parse(data, now=NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"created_at": 10**5000},
        {"kind": 10**5000},
        {10**5000: 1},
        {None: 1},
        {"tags": [10**5000]},
        {"media_type": 10**5000},
        {"title": "\ud800"},
        {"tags": [[[[[[]]]]]]},
    ],
    ids=["created_at", "kind", "key", "none-key", "tag", "media_type", "surrogate", "nested"],
)
def test_hostile_values_from_an_api_are_invalid_not_a_crash(changes: dict[Any, Any]) -> None:
    with pytest.raises(InvalidObject):
        parse({**_FIELDS, **changes}, now=NOW)


def test_import_refuses_hostile_lines_and_keeps_the_rest(home: Commons, alice: Identity) -> None:
    good = sign(doc(alice, title="Kept"), alice).to_bytes()
    hostile = [
        _object_json({"created_at": "9" * 5000}).encode(),
        b'{"created_at":' + b"9" * 5000 + b"}",
        b"[" * 100_000 + b"]" * 100_000,
        _object_json({"title": "1e999999"}).encode(),
        _object_json({"title": '"\\ud800"'}).encode(),
        b"\xff\xfe not utf-8",
    ]
    report = home.import_lines(enumerate([*hostile, good], start=1), origin="test")
    assert [number for number, _ in report.refused] == list(range(1, len(hostile) + 1))
    assert "5000 digits" in report.refused[0][1]
    assert report.accepted == 1
