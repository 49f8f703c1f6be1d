"""A class asking at once: many concurrent clients against a mirror's /ask, and
the gossip latency of two nodes whose only link is that mirror.

Used by tests/test_web_load.py (which checks what the clients get) and by
bench/web.py (which reports the numbers).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from sync_support import Peer, get_json

from commons.ingest import Extracted

QUESTIONS = (
    "How do I run a community mirror?",
    "How do I add a document?",
    "What happens when I retract a document?",
    "How does sync work between peers?",
    "Can I use the commons without internet?",
    "How are signatures checked?",
    "What is a seed document?",
    "How do I ask a question?",
    "Who decides what a mirror keeps?",
    "How do I move documents on a USB stick?",
)


@dataclass
class LoadReport:
    seconds: float
    clients: int
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # exceptions by type
    latencies: list[float] = field(default_factory=list)  # of the 200s

    def to_json(self) -> dict[str, Any]:
        total = sum(self.statuses.values()) + sum(self.errors.values())
        answered = self.statuses.get(200, 0)
        lat = sorted(self.latencies)
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 1),
            "requests": total,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "answers_per_second": round(answered / self.seconds, 2) if self.seconds else 0.0,
            "share_503": round(self.statuses.get(503, 0) / total, 3) if total else 0.0,
            "answer_latency_p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
            "answer_latency_p95_ms": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1)
            if lat else None,
        }


async def load(base: str, *, clients: int, seconds: float) -> LoadReport:
    """`clients` loops asking questions as fast as they are answered, for `seconds`."""
    report = LoadReport(seconds=seconds, clients=clients)
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:

        async def client(n: int) -> None:
            i = n
            while time.monotonic() < deadline:
                question = QUESTIONS[i % len(QUESTIONS)]
                i += 1
                started = time.monotonic()
                try:
                    async with http.get(f"{base}/ask?q={quote(question)}") as r:
                        await r.read()
                        report.statuses[r.status] += 1
                        if r.status == 200:
                            report.latencies.append(time.monotonic() - started)
                        elif r.status == 503:
                            if not r.headers.get("Retry-After", "").isdigit():
                                report.errors["503 without Retry-After"] += 1
                            # a person reads "try again" before trying again
                            await asyncio.sleep(0.2)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    report.errors[type(exc).__name__] += 1

        started = time.monotonic()
        await asyncio.gather(*(client(n) for n in range(clients)))
        report.seconds = time.monotonic() - started
    return report


def gossip_latency(source: Peer, target: Peer, label: str) -> float:
    """Seconds from adding a document at `source` until `target` holds it."""
    before = int(get_json(target.url + "/status")["documents"])
    started = time.monotonic()
    source.api.add(Extracted(title=f"{label} note", body=f"A note about {label}, timed.",
                             media_type="text/markdown"),
                   title=None, tags=[], licence="CC-BY-4.0", replaces=None)
    while int(get_json(target.url + "/status")["documents"]) <= before:
        if time.monotonic() - started > 120:
            raise AssertionError(f"{label}: the document never reached {target.name}")
        time.sleep(0.02)
    return time.monotonic() - started
