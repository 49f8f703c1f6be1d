"""The canonical JSON of signed objects: encoding, the id hash, and strict decoding.

Canonical bytes are the JSON Canonicalization Scheme (RFC 8785) form restricted to
strings, integers, booleans, lists and objects (docs/protocol.md). Decoding is strict
and total: whatever bytes arrive, the only error it raises is `InvalidObject`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from commons.model.errors import InvalidObject

MAX_OBJECT_BYTES = 1024 * 1024
MAX_INT = 2**53 - 1


def canonical_json(value: Any) -> bytes:
    """Serialise to canonical bytes (RFC 8785 for our value types).

    Python's json module with sorted keys, no whitespace and no ASCII escaping
    produces exactly the RFC 8785 form for strings, integers, booleans, lists
    and objects with ASCII keys, which is all an object may hold.
    """
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidObject("text holds an unpaired surrogate, which is not valid UTF-8") from exc


def object_id(unsigned_bytes: bytes) -> bytes:
    return hashlib.sha256(unsigned_bytes).digest()


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidObject(f"field {key!r} appears twice")
        result[key] = value
    return result


def _no_float(text: str) -> Any:
    raise InvalidObject(f"numbers must be integers, found {text[:40]}")


# No field holds an integer above MAX_INT (16 digits); this bound leaves room for
# the usual range message and stops far below Python's 4,300-digit conversion limit.
_MAX_INT_CHARS = 64


def _int_literal(text: str) -> int:
    if len(text) > _MAX_INT_CHARS:
        raise InvalidObject(
            f"number {text[:20]}… has {len(text.lstrip('-'))} digits;"
            f" no field holds more than {MAX_INT}"
        )
    return int(text)


def decode_json(data: bytes | str) -> dict[str, Any]:
    """Parse one object's JSON strictly: no duplicate keys, no floats, no NaN."""
    if isinstance(data, bytes):
        if len(data) > MAX_OBJECT_BYTES * 2 + 1024:
            raise InvalidObject(f"object is {len(data)} bytes, far over the size limit")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidObject(f"object is not valid UTF-8 (byte {exc.start})") from exc
    try:
        value = json.loads(
            data,
            object_pairs_hook=_no_duplicate_keys,
            parse_float=_no_float,
            parse_int=_int_literal,
            parse_constant=_no_float,
        )
    except json.JSONDecodeError as exc:
        raise InvalidObject(f"object is not valid JSON: {exc.msg} (character {exc.pos})") from exc
    except ValueError as exc:  # any other conversion the decoder refuses
        raise InvalidObject(f"object is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidObject("object is nested too deeply") from exc
    if not isinstance(value, dict):
        raise InvalidObject("an object must be a JSON object")
    return value
