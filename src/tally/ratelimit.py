"""A per-key request rate limit as a generic cell rate algorithm (GCRA), timed by the injected
clock so that tests decide what "the same second" is.

The contract (section 5): one request per interval, no credit saved while a key is idle, and a
tolerance of a tenth of the interval, so a client that spaces its calls one interval apart by its
own clock is not refused for network jitter. The state is one instant per key (its theoretical
arrival time); where it lives is a seam: in memory for one process, in the directory store when
several workers must count a key's requests together.
"""

from __future__ import annotations

import math
import threading
from typing import Protocol

from tally.errors import RateLimited
from tally.settings import Clock
from tally.timeutil import to_micros

#: Past this many keys, a hit also forgets the keys that may call again (bounded memory).
PRUNE_ABOVE = 10_000
#: How early, as a share of the interval, a request may come and still be let through.
TOLERANCE_SHARE = 0.1


class GcraState(Protocol):
    """Where the keys' theoretical arrival times live."""

    def rate_limit_hit(self, key: str, now_us: int, interval_us: int, tolerance_us: int) -> int:
        """Count one request of ``key`` at ``now_us``: 0 when it may pass (and the key's next
        arrival time moves one interval on), else the µs it must wait (nothing changes)."""
        ...


class MemoryGcraState:
    """The arrival times in this process's memory (one ``tally serve`` process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: key -> the theoretical arrival time of its next request (epoch µs)
        self._due: dict[str, int] = {}

    def rate_limit_hit(self, key: str, now_us: int, interval_us: int, tolerance_us: int) -> int:
        with self._lock:
            due = max(self._due.get(key, now_us), now_us)  # an idle key saves no credit
            wait_us = due - tolerance_us - now_us
            if wait_us > 0:
                return wait_us
            self._due[key] = due + interval_us
            if len(self._due) > PRUNE_ABOVE:
                self._prune(now_us)
            return 0

    def _prune(self, now_us: int) -> None:
        for key in [k for k, due in self._due.items() if due <= now_us]:
            del self._due[key]


class RateLimiter:
    """At most one request per ``1 / per_second`` seconds per key, a tenth of that early allowed.

    ``per_second <= 0`` switches the limit off. Refused requests do not consume the key's
    allowance, so waiting ``Retry-After`` is always enough.
    """

    def __init__(self, per_second: float, clock: Clock, state: GcraState | None = None) -> None:
        self.per_second = per_second
        self._clock = clock
        self._state: GcraState = state if state is not None else MemoryGcraState()
        self._interval_us = round(1_000_000 / per_second) if per_second > 0 else 0
        self._tolerance_us = int(self._interval_us * TOLERANCE_SHARE)

    @property
    def enabled(self) -> bool:
        return self._interval_us > 0

    def hit(self, key: str) -> None:
        """Count one request of ``key``; raise :class:`RateLimited` when it is over the limit."""
        if not self.enabled:
            return
        now = to_micros(self._clock())
        wait_us = self._state.rate_limit_hit(key, now, self._interval_us, self._tolerance_us)
        if wait_us > 0:
            seconds = max(1, math.ceil(wait_us / 1_000_000))
            raise RateLimited(
                f"too many requests: at most {self.per_second:g} per second per key;"
                f" retry in {seconds} s",
                retry_after=seconds,
            )
