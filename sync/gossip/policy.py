"""What a node keeps and how much it lets one peer ask of it.

A policy is what a community mirror is configured with (`commons mirror
--policy FILE`); a personal node uses the default, which keeps everything and
holds each address to DEFAULT_REQUEST_RATE and DEFAULT_BYTE_RATE. The file is
JSON, documented in docs/sync.md:

    {
      "accept": "all" | {"authors": ["<hex key>", ...], "tags": ["maths", ...]},
      "max_object_bytes": 500000,
      "rate_limit_per_peer": "600/minute",
      "byte_limit_per_peer": "200MB/hour",
      "block": ["<hex key of an author>", ...],
      "block_peers": ["10.0.0.7", "http://spam.example:7400"],
      "ingress_per_peer": "6000/hour",
      "ingress_bytes_per_peer": "300MB/hour",
      "ingress_total": "20000/hour",
      "ingress_bytes_total": "1GB/hour"
    }

Every key is optional. The decisions are pure: callers pass the time in.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from commons.model.errors import CommonsError
from commons.model.objects import MAX_OBJECT_BYTES, Document, SignedObject
from commons.storage.store import ObjectStore, execute_script


class PolicyError(CommonsError):
    """A policy file cannot be read or says something we cannot follow."""


_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_PERIOD_ALIASES = {"s": "second", "sec": "second", "min": "minute", "m": "minute", "h": "hour",
                   "d": "day"}
_SIZES = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20,
          "gib": 2**30, "k": 10**3, "m": 10**6, "g": 10**9}
_RATE = re.compile(r"\A\s*([0-9][0-9_]*(?:\.[0-9]+)?)\s*([a-z]*)\s*/\s*([a-z]+)\s*\Z", re.I)
_HEX_KEY = re.compile(r"\A[0-9a-f]{64}\Z")
# The ingress budget (sync.gossip.budget): objects and bytes that may enter, per peer key
# and for the whole node, and the flags of `serve` and `mirror` that set them.
INGRESS_KEYS = {
    "ingress_per_peer": ("ingress_objects_per_peer", False),
    "ingress_bytes_per_peer": ("ingress_bytes_per_peer", True),
    "ingress_total": ("ingress_objects_total", False),
    "ingress_bytes_total": ("ingress_bytes_total", True),
}
KNOWN_KEYS = ("accept", "max_object_bytes", "rate_limit_per_peer", "byte_limit_per_peer",
              "block", "block_peers", *INGRESS_KEYS)


@dataclass(frozen=True)
class RateLimit:
    """`amount` (requests, or bytes) per `seconds`."""

    amount: int
    seconds: int

    def __post_init__(self) -> None:
        if self.amount < 1 or self.seconds < 1:
            raise ValueError("a rate limit needs a positive amount and period")

    @classmethod
    def parse(cls, text: str, *, bytes_: bool, where: str) -> RateLimit:
        match = _RATE.match(text) if isinstance(text, str) else None
        example = '"200MB/hour"' if bytes_ else '"600/minute"'
        if not match:
            raise PolicyError(f"{where} must look like {example}, not {text!r}")
        number, unit, period = match.group(1), match.group(2).lower(), match.group(3).lower()
        period = _PERIOD_ALIASES.get(period, period.rstrip("s") if period != "s" else period)
        if period not in _PERIODS:
            raise PolicyError(f"{where}: unknown period {match.group(3)!r}; use second, minute,"
                              " hour or day")
        if bytes_:
            if unit not in _SIZES:
                raise PolicyError(f"{where}: unknown size unit {match.group(2)!r}; use B, kB, MB,"
                                  " GB, KiB, MiB or GiB")
            amount = int(float(number.replace("_", "")) * _SIZES[unit])
        else:
            if unit not in ("", "req", "requests", "request"):
                raise PolicyError(f"{where} counts requests; write it like {example}")
            amount = int(float(number.replace("_", "")))
        if amount < 1:
            raise PolicyError(f"{where} must allow at least 1 per {period}")
        return cls(amount, _PERIODS[period])


# Every node serves at most this much to one address unless its policy says
# otherwise: generous for honest peers, a ceiling for a flood.
DEFAULT_REQUEST_RATE = RateLimit(1200, 60)
DEFAULT_BYTE_RATE = RateLimit(500 * 10**6, 3600)
# Objects that may enter from one peer key, and from all peers together: a new
# node takes a few thousand documents from a mirror at once, a flood is held to
# a trickle after that, and one peer can never use up the whole node's budget.
DEFAULT_INGRESS_PER_PEER = RateLimit(6000, 3600)
DEFAULT_INGRESS_BYTES_PER_PEER = RateLimit(300 * 10**6, 3600)
DEFAULT_INGRESS_TOTAL = RateLimit(20_000, 3600)
DEFAULT_INGRESS_BYTES_TOTAL = RateLimit(10**9, 3600)


@dataclass(frozen=True)
class Policy:
    """What this node keeps from peers, and the limits it holds each peer to."""

    accept_all: bool = True
    authors: frozenset[bytes] = frozenset()
    tags: frozenset[str] = frozenset()
    max_object_bytes: int = MAX_OBJECT_BYTES
    request_rate: RateLimit | None = DEFAULT_REQUEST_RATE
    byte_rate: RateLimit | None = DEFAULT_BYTE_RATE
    block: frozenset[bytes] = frozenset()
    block_peers: frozenset[str] = frozenset()  # host names, IPs, or URLs
    ingress_objects_per_peer: RateLimit | None = DEFAULT_INGRESS_PER_PEER
    ingress_bytes_per_peer: RateLimit | None = DEFAULT_INGRESS_BYTES_PER_PEER
    ingress_objects_total: RateLimit | None = DEFAULT_INGRESS_TOTAL
    ingress_bytes_total: RateLimit | None = DEFAULT_INGRESS_BYTES_TOTAL
    source: str = field(default="default", compare=False)

    def decide(self, obj: SignedObject, size: int) -> str | None:
        """None if the object may be stored here, else the reason it is declined.

        Retractions, profiles and peer records are kept from any author who is
        not blocked, whatever the scope: they are small, and without them
        withdrawn content would come back, names would be missing and peers
        could not find each other.
        """
        if obj.author in self.block:
            return "its author is on this node's block list"
        if size > self.max_object_bytes:
            return f"it is {size} bytes; this node keeps objects up to {self.max_object_bytes}"
        if self.accept_all or not isinstance(obj.content, Document):
            return None
        if obj.author in self.authors or self.tags.intersection(obj.content.tags):
            return None
        return "neither its author nor its tags are among those this node keeps"

    def blocks_peer(self, url_or_host: str) -> bool:
        if not self.block_peers:
            return False
        host = urlsplit(url_or_host).hostname if "://" in url_or_host else url_or_host
        return url_or_host.rstrip("/") in self.block_peers or (host or "") in self.block_peers

    def fingerprint(self) -> str:
        """Changes whenever what is accepted changes (limits do not count)."""
        parts = [
            "all" if self.accept_all else "some",
            ",".join(sorted(a.hex() for a in self.authors)),
            ",".join(sorted(self.tags)),
            str(self.max_object_bytes),
            ",".join(sorted(b.hex() for b in self.block)),
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """The policy as /status shows it."""
        return {
            "source": self.source,
            "accept": "all" if self.accept_all else {
                "authors": sorted(a.hex() for a in self.authors), "tags": sorted(self.tags)},
            "max_object_bytes": self.max_object_bytes,
            "rate_limit_per_peer": rate_text(self.request_rate, ""),
            "byte_limit_per_peer": rate_text(self.byte_rate, "B"),
            "blocked_authors": len(self.block),
            "blocked_peers": len(self.block_peers),
        }

    def with_ingress(self, budgets: dict[str, str], *, where: str) -> Policy:
        """This policy with the ingress budgets named in `budgets` (keys of INGRESS_KEYS,
        values like "600/minute" or "50MB/hour"), as `serve` and `mirror` flags give them."""
        changes: dict[str, Any] = {}
        for key, text in budgets.items():
            attr, bytes_ = INGRESS_KEYS[key]
            changes[attr] = RateLimit.parse(text, bytes_=bytes_,
                                            where=f"{where} --{key.replace('_', '-')}")
        return replace(self, **changes)

    # -- loading --------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str) -> Policy:
        path = Path(path).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise PolicyError(f"policy file {path} does not exist") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"policy file {path} cannot be read: {exc}") from exc
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PolicyError(
                f"policy file {path} is not valid JSON: {exc.msg} at line {exc.lineno},"
                f" column {exc.colno}"
            ) from exc
        return cls.from_json(value, source=str(path))

    @classmethod
    def from_json(cls, value: Any, *, source: str = "policy") -> Policy:
        if not isinstance(value, dict):
            raise PolicyError(f"{source}: a policy is a JSON object, e.g. {{\"accept\": \"all\"}}")
        unknown = sorted(set(value) - set(KNOWN_KEYS))
        if unknown:
            raise PolicyError(
                f"{source}: unknown key {unknown[0]!r}; a policy may have {', '.join(KNOWN_KEYS)}"
            )
        args: dict[str, Any] = {"source": source}
        accept = value.get("accept", "all")
        if accept != "all":
            if not isinstance(accept, dict) or set(accept) - {"authors", "tags"} or not accept:
                raise PolicyError(
                    f'{source}: "accept" must be "all" or an object with "authors" and/or "tags"'
                )
            args["accept_all"] = False
            args["authors"] = _keys(accept.get("authors", []), f'{source}: "accept.authors"')
            tags = accept.get("tags", [])
            if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
                raise PolicyError(f'{source}: "accept.tags" must be a list of tags')
            args["tags"] = frozenset(t.strip().lower() for t in tags)
        if "max_object_bytes" in value:
            limit = value["max_object_bytes"]
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise PolicyError(f'{source}: "max_object_bytes" must be a positive integer')
            if limit > MAX_OBJECT_BYTES:
                raise PolicyError(
                    f'{source}: "max_object_bytes" is {limit}, above the protocol limit of'
                    f" {MAX_OBJECT_BYTES} bytes that every peer enforces; use a smaller number"
                )
            args["max_object_bytes"] = limit
        if "rate_limit_per_peer" in value:
            args["request_rate"] = RateLimit.parse(
                value["rate_limit_per_peer"], bytes_=False, where=f'{source}: "rate_limit_per_peer"'
            )
        if "byte_limit_per_peer" in value:
            args["byte_rate"] = RateLimit.parse(
                value["byte_limit_per_peer"], bytes_=True, where=f'{source}: "byte_limit_per_peer"'
            )
        for key, (attr, bytes_) in INGRESS_KEYS.items():
            if key in value:
                args[attr] = RateLimit.parse(value[key], bytes_=bytes_, where=f'{source}: "{key}"')
        args["block"] = _keys(value.get("block", []), f'{source}: "block"')
        peers = value.get("block_peers", [])
        if not isinstance(peers, list) or not all(isinstance(p, str) and p for p in peers):
            raise PolicyError(f'{source}: "block_peers" must be a list of addresses or URLs')
        args["block_peers"] = frozenset(p.strip().rstrip("/") for p in peers)
        return cls(**args)


def _keys(value: object, where: str) -> frozenset[bytes]:
    if not isinstance(value, list):
        raise PolicyError(f"{where} must be a list of public keys (64 hex characters each)")
    keys = set()
    for item in value:
        if not isinstance(item, str) or not _HEX_KEY.match(item.strip().lower()):
            raise PolicyError(
                f"{where}: {item!r} is not a public key; give the 64 hex characters"
                " that `commons id` prints"
            )
        keys.add(bytes.fromhex(item.strip().lower()))
    return frozenset(keys)


def rate_text(limit: RateLimit | None, unit: str) -> str | None:
    if limit is None:
        return None
    period = {v: k for k, v in _PERIODS.items()}.get(limit.seconds, f"{limit.seconds}s")
    amount = str(limit.amount)
    if unit == "B":  # as a person would write it in a policy: 300MB, not 300000000B
        for prefix, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
            if limit.amount % size == 0:
                amount = f"{limit.amount // size}{prefix}"
                break
    return f"{amount}{unit}/{period}"


class RateLimiter:
    """Token buckets, one per peer key. Pure: the caller passes the time."""

    def __init__(self, limit: RateLimit | None, *, max_keys: int = 10_000) -> None:
        self.limit = limit
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last time)
        self._max_keys = max_keys

    def take(self, key: str, amount: int, now: float) -> float:
        """Spend `amount`; 0.0 if allowed, else the seconds to wait before trying again.

        A single request larger than the whole bucket is allowed when the
        bucket is full, so one big object can never be refused forever.
        """
        if self.limit is None:
            return 0.0
        capacity = float(self.limit.amount)
        rate = capacity / self.limit.seconds
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens >= amount or tokens >= capacity:
            self._remember(key, (tokens - amount, now))
            return 0.0
        self._remember(key, (tokens, now))
        return (min(amount, capacity) - tokens) / rate

    def _remember(self, key: str, state: tuple[float, float]) -> None:
        self._buckets.pop(key, None)
        self._buckets[key] = state
        while len(self._buckets) > self._max_keys:  # forget the least recently seen peer
            self._buckets.pop(next(iter(self._buckets)))


def _m1_declined(db: sqlite3.Connection) -> None:
    execute_script(
        db,
        """
        CREATE TABLE declined (
            id BLOB PRIMARY KEY,
            policy TEXT NOT NULL,
            reason TEXT NOT NULL,
            at INTEGER NOT NULL
        );
        """
    )


class Declined:
    """Ids this node fetched once and declined under its policy, so it does not fetch them again.

    Remembered per policy fingerprint: when the policy changes, what it
    declined before is fetched again and judged by the new rules.
    """

    def __init__(self, store: ObjectStore, policy: Policy) -> None:
        store.migrate("declined", [_m1_declined])
        self._store = store
        self._policy = policy.fingerprint()
        rows = store.query("SELECT id FROM declined WHERE policy = ?", (self._policy,))
        self._ids = {bytes(r[0]) for r in rows}
        with store.transaction() as db:
            db.execute("DELETE FROM declined WHERE policy != ?", (self._policy,))

    def __contains__(self, oid: object) -> bool:
        return oid in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def forget(self, reason: str) -> int:
        """Forget the ids declined for `reason` (blocking), so they are fetched again."""
        with self._store.transaction() as db:
            rows = db.execute("SELECT id FROM declined WHERE reason = ?", (reason,)).fetchall()
            db.execute("DELETE FROM declined WHERE reason = ?", (reason,))
        self._ids.difference_update(bytes(r[0]) for r in rows)
        return len(rows)

    def add_many(self, ids: Sequence[bytes], reason: str, now: int) -> None:
        """Remember many declined ids in one transaction (blocking)."""
        new = [oid for oid in dict.fromkeys(ids) if oid not in self._ids]
        with self._store.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO declined (id, policy, reason, at) VALUES (?, ?, ?, ?)",
                [(oid, self._policy, reason, now) for oid in new])
        self._ids.update(new)

    def trim(self, reason: str, keep: int) -> int:
        """Forget all but the `keep` newest ids declined for `reason` (blocking)."""
        with self._store.transaction() as db:
            rows = db.execute(
                "SELECT id FROM declined WHERE reason = ?"
                " ORDER BY at DESC, rowid DESC LIMIT -1 OFFSET ?",
                (reason, keep)).fetchall()
            db.executemany("DELETE FROM declined WHERE id = ?", rows)
        self._ids.difference_update(bytes(r[0]) for r in rows)
        return len(rows)

    def add(self, oid: bytes, reason: str, now: int) -> None:
        """Remember a declined id (blocking: call it off the event loop)."""
        if oid in self._ids:
            return
        self._ids.add(oid)
        with self._store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO declined (id, policy, reason, at) VALUES (?, ?, ?, ?)",
                (oid, self._policy, reason, now),
            )
