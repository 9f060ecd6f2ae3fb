"""Bounds on what one process holds for its clients at once.

A 16 MiB events body costs 110-140 MiB while it is decoded and stored, so without a bound a
burst of large bodies takes the process's memory with it. :class:`BodyBudget` counts the body
bytes of the requests in progress (from the first byte read until the answer is made) and
refuses a body that would pass the budget; small bodies are never refused, so a one-event
ingest or a directory write does not wait behind bulk imports.
"""

from __future__ import annotations

from tally.errors import Overloaded


class BodyBudget:
    """The body bytes in flight in this process, against ``limit``. Used from the event
    loop's thread only (reserve and release happen around the threadpool call)."""

    def __init__(self, limit: int, small: int) -> None:
        self.limit = limit
        self.small = small
        self.in_flight = 0

    def reservation(self) -> Reservation:
        return Reservation(self)


class Reservation:
    """One request's share of a :class:`BodyBudget`; :meth:`release` gives it back."""

    def __init__(self, budget: BodyBudget) -> None:
        self._budget = budget
        self.size = 0  # the body's bytes known so far
        self.held = 0  # what this request counts in the budget

    def grow(self, size: int) -> None:
        """The body is at least ``size`` bytes: hold them, or refuse with 503 when that
        would pass the budget (one body is always let through, however large)."""
        budget = self._budget
        self.size = max(self.size, size)
        if self.size <= budget.small or self.size <= self.held:
            return
        others = budget.in_flight - self.held
        if others > 0 and others + self.size > budget.limit:
            raise Overloaded(
                "the server is busy with other large request bodies; send this one again"
                " in a moment"
            )
        budget.in_flight += self.size - self.held
        self.held = self.size

    def release(self) -> None:
        self._budget.in_flight -= self.held
        self.held = 0
