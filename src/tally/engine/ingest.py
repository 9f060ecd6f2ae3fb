"""Ingest: decode a body, check each event against the org's directory, store the good ones.

The HTTP API (``POST .../events``) and ``tally import`` both call :meth:`Ingestor.ingest_items`,
so they share one set of rules and one idempotency.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from tally.engine.columnar import stored_table, vouched_rows
from tally.engine.directory import DirectoryService
from tally.engine.group_commit import GroupCommitter
from tally.errors import BadRequest, NotFound
from tally.model.directory import EARLIEST, Directory
from tally.model.events import (
    CHAT_TYPES,
    STORED_SCHEMA,
    AppData,
    AppEdit,
    AppResource,
    AppVisit,
    Chat,
    Code,
    Completion,
    DecodedItem,
    Event,
    StoredEvent,
    WorkspaceActivity,
    decode_json_array,
    decode_mapping,
    decode_ndjson,
)
from tally.settings import Clock
from tally.stores.base import EventStore
from tally.timeutil import to_micros, zone


class Rejection(msgspec.Struct, omit_defaults=False):
    index: int
    id: str | None
    error: str


class IngestResult(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: list[Rejection]

    def merge(self, other: IngestResult, index_offset: int = 0) -> IngestResult:
        return IngestResult(
            accepted=self.accepted + other.accepted,
            duplicates=self.duplicates + other.duplicates,
            rejected=self.rejected
            + [Rejection(r.index + index_offset, r.id, r.error) for r in other.rejected],
        )


def decode_body(body: bytes, content_type: str) -> list[DecodedItem]:
    """Items of an events body: NDJSON when the content type says so, else a JSON array."""
    media = content_type.split(";")[0].strip().lower()
    if media in ("application/x-ndjson", "application/ndjson", "application/jsonl"):
        return list(decode_ndjson(body))
    try:
        return list(decode_json_array(body))
    except ValueError as exc:
        raise BadRequest(
            f"{exc}; the body must be a JSON array of events, or NDJSON sent as"
            " application/x-ndjson"
        ) from exc


class Ingestor:
    """Validates events against the directory and appends them to the store."""

    def __init__(
        self, store: EventStore, directory: DirectoryService, clock: Clock, max_future_seconds: int
    ) -> None:
        self._store = store
        self._directory = directory
        self._clock = clock
        self._max_future = timedelta(seconds=max_future_seconds)
        self._committer = GroupCommitter(store)

    def ingest_body(self, org_id: str, body: bytes, content_type: str) -> IngestResult:
        return self.ingest_items(org_id, decode_body(body, content_type))

    def ingest_items(self, org_id: str, items: Iterable[DecodedItem]) -> IngestResult:
        directory = self._directory.get(org_id)
        if directory is None:
            raise NotFound(f'organization "{org_id}" does not exist')
        rows, rejected, duplicates = self._check(directory, items)
        accepted = len(self._committer.append(org_id, rows)) if rows else 0
        duplicates += len(rows) - accepted
        return IngestResult(accepted=accepted, duplicates=duplicates, rejected=rejected)

    def ingest_arrow(self, org_id: str, batch: pa.Table, first_index: int = 0) -> IngestResult:
        """Ingest an Arrow batch (a Parquet import): rows the vectorised checks vouch for are
        appended in one go; the others take the per-item path, which words their rejection."""
        directory = self._directory.get(org_id)
        if directory is None:
            raise NotFound(f'organization "{org_id}" does not exist')
        mask = vouched_rows(batch, directory, self._clock() + self._max_future)
        vouched = batch.filter(mask)
        rows = stored_table(vouched, org_id, directory.org.timezone, STORED_SCHEMA)
        accepted = len(self._committer.append_table(org_id, rows)) if rows.num_rows else 0
        result = IngestResult(accepted, vouched.num_rows - accepted, [])
        others = pc.indices_nonzero(pc.invert(mask)).to_pylist()
        if others:
            items = [
                decode_mapping(first_index + i, row)
                for i, row in zip(others, batch.take(others).to_pylist(), strict=True)
            ]
            result = result.merge(self.ingest_items(org_id, items))
        return result

    def _check(
        self, directory: Directory, items: Iterable[DecodedItem]
    ) -> tuple[list[StoredEvent], list[Rejection], int]:
        latest = self._clock() + self._max_future
        tz = zone(directory.org.timezone)
        rows: list[StoredEvent] = []
        rejected: list[Rejection] = []
        seen: set[str] = set()
        duplicates = 0
        for item in items:
            event = item.event
            if event is None:
                rejected.append(Rejection(item.index, item.raw_id, item.error or "invalid event"))
                continue
            problem = check_event(event, directory)
            if problem is None and event.time > latest:
                problem = "time is more than 5 minutes in the future"
            if problem is None and event.time < EARLIEST:
                problem = "time is before 1970-01-01T00:00:00Z"
            if problem is not None:
                rejected.append(Rejection(item.index, event.id, problem))
            elif event.id in seen:
                duplicates += 1  # the first occurrence in the batch stays
            else:
                seen.add(event.id)
                rows.append(to_stored(event, event.time.astimezone(tz).date()))
        return rows, rejected, duplicates


def check_event(event: Event, directory: Directory) -> str | None:
    """Why ``event`` cannot be stored for this directory, or ``None`` when it can."""
    if event.member not in directory.members:
        return f'unknown member "{event.member}"'
    if isinstance(event, Completion) and not event.accepted and event.lines_accepted > 0:
        return "lines_accepted must be 0 when accepted is false"
    if (
        isinstance(event, Chat)
        and event.chat_type not in CHAT_TYPES
        and event.chat_type != event.chat_type.lower()
    ):
        return (
            f'chat_type "{event.chat_type}" is neither one of '
            f"{', '.join(sorted(CHAT_TYPES))} nor a lower-case custom command"
        )
    if isinstance(event, WorkspaceActivity) and event.workspace not in directory.workspaces:
        return f'unknown workspace "{event.workspace}"'
    if isinstance(event, AppVisit | AppEdit | AppResource | AppData) and (
        event.app not in directory.apps
    ):
        return f'unknown app "{event.app}"'
    return None


def to_stored(event: Event, day: date) -> StoredEvent:
    """Flatten a typed event into the row the stores keep."""
    row = StoredEvent(
        id=event.id,
        ts=to_micros(event.time),
        day=day,
        type=event.__struct_config__.tag,  # type: ignore[arg-type]
        member=event.member,
    )
    if isinstance(event, Completion):
        row.ide, row.language = event.ide, event.language
        row.lines_suggested, row.accepted = event.lines_suggested, event.accepted
        row.lines_accepted = event.lines_accepted
    elif isinstance(event, Chat):
        row.ide, row.chat_type, row.accepted = event.ide, event.chat_type, event.accepted
    elif isinstance(event, Code):
        row.language, row.source = event.language, event.source
        row.lines_accepted, row.lines_changed = event.lines_accepted, event.lines_changed
    elif isinstance(event, WorkspaceActivity):
        row.workspace = event.workspace
    elif isinstance(event, AppVisit | AppEdit):
        row.app = event.app
    elif isinstance(event, AppResource):
        row.app, row.resource, row.delta = event.app, event.resource, event.delta
    elif isinstance(event, AppData):
        row.app, row.records = event.app, event.records
    return row
