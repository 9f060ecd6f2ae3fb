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
from collections.abc import Iterator, Sequence
from datetime import date
from itertools import groupby

from tally.engine.department_usage import department_spans
from tally.engine.directory import DirectoryService
from tally.engine.environment_stats import developer_spans
from tally.engine.memo import derived
from tally.stores.base import Store
from tally.timeutil import day_end, day_start, to_micros

log = logging.getLogger(__name__)

#: Days recomputed per store transaction: bounds how long appends wait for one step, and
#: spreads the cost of listing every subtree's members over a month of days.
CHUNK_DAYS = 31


def refresh_departments(store: Store, directories: DirectoryService, org_id: str) -> int:
    """Recompute the organization's stale per-department days; answers how many there were."""
    done = 0
    for chunk in _chunks(store.stale_department_days(org_id), CHUNK_DAYS):
        # The directory stays still while a chunk is computed and stored, so no member move
        # can be marked stale between reading the directory and marking the days fresh.
        with directories.held(org_id) as directory:
            tz = directory.org.timezone
            window = (to_micros(day_start(chunk[0], tz)), to_micros(day_end(chunk[-1], tz)))
            spans = derived(  # kept with the snapshot: a busy day is refreshed again and again
                directory,
                ("every department's spans", *window),
                lambda: department_spans(directory, *window),  # noqa: B023  (called at once)
            )
            store.refresh_department_days(org_id, spans, chunk)
        done += len(chunk)
    return done


def refresh_activity(store: Store, directories: DirectoryService, org_id: str) -> int:
    """Recompute the organization's stale activity days (and their months); answers how many
    days there were."""
    done = 0
    for month in _months(store.stale_activity_days(org_id)):
        with directories.held(org_id) as directory:  # see refresh_departments
            tz = directory.org.timezone
            first = month[0].replace(day=1)
            last = date(first.year + first.month // 12, first.month % 12 + 1, 1)
            window = (to_micros(day_start(first, tz)), to_micros(day_start(last, tz)))
            spans = derived(
                directory,
                ("developer spans", *window),
                lambda: developer_spans(directory, *window),  # noqa: B023  (called at once)
            )
            store.refresh_activity_days(org_id, spans, month)
        done += len(month)
    return done


def refresh_org(store: Store, directories: DirectoryService, org_id: str) -> int:
    """Every second-level rollup of the organization; answers the stale days recomputed."""
    return refresh_departments(store, directories, org_id) + refresh_activity(
        store, directories, org_id
    )


def refresh_all(store: Store, directories: DirectoryService) -> int:
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

    def __init__(self, store: Store, directories: DirectoryService, interval: float) -> None:
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
