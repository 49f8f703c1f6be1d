"""Signed objects: the four kinds, their canonical bytes, ids and signatures.

The exact format is specified in docs/protocol.md; this module is its
reference implementation. In short: an object's canonical bytes are the JSON
Canonicalization Scheme (RFC 8785) serialisation of its fields without `id`
and `sig`, restricted to strings, integers, booleans, lists and objects;
`id` is SHA-256 of those bytes; `sig` is an Ed25519 signature over `id`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import nacl.exceptions
import nacl.signing

from commons.model.canonical import (
    MAX_INT,
    MAX_OBJECT_BYTES,
    canonical_json,
    decode_json,
    object_id,
)
from commons.model.errors import InvalidObject

MAX_FUTURE_SECONDS = 15 * 60
ID_BYTES = 32
KEY_BYTES = 32
SIG_BYTES = 64

MEDIA_TYPES = ("text/plain", "text/markdown")
_HEX64 = re.compile(r"\A[0-9a-f]{64}\Z")
_HEX128 = re.compile(r"\A[0-9a-f]{128}\Z")
# Characters allowed in one-line text fields: anything but C0/C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The body may hold line structure and page breaks (form feed), nothing else.
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_TAG = re.compile(r"\A[^\sA-Z\x00-\x1f\x7f-\x9f,]{1,64}\Z")


# -- field checks -------------------------------------------------------------


def _show(value: object, limit: int = 80) -> str:
    """A value for an error message: its repr, cut short, never raising.

    A peer's values can be a 4,000-digit integer (whose repr raises ValueError)
    or a list nested a thousand deep (RecursionError); messages must not fail.
    """
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(name: str, value: object, *, max_len: int, min_len: int = 1, body: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidObject(f"field {name!r} must be a string, not {type(value).__name__}")
    if not min_len <= len(value) <= max_len:
        raise InvalidObject(
            f"field {name!r} must be {min_len} to {max_len} characters long, is {len(value)}"
        )
    bad = (_BODY_CONTROL if body else _CONTROL).search(value)
    if bad:
        raise InvalidObject(f"field {name!r} holds control character U+{ord(bad.group()):04X}")
    if not unicodedata.is_normalized("NFC", value):
        raise InvalidObject(f"field {name!r} is not in Unicode normal form NFC")
    return value


def _hex_bytes(name: str, value: object, size: int) -> bytes:
    pattern = _HEX64 if size == 32 else _HEX128
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidObject(f"field {name!r} must be {size * 2} lowercase hex characters")
    return bytes.fromhex(value)


def _int(name: str, value: object) -> int:
    # bool is an int subclass in Python; a JSON true is not a timestamp.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidObject(f"field {name!r} must be an integer, not {type(value).__name__}")
    if not 0 <= value <= MAX_INT:
        raise InvalidObject(f"field {name!r} must be between 0 and {MAX_INT}")
    return value


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidObject(f"field {name!r} must be true or false")
    return value


def _list(name: str, value: object, *, max_items: int) -> list[object]:
    if not isinstance(value, (list, tuple)):
        raise InvalidObject(f"field {name!r} must be a list")
    if len(value) > max_items:
        raise InvalidObject(
            f"field {name!r} may hold at most {max_items} items, holds {len(value)}"
        )
    return list(value)


def normalise_text(value: str) -> str:
    """The form text must take before signing: NFC, no surrounding blanks."""
    return unicodedata.normalize("NFC", value).strip()


def normalise_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Lower-case, trimmed, de-duplicated and sorted, as the format requires."""
    cleaned = {normalise_text(t).lower() for t in tags}
    return tuple(sorted(t for t in cleaned if t))


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """`normalise_tags`, refusing a tag the format cannot hold, with what to do instead."""
    normal = normalise_tags(tags)
    for tag in normal:
        if not _TAG.match(tag):
            raise InvalidObject(
                f"tag {_show(tag)} has a space or comma (or is over 64 characters); a tag is"
                " one word: use --tag twice for two tags, or a dash (e.g. rain-water)"
            )
    if len(normal) > 32:
        raise InvalidObject(f"{len(normal)} tags given; a document holds at most 32")
    return normal


# -- the kinds ----------------------------------------------------------------


