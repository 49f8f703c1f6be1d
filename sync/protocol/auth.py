"""Signed gossip requests: which key sends a request, and the proof (docs/sync.md).

A node signs every gossip request with its own Ed25519 key. The signature
covers the method, the path, the SHA-256 of the body, the time and the
*receiving* node's key, so a captured request cannot be sent to another node,
nor with another body, nor long after. Pure functions: no IO, the caller
passes the time.

The headers:

    Commons-Key:       64 hex, the sender's public key
    Commons-Time:      decimal seconds since the epoch (UTC)
    Commons-Signature: 128 hex, Ed25519 over `request_message(...)`
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from commons.model.objects import Signer
from sync.protocol.errors import RemoteProtocolError

KEY_HEADER = "Commons-Key"
TIME_HEADER = "Commons-Time"
SIGNATURE_HEADER = "Commons-Signature"
CONTEXT = b"commons-request/1"
MAX_SKEW = 300  # seconds a request's time may differ from the receiver's clock

_HEX64 = re.compile(r"\A[0-9a-f]{64}\Z")
_HEX128 = re.compile(r"\A[0-9a-f]{128}\Z")
_TIME = re.compile(r"\A[0-9]{1,12}\Z")


class AuthError(RemoteProtocolError):
    """A request's signature headers are malformed, stale, or do not verify."""


def request_message(method: str, path: str, body: bytes, at: int, receiver: bytes) -> bytes:
    """The bytes a request's signature covers, one field a line."""
    return b"\n".join([
        CONTEXT,
        method.upper().encode("ascii"),
        path.encode("utf-8"),
        hashlib.sha256(body).hexdigest().encode("ascii"),
        str(at).encode("ascii"),
        receiver.hex().encode("ascii"),
    ])


def sign_request(signer: Signer, method: str, path: str, body: bytes, *,
                 at: int, receiver: bytes) -> dict[str, str]:
    """The headers that prove `signer` sends this request to `receiver`."""
    message = request_message(method, path, body, at, receiver)
    return {
        KEY_HEADER: bytes(signer.verify_key).hex(),
        TIME_HEADER: str(at),
        SIGNATURE_HEADER: signer.sign(message).signature.hex(),
    }


@dataclass(frozen=True)
class Sender:
    """A request's proven sender."""

    key: bytes

    @property
    def label(self) -> str:
        return f"key:{self.key.hex()}"


def verify_request(headers: Mapping[str, str], method: str, path: str, body: bytes, *,
                   now: int, receiver: bytes) -> Sender | None:
    """The proven sender, or None if the request carries no signature at all.

    Raises AuthError when it carries one that is malformed, stale, meant for
    another node, or false.
    """
    key_text = headers.get(KEY_HEADER)
    time_text = headers.get(TIME_HEADER)
    sig_text = headers.get(SIGNATURE_HEADER)
    if key_text is None and time_text is None and sig_text is None:
        return None
    if not (key_text and _HEX64.match(key_text)):
        raise AuthError(f"{KEY_HEADER} must be the sender's public key, 64 lowercase hex")
    if not (time_text and _TIME.match(time_text)):
        raise AuthError(f"{TIME_HEADER} must be whole seconds since 1970 (UTC)")
    if not (sig_text and _HEX128.match(sig_text)):
        raise AuthError(f"{SIGNATURE_HEADER} must be an Ed25519 signature, 128 lowercase hex")
    at = int(time_text)
    if abs(now - at) > MAX_SKEW:
        raise AuthError(f"the request was signed at {at}, more than {MAX_SKEW} s from this"
                        f" node's time {now}; check the sender's clock")
    key = bytes.fromhex(key_text)
    message = request_message(method, path, body, at, receiver)
    try:
        nacl.signing.VerifyKey(key).verify(message, bytes.fromhex(sig_text))
    except (nacl.exceptions.BadSignatureError, ValueError) as exc:
        raise AuthError(
            "the request's signature does not verify (for this node's key, this path and"
            " this body)"
        ) from exc
    return Sender(key)
