"""Address proofs (sync.protocol.proof): known answers and tampering, no sockets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from commons.model.identity import Identity
from sync.protocol.auth import sign_request
from sync.protocol.errors import RemoteProtocolError
from sync.protocol.proof import (
    PROVE_PATH,
    Challenge,
    Proof,
    ProofError,
    proof_message,
    sign_proof,
    verify_proof,
)

VECTORS = json.loads(
    (Path(__file__).parent / "data" / "address_proofs.json").read_text()
)["vectors"]


@pytest.mark.parametrize("vector", VECTORS)
def test_known_answers(vector: dict[str, Any]) -> None:
    prover = Identity(bytes.fromhex(vector["prover_seed"]))
    dialler = Identity(bytes.fromhex(vector["dialler_seed"]))
    assert prover.public_key.hex() == vector["prover_key"]
    assert dialler.public_key.hex() == vector["dialler_key"]
    challenge = bytes.fromhex(vector["challenge_hex"])
    body = Challenge(challenge).to_wire()
    assert body.decode() == vector["request_body"]
    assert Challenge.from_wire(body).challenge == challenge
    assert sign_request(dialler, "POST", PROVE_PATH, body, at=vector["request_time"],
                        receiver=prover.public_key) == vector["request_headers"]
    message = proof_message(prover.public_key, dialler.public_key, challenge)
    assert message.hex() == vector["proof_message_hex"]
    proof = sign_proof(prover, dialler.public_key, challenge)
    assert proof.to_wire().decode() == vector["reply_body"]
    verify_proof(Proof.from_wire(proof.to_wire()), expected=prover.public_key,
                 dialler=dialler.public_key, challenge=challenge)


PROVER = Identity(bytes([1]) * 32)
DIALLER = Identity(bytes([2]) * 32)
OTHER = Identity(bytes([3]) * 32)
CHALLENGE = bytes([9]) * 32


def test_a_proof_holds_only_for_its_key_dialler_and_challenge() -> None:
    proof = sign_proof(PROVER, DIALLER.public_key, CHALLENGE)
    verify_proof(proof, expected=PROVER.public_key, dialler=DIALLER.public_key,
                 challenge=CHALLENGE)
    with pytest.raises(ProofError, match="holds key"):  # another key at that address
        verify_proof(proof, expected=OTHER.public_key, dialler=DIALLER.public_key,
                     challenge=CHALLENGE)
    with pytest.raises(ProofError, match="does not verify"):  # replayed to another dialler
        verify_proof(proof, expected=PROVER.public_key, dialler=OTHER.public_key,
                     challenge=CHALLENGE)
    with pytest.raises(ProofError, match="does not verify"):  # an old answer
        verify_proof(proof, expected=PROVER.public_key, dialler=DIALLER.public_key,
                     challenge=bytes(32))
    # A signature by another key, passed off as the prover's.
    forged = Proof(PROVER.public_key, sign_proof(OTHER, DIALLER.public_key, CHALLENGE).signature)
    with pytest.raises(ProofError):
        verify_proof(forged, expected=PROVER.public_key, dialler=DIALLER.public_key,
                     challenge=CHALLENGE)


@pytest.mark.parametrize("body", [
    b"", b"[]", b"{}", b'{"key": 5, "signature": "00"}', b"\xff",
    b'{"key": "' + b"A" * 64 + b'", "signature": "' + b"0" * 128 + b'"}',
    b"x" * 5000,
])
def test_malformed_replies_are_the_peers_fault(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        Proof.from_wire(body)
    with pytest.raises(RemoteProtocolError):
        Challenge.from_wire(body)
