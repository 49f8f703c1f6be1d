"""Words for a peer's state, the same in `commons peers ls` and the app's Peers screen."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def peer_state(peer: Mapping[str, Any]) -> str:
    """What a person can act on: answering, failing since when, or dropped and why.

    `peer` is a peer's JSON form (`PeerInfo.to_json()`, or the local API's `peers`).
    """
    if peer.get("state") == "dropped":
        faults = int(peer.get("faults") or 0)
        return f"dropped: {faults} bad object{'' if faults == 1 else 's'}"
    failures = int(peer.get("failures") or 0)
    if failures:
        return f"failing: {failures} {'try' if failures == 1 else 'tries'} in a row"
    return "ok" if peer.get("last_seen") else "not reached yet"
