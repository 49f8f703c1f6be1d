"""A peer as the table knows it, its URL's one spelling, and its row in SQLite.

The rows live in table `peers` of `commons.db` (component `peers`); the
table's decisions are in sync.gossip.peers.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from commons.model.errors import CommonsError
from commons.storage.store import ObjectStore, execute_script

MAX_FAULTS = 3  # invalid objects served before a peer is dropped
BACKOFF_BASE = 1.0  # seconds after the first failure
BACKOFF_CAP = 300.0
NEW_HEALTH = 0.5
SILENT_SECONDS = 30 * 24 * 3600  # a proven key unheard of this long is no longer kept

SOURCES = ("bootstrap", "manual", "record", "discovered")  # discovered: LAN (mDNS)
NAMED = ("bootstrap", "manual")  # the user named these addresses: no proof needed to use them
STATES = ("active", "dropped", "removed")


class PeerUrlError(CommonsError):
    """A peer address we cannot use."""


def normalise_url(url: str) -> str:
    """The one spelling of a peer URL we keep: scheme://host:port, no path."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # e.g. "http://[::1": a peer's header can say anything
        raise PeerUrlError(f"{url!r} is not a peer address: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PeerUrlError(f"{url!r} is not a peer address; give one like http://HOST:7400")
    try:
        port = parts.port
    except ValueError as exc:
        raise PeerUrlError(f"{url!r} has an invalid port") from exc
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise PeerUrlError(f"{url!r}: a peer address has no path; give http://HOST:PORT")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    port = port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{host}:{port}"


@dataclass(frozen=True)
class PeerInfo:
    """A peer as the table knows it (what `peers ls` and the TUI show)."""

    url: str
    name: str | None
    last_seen: int | None
    health: float
    sent: int
    received: int
    failures: int  # consecutive failed attempts; 0 after a success
    mirror: bool
    faults: int = 0  # invalid objects served
    state: str = "active"
    source: str = "manual"
    key: str | None = None  # hex public key, from its signed record
    next_attempt: float = 0.0
    added_at: int = 0
    record_at: int = 0  # created_at of the record that told us of it
    proven_at: int = 0  # when the node at `url` last proved it holds `key`; 0: never

    @property
    def trusted(self) -> bool:
        """May take an outbound slot: the user named it, or it proved its key."""
        return self.source in NAMED or (self.proven_at > 0 and self.key is not None)

    @property
    def candidate(self) -> bool:
        """Learnt from a claim (a record, the LAN) and still to prove its key."""
        return not self.trusted and self.key is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"trusted": self.trusted}


def backoff_delay(failures: int, rng: random.Random) -> float:
    """Seconds to wait after `failures` consecutive failures: doubling, capped, jittered."""
    if failures <= 0:
        return 0.0
    base = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1))
    return base * rng.uniform(0.5, 1.0)


def _m1_peers(db: sqlite3.Connection) -> None:
    execute_script(
        db,
        """
        CREATE TABLE peers (
            url TEXT PRIMARY KEY,
            name TEXT,
            key TEXT,
            source TEXT NOT NULL,
            state TEXT NOT NULL,
            mirror INTEGER NOT NULL,
            added_at INTEGER NOT NULL,
            last_seen INTEGER,
            health REAL NOT NULL,
            failures INTEGER NOT NULL,
            faults INTEGER NOT NULL,
            sent INTEGER NOT NULL,
            received INTEGER NOT NULL,
            next_attempt REAL NOT NULL,
            record_at INTEGER NOT NULL
        );
        """
    )


def _m2_proven(db: sqlite3.Connection) -> None:
    execute_script(db, "ALTER TABLE peers ADD COLUMN proven_at INTEGER NOT NULL DEFAULT 0;")


MIGRATIONS = [_m1_peers, _m2_proven]
_COLUMNS = ("url", "name", "key", "source", "state", "mirror", "added_at", "last_seen", "health",
            "failures", "faults", "sent", "received", "next_attempt", "record_at", "proven_at")


def load_rows(store: ObjectStore) -> list[PeerInfo]:
    store.migrate("peers", MIGRATIONS)
    rows = store.query(f"SELECT {', '.join(_COLUMNS)} FROM peers")
    return [PeerInfo(**dict(zip(_COLUMNS, row, strict=True))) for row in rows]


def save_rows(store: ObjectStore, rows: Sequence[PeerInfo], deleted: Sequence[str] = ()) -> None:
    """Write changed peers (blocking: call it off the event loop)."""
    if not rows and not deleted:
        return
    marks = ", ".join("?" for _ in _COLUMNS)
    with store.transaction() as db:
        db.executemany("DELETE FROM peers WHERE url = ?", [(u,) for u in deleted])
        db.executemany(
            f"INSERT OR REPLACE INTO peers ({', '.join(_COLUMNS)}) VALUES ({marks})",
            [tuple(getattr(p, c) for c in _COLUMNS) for p in rows],
        )
