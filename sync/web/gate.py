"""Bounds on the costly pages: a few answers at once, a short queue, a rate per client.

A school's mirror is a small box and a class may ask at the same moment. An
answer embeds the question and ranks passages: real CPU work. So at most
`concurrency` answers run at once, at most `queue` more wait for a slot, and
anyone beyond that is told to come back later (503 with Retry-After) at once,
rather than piling up until every request times out. Each client (by address)
also has a token bucket, so one busy tab cannot take every slot (429).
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

Clock = Callable[[], float]
MAX_CLIENTS = 4096  # token buckets kept; the least recently seen are forgotten


@dataclass(frozen=True)
class GateLimits:
    concurrency: int  # answers running at once
    queue: int  # answers waiting for a slot
    per_minute: float  # answers (and searches) per client per minute
    burst: int  # how many a client may send at once before the rate applies

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("at least one answer must be allowed at a time")
        if self.queue < 0 or self.burst < 1 or self.per_minute <= 0:
            raise ValueError("the queue cannot be negative, and burst and rate must be positive")


class Busy(Exception):
    """Every slot is taken and the queue is full: come back in `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"this mirror is answering many questions; try again in "
                         f"{retry_after} seconds")
        self.retry_after = retry_after


class RateLimiter:
    """Token buckets per client; `admit` says how long to wait (0: go ahead)."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def admit(self, client: str, now: float) -> float:
        tokens, seen = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - seen) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return wait


class AnswerGate:
    """The concurrency bound and the queue in front of it (one per event loop)."""

    def __init__(self, limits: GateLimits, clock: Clock) -> None:
        self.limits = limits
        self.clock = clock
        self.rates = RateLimiter(limits.per_minute, limits.burst)
        self._slots = asyncio.Semaphore(limits.concurrency)
        self._running = 0
        self._waiting = 0
        self._mean_seconds = 1.0  # a running mean of how long an answer takes
        self.turned_away = 0

    def retry_after(self) -> int:
        rounds = (self._waiting + self._running) / self.limits.concurrency
        return max(1, math.ceil(self._mean_seconds * max(rounds, 1.0)))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._running >= self.limits.concurrency and self._waiting >= self.limits.queue:
            self.turned_away += 1
            raise Busy(self.retry_after())
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self._running += 1
        started = self.clock()
        try:
            yield
        finally:
            self._running -= 1
            self._slots.release()
            self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * (self.clock() - started)

    def counts(self) -> dict[str, int]:
        return {"running": self._running, "waiting": self._waiting,
                "turned_away": self.turned_away}
