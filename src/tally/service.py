"""The Tally object: the stores and the services over them, shared by the web app and the CLI."""

from __future__ import annotations

import gc
from pathlib import Path

from tally.engine.access import AccessService
from tally.engine.directory import DirectoryService
from tally.engine.ingest import Ingestor
from tally.engine.refresh import refresh_all, refresh_org
from tally.errors import Conflict
from tally.limits import BodyBudget
from tally.ratelimit import GcraState, MemoryGcraState
from tally.settings import Settings
from tally.stores import DirectoryStore, EventStore, Store, open_stores


class Tally:
    """Everything one Tally environment does, as a library (the CLI and the API call this).

    ``store`` (one backend holding both parts, e.g. a DuckDB file) or ``stores`` (the directory
    store and the event store) override what the settings name.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        *,
        stores: tuple[DirectoryStore, EventStore] | None = None,
    ) -> None:
        self.settings = settings
        if store is not None:
            stores = (store, store)
        self.directory_store, self.event_store = stores or open_stores(settings)
        self.directory = DirectoryService(self.directory_store, self.event_store, settings.clock)
        self.access = AccessService(self.directory_store, settings.clock)
        self.ingestor = Ingestor(
            self.event_store, self.directory, settings.clock, settings.max_future_seconds
        )
        #: Where the app usage rate limit keeps its keys: shared by the workers when the
        #: directory store is.
        self.rate_limit_state: GcraState = (
            self.directory_store  # type: ignore[assignment]
            if self.directory_store.shared
            else MemoryGcraState()
        )
        #: The request-body bytes this process holds at once (the web app's requests).
        self.body_budget = BodyBudget(settings.max_body_bytes_in_flight, settings.small_body_bytes)
        self._seen_version = self.directory_store.directory_version()
        self._closed = False

    @property
    def store(self) -> EventStore:
        """The event store (what the statistics read)."""
        return self.event_store

    def sync(self) -> None:
        """Before a request: when other processes share the directory store and one of them
        wrote to it since this process last looked, drop the directory and tokens cached here,
        so that an acknowledged write holds for every later request on any worker."""
        if not self.directory_store.shared:
            return
        version = self.directory_store.directory_version()
        if version != self._seen_version:
            self._seen_version = version
            self.directory.forget()
            self.access.reload()

    def refresh_rollups(self, org_id: str | None = None) -> int:
        """Bring the second-level rollups of ``org_id`` (default: every org) up to date;
        answers how many stale days were recomputed."""
        if org_id is None:
            return refresh_all(self.event_store, self.directory)
        return refresh_org(self.event_store, self.directory, org_id)

    def backup(self, target: Path) -> None:
        """Copy the whole environment, consistently and while serving, into the new DuckDB
        file ``target`` (restore: serve that file). The scale-out stores are backed up with
        their own tools."""
        if target.exists():
            raise Conflict(f"{target} exists already: a backup never overwrites a file")
        backup = getattr(self.event_store, "backup", None)
        if self.settings.scale_out or backup is None:
            raise Conflict(
                "this environment keeps its directory in PostgreSQL and its events in"
                " ClickHouse: back those up with pg_dump and ClickHouse's BACKUP"
                " (docs/operations.md)"
            )
        backup(target)

    def close(self) -> None:
        """Close the stores (once; a second call does nothing)."""
        if self._closed:
            return
        self._closed = True
        self.event_store.close()
        if id(self.directory_store) != id(self.event_store):  # not one backend holding both
            self.directory_store.close()

    def __enter__(self) -> Tally:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def settle_heap(tally: Tally) -> None:
    """Load every organization's directory, then keep the long-lived heap out of the cyclic
    garbage collector's way: ``gc.freeze()`` it, and collect the young generation after
    10,000 net container allocations instead of 700.

    An answer builds thousands of short-lived containers (a year of workspace figures is
    ~800 rows of 300), which triggered ~10 young collections per answer and, now and then,
    a full one over every directory object: 30-200 ms pauses, the p99 of the large answers
    (bench/README.md). The containers are freed by reference counting when the answer is
    sent, so the collector has nothing to find in them.
    """
    for org in tally.directory.orgs():
        tally.directory.require(org.id)
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
