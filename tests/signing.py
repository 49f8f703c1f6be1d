"""Signed gossip requests for tests that play a peer by hand (sync.protocol.auth)."""

from __future__ import annotations

from commons.model.identity import Identity
from sync.protocol.auth import sign_request

# A key that plays a stranger's node in tests.
STRANGER = Identity(bytes(range(100, 132)))


def signed(path: str, body: bytes, *, receiver: bytes, at: int,
           sender: Identity = STRANGER) -> dict[str, str]:
    """The headers of a POST to `path` with `body`, signed by `sender` for `receiver`."""
    return sign_request(sender, "POST", path, body, at=at, receiver=receiver)
