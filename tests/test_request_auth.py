"""Signed gossip requests (sync.protocol.auth): known answers and tampering, no sockets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from commons.model.identity import Identity
from sync.protocol.auth import (
    KEY_HEADER,
    MAX_SKEW,
    SIGNATURE_HEADER,
    TIME_HEADER,
    AuthError,
    request_message,
    sign_request,
    verify_request,
)
from sync.protocol.errors import RemoteProtocolError

VECTORS = json.loads(
    (Path(__file__).parent / "data" / "request_signatures.json").read_text()
)["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["path"])
def test_known_answers(vector: dict[str, Any]) -> None:
    sender = Identity(bytes.fromhex(vector["sender_seed"]))
    receiver = bytes.fromhex(vector["receiver_key"])
    body = bytes.fromhex(vector["body_hex"])
    message = request_message(vector["method"], vector["path"], body, vector["time"], receiver)
    assert message.hex() == vector["message_hex"]
    headers = sign_request(sender, vector["method"], vector["path"], body, at=vector["time"],
                           receiver=receiver)
    assert headers == vector["headers"]
    proven = verify_request(headers, vector["method"], vector["path"], body,
                            now=vector["time"] + MAX_SKEW, receiver=receiver)
    assert proven is not None and proven.key.hex() == vector["sender_key"]


def test_any_changed_field_fails() -> None:
    vector = VECTORS[0]
    headers = vector["headers"]
    receiver = bytes.fromhex(vector["receiver_key"])
    body = bytes.fromhex(vector["body_hex"])
    at = vector["time"]
    cases = [
        ("POST", "/sync/offer", body, receiver),  # another path
        ("POST", vector["path"], body + b" ", receiver),  # another body
        ("POST", vector["path"], body, bytes(32)),  # another receiving node
    ]
    for method, path, data, to in cases:
        with pytest.raises(AuthError, match="does not verify"):
            verify_request(headers, method, path, data, now=at, receiver=to)
    sig = bytearray(bytes.fromhex(headers[SIGNATURE_HEADER]))
    for i in range(0, len(sig), 7):
        bad = bytearray(sig)
        bad[i] ^= 1
        with pytest.raises(AuthError):
            verify_request({**headers, SIGNATURE_HEADER: bad.hex()}, "POST", vector["path"],
                           body, now=at, receiver=receiver)


def test_stale_and_malformed_proofs_are_the_senders_fault() -> None:
    vector = VECTORS[0]
    headers = vector["headers"]
    args = ("POST", vector["path"], bytes.fromhex(vector["body_hex"]))
    receiver = bytes.fromhex(vector["receiver_key"])
    with pytest.raises(RemoteProtocolError, match="clock"):
        verify_request(headers, *args, now=vector["time"] + MAX_SKEW + 1, receiver=receiver)
    for header, value in [(KEY_HEADER, "AB" * 32), (TIME_HEADER, "-5"), (TIME_HEADER, "1e9"),
                          (SIGNATURE_HEADER, "00"), (KEY_HEADER, "")]:
        with pytest.raises(AuthError):
            verify_request({**headers, header: value}, *args, now=vector["time"],
                           receiver=receiver)
    partial = {KEY_HEADER: headers[KEY_HEADER]}
    with pytest.raises(AuthError):
        verify_request(partial, *args, now=vector["time"], receiver=receiver)
    assert verify_request({}, *args, now=vector["time"], receiver=receiver) is None
