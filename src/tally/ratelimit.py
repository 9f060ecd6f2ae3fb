"""A per-key request rate limit kept in memory: a token bucket in its GCRA form (one instant per
key), timed by the injected clock so that tests decide what "the same second" is."""

from __future__ import annotations

import math
import threading

from tally.errors import RateLimited
from tally.settings import Clock
from tally.timeutil import to_micros

#: Past this many keys, a hit also forgets the keys that may call again (bounded memory).
PRUNE_ABOVE = 10_000


class RateLimiter:
    """At most ``per_second`` requests per second per key, sustained.

    A key may send ``max(1, int(per_second))`` requests back to back, then one per
    ``1 / per_second`` seconds. ``per_second <= 0`` switches the limit off. Refused requests
    do not consume the key's allowance, so waiting ``Retry-After`` is always enough.
    """

    def __init__(self, per_second: float, clock: Clock) -> None:
        self.per_second = per_second
        self._clock = clock
        self._interval_us = round(1_000_000 / per_second) if per_second > 0 else 0
        self._tolerance_us = (max(1, int(per_second)) - 1) * self._interval_us
        self._lock = threading.Lock()
        #: key -> the theoretical arrival time of its next request (epoch µs)
        self._due: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return self._interval_us > 0

    def hit(self, key: str) -> None:
        """Count one request of ``key``; raise :class:`RateLimited` when it is over the limit."""
        if not self.enabled:
            return
        now = to_micros(self._clock())
        with self._lock:
            due = max(self._due.get(key, now), now)
            wait_us = due - self._tolerance_us - now
            if wait_us > 0:
                seconds = max(1, math.ceil(wait_us / 1_000_000))
                raise RateLimited(
                    f"too many requests: at most {self.per_second:g} per second per key;"
                    f" retry in {seconds} s",
                    retry_after=seconds,
                )
            self._due[key] = due + self._interval_us
            if len(self._due) > PRUNE_ABOVE:
                self._prune(now)

    def _prune(self, now: int) -> None:
        for key in [k for k, due in self._due.items() if due <= now]:
            del self._due[key]