@dataclass(frozen=True)
class Content:
    """Fields every kind shares. Subclasses add their own and validate them."""

    kind: ClassVar[str] = ""
    author: bytes
    created_at: int

    def __post_init__(self) -> None:
        if not isinstance(self.author, bytes) or len(self.author) != KEY_BYTES:
            raise InvalidObject("author must be a 32-byte Ed25519 public key")
        _int("created_at", self.created_at)

    def kind_fields(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_fields(self) -> dict[str, Any]:
        fields = {"kind": self.kind, "author": self.author.hex(), "created_at": self.created_at}
        fields.update(self.kind_fields())
        return fields

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.to_fields())


@dataclass(frozen=True)
class Document(Content):
    kind: ClassVar[str] = "document"
    title: str
    body: str
    media_type: str = "text/markdown"
    tags: tuple[str, ...] = ()
    licence: str = "CC-BY-4.0"
    replaces: bytes | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _text("title", self.title, max_len=300)
        _text("body", self.body, max_len=MAX_OBJECT_BYTES, body=True)
        if self.media_type not in MEDIA_TYPES:
            raise InvalidObject(
                f"media_type must be one of {', '.join(MEDIA_TYPES)}, not {_show(self.media_type)}"
            )
        tags = _list("tags", self.tags, max_items=32)
        for tag in tags:
            if not isinstance(tag, str) or not _TAG.match(tag) or tag != tag.lower():
                raise InvalidObject(
                    f"tag {_show(tag)} must be 1 to 64 characters, lower case,"
                    " without spaces or commas"
                )
            _text("tags", tag, max_len=64)
        if list(tags) != sorted(set(tags)):  # type: ignore[type-var]
            raise InvalidObject("tags must be sorted and without duplicates")
        _text("licence", self.licence, max_len=64)
        if self.replaces is not None and (
            not isinstance(self.replaces, bytes) or len(self.replaces) != ID_BYTES
        ):
            raise InvalidObject("replaces must be a 32-byte object id")

    def kind_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "title": self.title,
            "body": self.body,
            "media_type": self.media_type,
            "tags": list(self.tags),
            "licence": self.licence,
        }
        if self.replaces is not None:
            fields["replaces"] = self.replaces.hex()
        return fields


@dataclass(frozen=True)
class Retraction(Content):
    kind: ClassVar[str] = "retraction"
    target: bytes
    reason: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.target, bytes) or len(self.target) != ID_BYTES:
            raise InvalidObject("target must be a 32-byte object id")
        if self.reason is not None:
            _text("reason", self.reason, max_len=500)

    def kind_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"target": self.target.hex()}
        if self.reason is not None:
            fields["reason"] = self.reason
        return fields


@dataclass(frozen=True)
class PeerRecord(Content):
    kind: ClassVar[str] = "peer"
    addresses: tuple[str, ...]
    name: str
    mirror: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        addresses = _list("addresses", self.addresses, max_items=8)
        if not addresses:
            raise InvalidObject("a peer record needs at least one address")
        for address in addresses:
            _text("addresses", address, max_len=256)
            if not isinstance(address, str) or not address.startswith(("http://", "https://")):
                raise InvalidObject(f"peer address {address!r} must start with http:// or https://")
        _text("name", self.name, max_len=64)
        _bool("mirror", self.mirror)

    def kind_fields(self) -> dict[str, Any]:
        return {"addresses": list(self.addresses), "name": self.name, "mirror": self.mirror}


@dataclass(frozen=True)
class Profile(Content):
    kind: ClassVar[str] = "profile"
    name: str
    about: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _text("name", self.name, max_len=64)
        if self.about is not None:
            _text("about", self.about, max_len=1000)

    def kind_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"name": self.name}
        if self.about is not None:
            fields["about"] = self.about
        return fields


AnyContent = Document | Retraction | PeerRecord | Profile
KINDS: dict[str, type[Content]] = {
    cls.kind: cls for cls in (Document, Retraction, PeerRecord, Profile)
}


class Signer(Protocol):
    """Anything that can sign: our Identity, or a bare nacl SigningKey."""

    @property
    def verify_key(self) -> nacl.signing.VerifyKey: ...

    def sign(self, message: bytes) -> Any: ...


@dataclass(frozen=True)
class SignedObject:
    """An object with its id and signature. Build it with `sign` or `parse`."""

    content: AnyContent
    id: bytes
    sig: bytes = field(repr=False)

    @property
    def kind(self) -> str:
        return self.content.kind

    @property
    def author(self) -> bytes:
        return self.content.author

    @property
    def created_at(self) -> int:
        return self.content.created_at

    def to_json(self) -> dict[str, Any]:
        fields = self.content.to_fields()
        fields["id"] = self.id.hex()
        fields["sig"] = self.sig.hex()
        return fields

    def to_bytes(self) -> bytes:
        """The wire and bundle form: canonical JSON of all fields with id and sig."""
        return canonical_json(self.to_json())


