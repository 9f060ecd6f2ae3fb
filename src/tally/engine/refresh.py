"""Keeping the second-level rollups fresh (the per-department rows, the activity counts):
recompute the days that appends or directory changes made stale, from the member-day rollups
and the directory, about a month of days at a time.

Readers never wait for this: a stale day is answered from the member-day rollups (slower,
same answer). The server runs :class:`Refresher` in the background; ``tally import`` and
``tally rollup rebuild`` refresh before they return.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, timedelta
from itertools import groupby
from typing import TypeVar

from tally.engine.department_usage import department_spans
from tally.engine.directory import DirectoryService
from tally.engine.environment_stats import developer_spans
from tally.engine.memo import derived
from tally.model.directory import Directory
from tally.stores.base import EventStore, MemberSpan
from tally.timeutil import day_start, month_first, next_month, to_micros

log = logging.getLogger(__name__)
S = TypeVar("S")

#: Days recomputed per store transaction: bounds how long appends wait for one step, and
#: spreads the cost of listing every subtree's members over a month of days.
CHUNK_DAYS = 31


def refresh_departments(store: EventStore, directories: DirectoryService, org_id: str) -> int:
    """Recompute the organization's stale per-department days; answers how many there were."""
    return _refresh(
        directories,
        org_id,
        _chunks(store.stale_department_days(org_id), CHUNK_DAYS),
        lambda chunk: (chunk[0], chunk[-1] + timedelta(days=1)),
        ("every department's spans", department_spans),
        store.refresh_department_days,
    )


def refresh_moved_departments(store: EventStore, directories: DirectoryService, org_id: str) -> int:
    """Recompute, on every day, the rows of the departments a re-parenting made stale (the
    subtrees above the moved department, old and new); answers how many departments.

    The staleness of each is cleared with the last chunk, unless a later move marked it
    again meanwhile (its generation grew): then the next pass recomputes it.
    """
    stale = store.stale_departments(org_id)
    if not stale:
        return 0
    chunks = list(_chunks(store.assistant_days(org_id), CHUNK_DAYS)) or [[]]
    for number, chunk in enumerate(chunks, start=1):
        with directories.held(org_id) as directory:
            spans: dict[str, list[MemberSpan]] = {}
            if chunk:
                tz = directory.org.timezone
                first = to_micros(day_start(chunk[0], tz))
                end = to_micros(day_start(chunk[-1] + timedelta(days=1), tz))
                every = derived(
                    directory,
                    ("every department's spans", first, end),
                    lambda: department_spans(directory, first, end),  # noqa: B023
                )
                spans = {department: every.get(department, []) for department in stale}
            last = number == len(chunks)
            store.refresh_departments(org_id, spans, chunk, stale if last else None)
    return len(stale)


def refresh_activity(store: EventStore, directories: DirectoryService, org_id: str) -> int:
    """Recompute the organization's stale activity days (and their months, whole); answers how
    many days there were."""
    return _refresh(
        directories,
        org_id,
        _months(store.stale_activity_days(org_id)),
        lambda month: (month_first(month[0]), next_month(month[0])),
        ("developer spans", developer_spans),
        store.refresh_activity_days,
    )


def _refresh(
    directories: DirectoryService,
    org_id: str,
    chunks: Iterable[list[date]],
    bounds: Callable[[list[date]], tuple[date, date]],
    spans: tuple[str, Callable[[Directory, int, int], S]],
    store_refresh: Callable[[str, S, list[date]], None],
) -> int:
    """For each chunk of stale days: the directory's spans over the chunk's ``bounds`` (first
    day, day after the last), then the store's refresh of the chunk."""
    name, spans_of = spans
    done = 0
    for chunk in chunks:
        # The directory stays still while a chunk is computed and stored, so no directory
        # change can mark days stale between reading the directory and marking them fresh.
        with directories.held(org_id) as directory:
            tz = directory.org.timezone
            first, end = bounds(chunk)
            window = (to_micros(day_start(first, tz)), to_micros(day_start(end, tz)))
            found = derived(  # kept with the snapshot: a busy day is refreshed again and again
                directory,
                (name, *window),
                lambda: spans_of(directory, *window),  # noqa: B023  (called at once)
            )
            store_refresh(org_id, found, chunk)
        done += len(chunk)
    return done


def refresh_org(store: EventStore, directories: DirectoryService, org_id: str) -> int:
    """Every second-level rollup of the organization; answers the stale days recomputed."""
    return (
        refresh_departments(store, directories, org_id)
        + refresh_moved_departments(store, directories, org_id)
        + refresh_activity(store, directories, org_id)
    )


def refresh_all(store: EventStore, directories: DirectoryService) -> int:
    """:func:`refresh_org` of every organization."""
    return sum(refresh_org(store, directories, org.id) for org in directories.orgs())


def _months(days: Sequence[date]) -> Iterator[list[date]]:
    """Ascending ``days`` by calendar month."""
    for _, month in groupby(days, key=lambda d: (d.year, d.month)):
        yield list(month)


def _chunks(days: Sequence[date], span: int) -> Iterator[list[date]]:
    """Ascending ``days`` in runs whose first and last lie less than ``span`` days apart."""
    chunk: list[date] = []
    for day in days:
        if chunk and (day - chunk[0]).days >= span:
            yield chunk
            chunk = []
        chunk.append(day)
    if chunk:
        yield chunk


class Refresher:
    """A daemon thread that runs :func:`refresh_all` every ``interval`` seconds until stopped."""

    def __init__(self, store: EventStore, directories: DirectoryService, interval: float) -> None:
        self._store = store
        self._directories = directories
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tally-refresh", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                refreshed = refresh_all(self._store, self._directories)
            except Exception:  # a failed pass must not end the thread; the next one retries
                log.exception("refreshing the per-department rollups failed")
            else:
                if refreshed:
                    log.info("refreshed the per-department rollups of %d day(s)", refreshed)
            self._stop.wait(self._interval)


class IdleCheckpointer:
    """A daemon thread that folds the store's write-ahead log into it once no write came for
    ``idle`` seconds: a server that took a burst of events and then went quiet restarts
    (or recovers from a crash) without replaying them."""

    def __init__(self, store: EventStore, idle: float) -> None:
        self._store = store
        self._idle = idle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tally-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        poll = min(self._idle / 4, 15.0)
        while not self._stop.wait(poll):
            try:
                if self._store.checkpoint_when_idle(self._idle):
                    log.info("checkpointed the store after %g s without writes", self._idle)
            except Exception:  # never end the thread; the next poll retries
                log.exception("the idle checkpoint failed")
