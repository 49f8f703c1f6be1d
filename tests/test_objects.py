"""Signed objects: known answers, tampering, limits and strict decoding."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commons.errors import InvalidObject
from commons.identity import Identity
from commons.objects import (
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
    wire = sign(doc(alice), alice).to_bytes()
    refused = 0
    for position in range(len(wire)):
        tampered = bytearray(wire)
        tampered[position] ^= 0x01
        with pytest.raises(InvalidObject):
            parse(bytes(tampered), now=NOW)
        refused += 1
    assert refused == len(wire)


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