def sign(content: AnyContent, signer: Signer) -> SignedObject:
    if bytes(signer.verify_key) != content.author:
        raise InvalidObject("the content's author is not the key that is signing it")
    unsigned = content.canonical_bytes()
    if len(unsigned) > MAX_OBJECT_BYTES:
        raise InvalidObject(
            f"object is {len(unsigned)} bytes; the limit is {MAX_OBJECT_BYTES} bytes"
        )
    oid = object_id(unsigned)
    return SignedObject(content=content, id=oid, sig=bytes(signer.sign(oid).signature))


# -- parsing and verification -------------------------------------------------

_OPTIONAL: dict[str, tuple[str, ...]] = {
    "document": ("replaces",),
    "retraction": ("reason",),
    "peer": (),
    "profile": ("about",),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "document": ("title", "body", "media_type", "tags", "licence"),
    "retraction": ("target",),
    "peer": ("addresses", "name", "mirror"),
    "profile": ("name",),
}
_CONVERT: dict[str, Callable[[str, object], Any]] = {
    "replaces": lambda n, v: _hex_bytes(n, v, ID_BYTES),
    "target": lambda n, v: _hex_bytes(n, v, ID_BYTES),
    "tags": lambda n, v: tuple(_list(n, v, max_items=32)),
    "addresses": lambda n, v: tuple(_list(n, v, max_items=8)),
}


def content_from_fields(fields: Mapping[str, Any]) -> AnyContent:
    """Build content from its JSON fields (without id and sig), checking every one."""
    kind = fields.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidObject(f"unknown kind {_show(kind)}; known kinds: {', '.join(KINDS)}")
    common = ("kind", "author", "created_at")
    required, optional = _REQUIRED[kind], _OPTIONAL[kind]
    for name in common + required:
        if name not in fields:
            raise InvalidObject(f"a {kind} needs the field {name!r}")
    for name in fields:
        if name not in common + required + optional:
            raise InvalidObject(f"a {kind} has no field {_show(name)}")
    args: dict[str, Any] = {
        "author": _hex_bytes("author", fields["author"], KEY_BYTES),
        "created_at": _int("created_at", fields["created_at"]),
    }
    for name in required + optional:
        if name in fields:
            value = fields[name]
            args[name] = _CONVERT[name](name, value) if name in _CONVERT else value
    try:
        return KINDS[kind](**args)  # type: ignore[return-value]
    except TypeError as exc:  # a field of the wrong type slipped past a converter
        raise InvalidObject(f"a {kind} has a field of the wrong type: {exc}") from exc


def verify(obj: SignedObject, *, now: int) -> SignedObject:
    """Return the object if its id, signature and limits hold; raise otherwise."""
    unsigned = obj.content.canonical_bytes()
    if len(unsigned) > MAX_OBJECT_BYTES:
        raise InvalidObject(
            f"object is {len(unsigned)} bytes; the limit is {MAX_OBJECT_BYTES} bytes"
        )
    if object_id(unsigned) != obj.id:
        raise InvalidObject(f"id {obj.id.hex()[:16]}… does not match the object's content")
    try:
        nacl.signing.VerifyKey(obj.author).verify(obj.id, obj.sig)
    except (nacl.exceptions.BadSignatureError, ValueError) as exc:
        raise InvalidObject(
            f"signature on {obj.id.hex()[:16]}… was not made by its author's key"
        ) from exc
    if obj.created_at > now + MAX_FUTURE_SECONDS:
        raise InvalidObject(
            f"object {obj.id.hex()[:16]}… is dated {obj.created_at - now} seconds in the future;"
            " check the clock of the machine that made it"
        )
    return obj


def parse(data: bytes | str | Mapping[str, Any], *, now: int) -> SignedObject:
    """Decode an object from its JSON form and verify it. Raises InvalidObject."""
    fields = dict(data) if isinstance(data, Mapping) else decode_json(data)
    oid = _hex_bytes("id", fields.pop("id", None), ID_BYTES)
    sig = _hex_bytes("sig", fields.pop("sig", None), SIG_BYTES)
    content = content_from_fields(fields)
    return verify(SignedObject(content=content, id=oid, sig=sig), now=now)
