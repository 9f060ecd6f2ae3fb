"""Group commit: concurrent batches share one store transaction (and one fsync).

The first caller to take the write lock writes every batch queued by then, its own included, so
under load each commit carries several requests' events; alone, a batch is written at once. Ids
sent by two batches of one group are stored once: the earlier batch gets the event, the later
one a duplicate, as if they had been sent one after the other.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from tally.model.events import StoredEvent
from tally.stores.base import EventStore


@dataclass
class _Batch:
    org_id: str
    rows: Sequence[StoredEvent]
    new_ids: frozenset[str] = frozenset()
    error: BaseException | None = None
    done: bool = False
    claimed: list[StoredEvent] = field(default_factory=list)


class GroupCommitter:
    """Appends batches of events to a store, several batches per transaction under load."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._queue: list[_Batch] = []
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def append(self, org_id: str, rows: Sequence[StoredEvent]) -> frozenset[str]:
        """Store ``rows`` (distinct ids) durably; return the ids that were new."""
        batch = _Batch(org_id, rows)
        with self._queue_lock:
            self._queue.append(batch)
        with self._write_lock:
            if not batch.done:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                self._write(group)
        if batch.error is not None:
            raise batch.error
        return batch.new_ids

    def append_table(self, org_id: str, table: pa.Table) -> frozenset[str]:
        """A bulk batch (Arrow, stored layout, distinct ids): its own transaction."""
        with self._write_lock:
            return self._store.append_table(org_id, table).new_ids

    def _write(self, group: list[_Batch]) -> None:
        by_org: dict[str, list[_Batch]] = {}
        for batch in group:
            by_org.setdefault(batch.org_id, []).append(batch)
        for org_id, batches in by_org.items():
            seen: set[str] = set()
            combined: list[StoredEvent] = []
            for batch in batches:  # an id in two batches belongs to the earlier one
                batch.claimed = [row for row in batch.rows if row.id not in seen]
                seen.update(row.id for row in batch.claimed)
                combined.extend(batch.claimed)
            try:
                new = self._store.append_events(org_id, combined).new_ids
            except BaseException as exc:  # every waiting request learns of it
                for batch in batches:
                    batch.error, batch.done = exc, True
                continue
            for batch in batches:
                batch.new_ids = frozenset(row.id for row in batch.claimed if row.id in new)
                batch.done = True
