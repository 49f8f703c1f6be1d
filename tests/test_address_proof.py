"""Address proofs (sync.protocol.proof): known answers and tampering, no sockets."""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from commons.model.identity import Identity
from commons.model.objects import PeerRecord, sign
from sync.http.client import PeerClient, PeerUnavailable
from sync.http.node import Node
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


# -- against real nodes on loopback ---------------------------------------------

NOW = 1_800_000_000


async def test_a_node_proves_its_own_key_and_no_other(
    make_node: Callable[..., Awaitable[Node]],
) -> None:
    a = await make_node("a")
    async with aiohttp.ClientSession() as http:
        client = PeerClient(http, signer=DIALLER, clock=lambda: NOW)
        await client.prove(a.url, a.public_key, CHALLENGE)
        with pytest.raises(PeerUnavailable, match="401"):  # a record naming a's URL by M
            await client.prove(a.url, OTHER.public_key, CHALLENGE)
        body = Challenge(CHALLENGE).to_wire()
        async with http.post(a.url + PROVE_PATH, data=body) as resp:  # unsigned
            assert resp.status == 401


async def test_a_record_naming_another_keys_address_is_never_trusted(
    make_node: Callable[..., Awaitable[Node]],
) -> None:
    a = await make_node("a")
    v = await make_node("v")
    mallory = Identity(bytes([66]) * 32)
    claims = sign(PeerRecord(author=mallory.public_key, created_at=NOW - 5,
                             addresses=(a.url,), name="a", mirror=True), mallory)
    v.store.put(claims, now=NOW)
    assert not await v.membership.prove(a.url, mallory.public_key)
    row = v.session.table.get(a.url)
    assert row is not None and row.candidate and not row.trusted and row.failures >= 1
    assert v.session.choose_round(NOW, random.Random(1)) == []
    # a's own record binds a's URL once a proves it.
    (own,) = [s.obj for s in a.store.objects(kind="peer", author=a.public_key)]
    v2 = await make_node("v2")
    v2.store.put(own, now=NOW)
    assert await v2.membership.prove(a.url, a.public_key)
    assert v2.session.choose_round(NOW, random.Random(1)) == [a.url]
