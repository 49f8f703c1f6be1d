"""Address proofs: the node at a URL shows it holds a key (docs/sync.md, address proofs).

A peer record says "key K is reached at URL U", and anyone can sign a record
naming any URL. Before a node gossips with U on K's word, it dials U with a
fresh random challenge in a request signed *for K* (sync.protocol.auth); the
node there answers with an Ed25519 signature by K over the challenge, bound to
the dialler's key. A node that does not hold K cannot answer, and an answer
cannot be replayed: the challenge is new each time and names the dialler.

Pure functions: no IO. The dialler picks the challenge (32 random bytes).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from commons.model.objects import Signer
from sync.protocol.errors import RemoteProtocolError

PROVE_PATH = "/sync/prove"
CONTEXT = b"commons-address-proof/1"
CHALLENGE_BYTES = 32
MAX_PROOF_BYTES = 1024  # a proof reply is about 200 bytes

_HEX64 = re.compile(r"\A[0-9a-f]{64}\Z")
_HEX128 = re.compile(r"\A[0-9a-f]{128}\Z")


class ProofError(RemoteProtocolError):
    """A challenge or a proof that is malformed or does not verify."""


def proof_message(prover: bytes, dialler: bytes, challenge: bytes) -> bytes:
    """The bytes a proof signs, one field a line."""
    return b"\n".join([CONTEXT, prover.hex().encode("ascii"), dialler.hex().encode("ascii"),
                       challenge.hex().encode("ascii")])


@dataclass(frozen=True)
class Challenge:
    """The body of POST /sync/prove: `{"challenge": "<64 hex>"}`."""

    challenge: bytes

    def __post_init__(self) -> None:
        if len(self.challenge) != CHALLENGE_BYTES:
            raise ValueError(f"a challenge is {CHALLENGE_BYTES} bytes")

    def to_wire(self) -> bytes:
        return json.dumps({"challenge": self.challenge.hex()}).encode("ascii")

    @classmethod
    def from_wire(cls, body: bytes) -> Challenge:
        text = _field(body, "challenge", _HEX64, "64 lower-case hex (32 random bytes)")
        return cls(bytes.fromhex(text))


@dataclass(frozen=True)
class Proof:
    """The reply: `{"key": "<64 hex>", "signature": "<128 hex>"}`."""

    key: bytes
    signature: bytes

    def to_wire(self) -> bytes:
        return json.dumps({"key": self.key.hex(), "signature": self.signature.hex()}).encode(
            "ascii")

    @classmethod
    def from_wire(cls, body: bytes) -> Proof:
        key = _field(body, "key", _HEX64, "the prover's public key, 64 lower-case hex")
        sig = _field(body, "signature", _HEX128, "an Ed25519 signature, 128 lower-case hex")
        return cls(bytes.fromhex(key), bytes.fromhex(sig))


def sign_proof(signer: Signer, dialler: bytes, challenge: bytes) -> Proof:
    """Our answer to `dialler`'s challenge: we hold our key."""
    prover = bytes(signer.verify_key)
    return Proof(prover, signer.sign(proof_message(prover, dialler, challenge)).signature)


def verify_proof(proof: Proof, *, expected: bytes, dialler: bytes, challenge: bytes) -> None:
    """Return if `proof` shows the node holds `expected`; raise ProofError if not."""
    if proof.key != expected:
        raise ProofError(f"the node there holds key {proof.key.hex()[:16]}…, not the"
                         f" {expected.hex()[:16]}… its peer record names")
    try:
        nacl.signing.VerifyKey(expected).verify(
            proof_message(expected, dialler, challenge), proof.signature)
    except (nacl.exceptions.BadSignatureError, ValueError) as exc:
        raise ProofError("the address proof does not verify for this challenge") from exc


def _field(body: bytes, name: str, pattern: re.Pattern[str], what: str) -> str:
    if len(body) > MAX_PROOF_BYTES:
        raise ProofError(f"a challenge or proof is at most {MAX_PROOF_BYTES} bytes")
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProofError(f"not a JSON object: {exc}") from exc
    text = value.get(name) if isinstance(value, dict) else None
    if not isinstance(text, str) or not pattern.match(text):
        raise ProofError(f"{name!r} must be {what}")
    return text
