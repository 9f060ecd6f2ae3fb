"""The embedded default store: one DuckDB file, nothing to install.

Instants are kept as epoch microseconds (BIGINT) so that no timezone setting of the database can
change an answer; org-local days are computed at ingest and kept beside each event. Duplicate
events are refused by the primary key (an ART index lookup per id, not a scan).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from tally.errors import StoreBusy
from tally.model.directory import (
    App,
    Department,
    Directory,
    Member,
    MemberVersion,
    Organization,
    Workspace,
    WorkspaceMembership,
)
from tally.model.events import RESOURCES, STORED_COLUMNS, StoredEvent
from tally.model.events import STORED_SCHEMA as EVENT_SCHEMA
from tally.stores import duckdb_activity as activity
from tally.stores import duckdb_departments as departments
from tally.stores import duckdb_rollups as rollups
from tally.stores.base import (
    ActiveMembers,
    AppendResult,
    AppTotals,
    AssistantDay,
    AssistantDayTotals,
    ChatUsage,
    CodingUsage,
    CompletionUsage,
    MemberDay,
    MemberSpan,
    MemberUsage,
    Store,
)
from tally.timeutil import days as days_between
from tally.timeutil import from_micros, month_first, month_last, next_month, to_micros
from tally.tokens import TokenRecord

log = logging.getLogger("tally.store")
SCHEMA_VERSION = 6
#: Appends between two compactions of the rollup deltas they touched.
COMPACT_EVERY = 200
#: The time slice an export reads at once (one day).
EVENT_SLICE_US = 86_400_000_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS orgs (
    id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, domain VARCHAR NOT NULL,
    timezone VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS departments (
    org VARCHAR NOT NULL, id VARCHAR NOT NULL, name VARCHAR NOT NULL, parent VARCHAR,
    PRIMARY KEY (org, id)
);
CREATE TABLE IF NOT EXISTS members (
    org VARCHAR NOT NULL, id VARCHAR NOT NULL, name VARCHAR NOT NULL, email VARCHAR NOT NULL,
    created_at BIGINT NOT NULL, deleted_at BIGINT, PRIMARY KEY (org, id)
);
CREATE TABLE IF NOT EXISTS member_versions (
    org VARCHAR NOT NULL, member VARCHAR NOT NULL, effective_at BIGINT NOT NULL,
    developer BOOLEAN NOT NULL, departments VARCHAR[] NOT NULL,
    PRIMARY KEY (org, member, effective_at)
);
CREATE TABLE IF NOT EXISTS workspaces (
    org VARCHAR NOT NULL, id VARCHAR NOT NULL, name VARCHAR NOT NULL,
    created_at BIGINT NOT NULL, deleted_at BIGINT, PRIMARY KEY (org, id)
);
CREATE TABLE IF NOT EXISTS workspace_members (
    org VARCHAR NOT NULL, workspace VARCHAR NOT NULL, position INTEGER NOT NULL,
    member VARCHAR NOT NULL, since BIGINT NOT NULL, until BIGINT
);
CREATE TABLE IF NOT EXISTS apps (
    org VARCHAR NOT NULL, id VARCHAR NOT NULL, name VARCHAR NOT NULL, creator VARCHAR NOT NULL,
    created_at BIGINT NOT NULL, deleted_at BIGINT, PRIMARY KEY (org, id)
);
CREATE TABLE IF NOT EXISTS tokens (
    id VARCHAR PRIMARY KEY, hash VARCHAR NOT NULL, org VARCHAR, scopes VARCHAR[] NOT NULL,
    created_at BIGINT NOT NULL
);
ALTER TABLE tokens ADD COLUMN IF NOT EXISTS expires_at BIGINT;
ALTER TABLE tokens ADD COLUMN IF NOT EXISTS revoked_at BIGINT;
ALTER TABLE tokens ADD COLUMN IF NOT EXISTS last_used_at BIGINT;
CREATE TABLE IF NOT EXISTS events (
    org VARCHAR NOT NULL, id VARCHAR NOT NULL, ts BIGINT NOT NULL, day DATE NOT NULL,
    type VARCHAR NOT NULL, member VARCHAR NOT NULL,
    ide VARCHAR, language VARCHAR, chat_type VARCHAR, source VARCHAR, accepted BOOLEAN,
    lines_suggested BIGINT, lines_accepted BIGINT, lines_changed BIGINT,
    workspace VARCHAR, app VARCHAR, resource VARCHAR, delta BIGINT, records BIGINT,
    PRIMARY KEY (org, id)
);
"""

_EVENT_SELECT = ", ".join(STORED_COLUMNS)
TOKEN_COLUMNS = "id, hash, org, scopes, created_at, expires_at, revoked_at, last_used_at"


def _us(instant: datetime | None) -> int | None:
    return None if instant is None else to_micros(instant)


def _dt(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


class DuckDBStore(Store):
    """A :class:`Store` in one DuckDB file."""

    def __init__(
        self, path: Path, *, memory_limit: str = "", checkpoint_threshold: str = ""
    ) -> None:
        self.path = path
        try:
            self._db = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreBusy(
                    f"{path} is in use by another process (is `tally serve` running on it?)"
                ) from exc
            raise
        for setting, value in (
            ("memory_limit", memory_limit),
            ("checkpoint_threshold", checkpoint_threshold),
        ):
            if value:
                self._db.execute(f"SET {setting} = '{_setting_value(value)}'")
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._db.execute(SCHEMA)
        self._db.execute(rollups.SCHEMA)
        self._db.execute(departments.SCHEMA)
        self._db.execute(activity.SCHEMA)
        #: Answer the statistics from the rollups (``False``: from the raw events, the oracle).
        self.rollups = True
        self._touched: dict[str, set[date]] = defaultdict(set)
        #: (freshness table, org, day) known stale in the file. Only this process writes the
        #: file, and a day leaves the set when a refresh commits it fresh.
        self._known_stale: set[tuple[str, str, date]] = set()
        self._after_commit: list[Callable[[], None]] = []
        self._appends = 0
        self._last_write = time.monotonic()
        self._migrate()
        empty = "SELECT NOT EXISTS (SELECT 1 FROM {})"
        if self._db.execute(empty.format("member_last")).fetchone() == (True,) and (
            self._db.execute(empty.format("events")).fetchone() == (False,)
        ):  # a file of a version without it: its events, none of its rows
            rollups.fill_member_last(self._db)

    def _migrate(self) -> None:
        """Bring a file of an older schema version up to this one (a new file: just stamp it)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = SCHEMA_VERSION if row is None else int(row[0])
        if version < SCHEMA_VERSION:
            self._db.execute("BEGIN TRANSACTION")
            if version < 2:  # version 2 moved the activity kinds apart
                moved = "kind IN ('any', 'workspace')"
                self._db.execute(f"INSERT INTO activity_day SELECT * FROM member_day WHERE {moved}")
                self._db.execute(f"DELETE FROM member_day WHERE {moved}")
            if version < 6:  # versions 3 to 6 added the second level and reshaped it: anew
                for table, schema in (
                    ("department_day", departments.SCHEMA),
                    ("activity_count", activity.SCHEMA),
                ):
                    self._db.execute(f"DROP TABLE {table}")
                    self._db.execute(schema)
                departments.reset_departments(self._db, None)
                activity.reset(self._db, None)
            self._db.execute("COMMIT")
        self._db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
        )

    # -- plumbing --------------------------------------------------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of this thread: DuckDB connections must not be shared across threads."""
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._db.cursor()
            self._local.cursor = cursor
        return cursor

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._write_lock:
            cursor = self._cursor()
            cursor.execute("BEGIN TRANSACTION")
            self._after_commit = []
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
            self._last_write = time.monotonic()
            for action in self._after_commit:  # still under the lock: no writer in between
                action()

    def _mark_stale(
        self, cursor: duckdb.DuckDBPyConnection, table: str, org_id: str, days: Iterable[date]
    ) -> None:
        """Mark ``days`` stale in ``table``, skipping those this process already knows are
        (a busy day would otherwise be written on every append)."""
        new = sorted(d for d in set(days) if (table, org_id, d) not in self._known_stale)
        if new:
            rollups.mark_stale(cursor, table, org_id, new)
            self._after_commit.append(
                lambda: self._known_stale.update((table, org_id, d) for d in new)
            )

    def _mark_fresh(self, table: str, org_id: str, days: Iterable[date]) -> None:
        """After a refresh's commit: those days are no longer known stale."""
        self._after_commit.append(
            lambda: self._known_stale.difference_update((table, org_id, d) for d in days)
        )

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._cursor().execute(sql, list(params)).fetchall()

    def size_bytes(self) -> int | None:
        """The file and its write-ahead log."""
        files = [self.path, self.path.with_name(self.path.name + ".wal")]
        return sum(f.stat().st_size for f in files if f.exists())

    def checkpoint_when_idle(self, idle_seconds: float) -> bool:
        wal = self.path.with_name(self.path.name + ".wal")
        if time.monotonic() - self._last_write < idle_seconds:
            return False
        if not wal.exists() or wal.stat().st_size == 0:
            return False
        self.compact_rollups()
        with self._write_lock:
            try:
                self._cursor().execute("CHECKPOINT")
            except duckdb.Error as exc:  # e.g. a long read still running: next time
                log.debug("idle checkpoint put off: %s", exc)
                return False
        return True

    def backup(self, target: Path) -> None:
        """Write a consistent copy of the whole store to the new file ``target``, while it
        serves: one read transaction (a snapshot; appends go on meanwhile) copied into a
        freshly attached database, which is checkpointed and closed when detached."""
        cursor = self._db.cursor()
        try:
            (name,) = cursor.execute("SELECT current_database()").fetchall()[0]
            alias = f"tally_backup_{uuid.uuid4().hex}"
            quoted = str(target).replace("'", "''")
            cursor.execute(f"ATTACH '{quoted}' AS {alias}")
            try:
                cursor.execute(f'COPY FROM DATABASE "{name}" TO {alias}')
            finally:
                cursor.execute(f"DETACH {alias}")
        finally:
            cursor.close()

    def close(self) -> None:
        """Compact, fold the write-ahead log into the file (so the next start replays
        nothing), and close."""
        self.compact_rollups()
        self._db.execute("CHECKPOINT")
        self._db.close()

    # -- organizations ---------------------------------------------------------------------
    def put_org(self, org: Organization) -> None:
        with self._transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO orgs VALUES (?, ?, ?, ?)",
                [org.id, org.name, org.domain, org.timezone],
            )

    def get_org(self, org_id: str) -> Organization | None:
        rows = self._rows("SELECT id, name, domain, timezone FROM orgs WHERE id = ?", [org_id])
        return _org(rows[0]) if rows else None

    def list_orgs(self) -> list[Organization]:
        return [
            _org(r) for r in self._rows("SELECT id, name, domain, timezone FROM orgs ORDER BY id")
        ]

    # -- directory -------------------------------------------------------------------------
    def put_department(self, org_id: str, department: Department) -> None:
        with self._transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO departments VALUES (?, ?, ?, ?)",
                [org_id, department.id, department.name, department.parent],
            )

    def put_member(self, org_id: str, member: Member) -> None:
        with self._transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO members VALUES (?, ?, ?, ?, ?, ?)",
                [
                    org_id,
                    member.id,
                    member.name,
                    member.email,
                    _us(member.created_at),
                    _us(member.deleted_at),
                ],
            )
            cur.execute(
                "DELETE FROM member_versions WHERE org = ? AND member = ?", [org_id, member.id]
            )
            cur.executemany(
                "INSERT INTO member_versions VALUES (?, ?, ?, ?, ?)",
                [
                    [org_id, member.id, _us(v.effective_at), v.developer, list(v.departments)]
                    for v in member.versions
                ],
            )

    def put_workspace(self, org_id: str, workspace: Workspace) -> None:
        with self._transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO workspaces VALUES (?, ?, ?, ?, ?)",
                [
                    org_id,
                    workspace.id,
                    workspace.name,
                    _us(workspace.created_at),
                    _us(workspace.deleted_at),
                ],
            )
            cur.execute(
                "DELETE FROM workspace_members WHERE org = ? AND workspace = ?",
                [org_id, workspace.id],
            )
            if workspace.members:
                cur.executemany(
                    "INSERT INTO workspace_members VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        [org_id, workspace.id, i, m.member, _us(m.since), _us(m.until)]
                        for i, m in enumerate(workspace.members)
                    ],
                )

    def put_app(self, org_id: str, app: App) -> None:
        with self._transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO apps VALUES (?, ?, ?, ?, ?, ?)",
                [
                    org_id,
                    app.id,
                    app.name,
                    app.creator,
                    _us(app.created_at),
                    _us(app.deleted_at),
                ],
            )

    def load_directory(self, org_id: str) -> Directory | None:
        org = self.get_org(org_id)
        if org is None:
            return None
        departments = [
            Department(id=r[0], name=r[1], parent=r[2])
            for r in self._rows(
                "SELECT id, name, parent FROM departments WHERE org = ? ORDER BY id", [org_id]
            )
        ]
        versions: dict[str, list[MemberVersion]] = {}
        for member_id, effective_at, developer, departments_of in self._rows(
            "SELECT member, effective_at, developer, departments FROM member_versions"
            " WHERE org = ? ORDER BY member, effective_at",
            [org_id],
        ):
            versions.setdefault(member_id, []).append(
                MemberVersion(
                    effective_at=from_micros(effective_at),
                    developer=developer,
                    departments=tuple(departments_of),
                )
            )
        members = [
            Member(
                id=r[0],
                name=r[1],
                email=r[2],
                created_at=from_micros(r[3]),
                deleted_at=_dt(r[4]),
                versions=tuple(versions.get(r[0], ())),
            )
            for r in self._rows(
                "SELECT id, name, email, created_at, deleted_at FROM members"
                " WHERE org = ? ORDER BY id",
                [org_id],
            )
        ]
        memberships: dict[str, list[WorkspaceMembership]] = {}
        for workspace_id, member_id, since, until in self._rows(
            "SELECT workspace, member, since, until FROM workspace_members"
            " WHERE org = ? ORDER BY workspace, position",
            [org_id],
        ):
            memberships.setdefault(workspace_id, []).append(
                WorkspaceMembership(member=member_id, since=from_micros(since), until=_dt(until))
            )
        workspaces = [
            Workspace(
                id=r[0],
                name=r[1],
                created_at=from_micros(r[2]),
                deleted_at=_dt(r[3]),
                members=tuple(memberships.get(r[0], ())),
            )
            for r in self._rows(
                "SELECT id, name, created_at, deleted_at FROM workspaces WHERE org = ? ORDER BY id",
                [org_id],
            )
        ]
        apps = [
            App(
                id=r[0],
                name=r[1],
                creator=r[2],
                created_at=from_micros(r[3]),
                deleted_at=_dt(r[4]),
            )
            for r in self._rows(
                "SELECT id, name, creator, created_at, deleted_at FROM apps"
                " WHERE org = ? ORDER BY id",
                [org_id],
            )
        ]
        return Directory.build(org, departments, members, workspaces, apps)

    # -- tokens ----------------------------------------------------------------------------
    def add_token(self, token: TokenRecord) -> None:
        with self._transaction() as cur:
            cur.execute(
                f"INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    token.id,
                    token.hash,
                    token.org,
                    list(token.scopes),
                    _us(token.created_at),
                    _us(token.expires_at),
                    _us(token.revoked_at),
                    _us(token.last_used_at),
                ],
            )

    def list_tokens(self) -> list[TokenRecord]:
        return [
            TokenRecord(
                id=r[0],
                hash=r[1],
                org=r[2],
                scopes=tuple(r[3]),
                created_at=from_micros(r[4]),
                expires_at=_dt(r[5]),
                revoked_at=_dt(r[6]),
                last_used_at=_dt(r[7]),
            )
            for r in self._rows(f"SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id")
        ]

    def revoke_token(self, token_id: str, at: datetime) -> None:
        with self._transaction() as cur:
            cur.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                [_us(at), token_id],
            )

    def record_token_use(self, token_id: str, at: datetime) -> None:
        with self._transaction() as cur:
            cur.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", [_us(at), token_id])

    # -- events ----------------------------------------------------------------------------
    def append_events(self, org_id: str, events: Sequence[StoredEvent]) -> AppendResult:
        if not events:
            return AppendResult(frozenset())
        with self._transaction() as cur:
            new = frozenset(_insert_new(cur, _event_table(org_id, events)))
            # Roll up only the new events, so a duplicate never counts twice.
            fresh = events if len(new) == len(events) else [e for e in events if e.id in new]
            rollups.add(cur, org_id, fresh)
            assistant_days = {e.day for e in fresh if e.type in rollups.ASSISTANT_KINDS}
            self._mark_stale(cur, "department_days", org_id, assistant_days)
            self._mark_stale(cur, "activity_days", org_id, (e.day for e in fresh))
        self._touched[org_id].update(e.day for e in fresh)
        self._appends += 1
        if self._appends % COMPACT_EVERY == 0:
            self.compact_rollups()
        return AppendResult(new)

    def append_table(self, org_id: str, table: pa.Table) -> AppendResult:
        if table.num_rows == 0:
            return AppendResult(frozenset())
        with self._transaction() as cur:
            new_ids = _insert_new(cur, table)
            if len(new_ids) < table.num_rows:  # roll up only the new events
                table = table.filter(pc.is_in(table["id"], pa.array(new_ids, pa.string())))
            with _registered(cur, "new_events", table):
                rollups.add_table(cur, "new_events")
            assistant = table.filter(pc.is_in(table["type"], pa.array(rollups.ASSISTANT_KINDS)))
            self._mark_stale(
                cur, "department_days", org_id, pc.unique(assistant["day"]).to_pylist()
            )
            self._mark_stale(cur, "activity_days", org_id, pc.unique(table["day"]).to_pylist())
        self._touched[org_id].update(pc.unique(table["day"]).to_pylist())
        return AppendResult(frozenset(new_ids))

    def compact_rollups(self) -> None:
        """Merge the rollup deltas of the days appended to since the last compaction."""
        touched, self._touched = self._touched, defaultdict(set)
        for org_id, days in touched.items():
            with self._transaction() as cur:
                rollups.compact(cur, org_id, days)

    def rebuild_rollups(self, org_id: str) -> None:
        with self._transaction() as cur:
            rollups.rebuild(cur, org_id)
            departments.reset_departments(cur, org_id)
            activity.reset(cur, org_id)
        self._touched.pop(org_id, None)

    # -- the per-department rollups --------------------------------------------------------
    def stale_department_days(self, org_id: str) -> list[date]:
        return rollups.stale_days(self._cursor(), "department_days", org_id, None, None)

    def refresh_department_days(
        self, org_id: str, spans: Mapping[str, Sequence[MemberSpan]], days: Sequence[date]
    ) -> None:
        if not days:
            return
        org = self.get_org(org_id)
        assert org is not None
        with self._transaction() as cur:  # appends wait: none can slip between read and mark
            stale = rollups.stale_days(cur, "department_days", org_id, min(days), max(days))
            stale = sorted(set(stale) & set(days))
            if not stale:
                return
            whole, partial = departments.split_group_spans(spans, org.timezone, stale[0], stale[-1])
            with _registered(cur, "whole_days", whole), _registered(cur, "partial_spans", partial):
                departments.refresh_departments(cur, org_id, stale)
            self._mark_fresh("department_days", org_id, stale)

    def invalidate_department_days(self, org_id: str, since: date | None) -> None:
        with self._transaction() as cur:
            rollups.invalidate(cur, "department_days", org_id, since)

    def invalidate_departments(self, org_id: str, departments: Collection[str]) -> None:
        if not departments:
            return
        with self._transaction() as cur:
            (generation,) = cur.execute(
                "SELECT coalesce(max(generation), 0) + 1 FROM department_stale"
            ).fetchall()[0]
            cur.executemany(
                "INSERT OR REPLACE INTO department_stale VALUES (?, ?, ?)",
                [[org_id, department, generation] for department in sorted(departments)],
            )

    def stale_departments(self, org_id: str) -> dict[str, int]:
        rows = self._rows(
            "SELECT department, generation FROM department_stale WHERE org = ?", [org_id]
        )
        return {str(department): int(generation) for department, generation in rows}

    def refresh_departments(
        self,
        org_id: str,
        spans: Mapping[str, Sequence[MemberSpan]],
        days: Sequence[date],
        generations: Mapping[str, int] | None,
    ) -> None:
        org = self.get_org(org_id)
        assert org is not None
        with self._transaction() as cur:
            if days:
                ordered = sorted(days)
                whole, partial = departments.split_group_spans(
                    spans, org.timezone, ordered[0], ordered[-1]
                )
                with (
                    _registered(cur, "whole_days", whole),
                    _registered(cur, "partial_spans", partial),
                ):
                    departments.refresh_departments(cur, org_id, ordered, only=sorted(spans))
            for department, generation in (generations or {}).items():
                cur.execute(
                    "DELETE FROM department_stale"
                    " WHERE org = ? AND department = ? AND generation <= ?",
                    [org_id, department, generation],
                )

    def assistant_days(self, org_id: str) -> list[date]:
        """The org days with assistant events (those ``department_day`` may hold)."""
        rows = self._rows("SELECT day FROM department_days WHERE org = ? ORDER BY day", [org_id])
        return [day for (day,) in rows]

    # -- the activity counts ---------------------------------------------------------------
    def stale_activity_days(self, org_id: str) -> list[date]:
        return rollups.stale_days(self._cursor(), "activity_days", org_id, None, None)

    def refresh_activity_days(
        self, org_id: str, developer_spans: Sequence[MemberSpan], days: Sequence[date]
    ) -> None:
        if not days:
            return
        org = self.get_org(org_id)
        assert org is not None
        first = month_first(min(days))
        last = month_last(first)
        assert max(days) <= last, "one calendar month at a time"
        with self._transaction() as cur:  # appends wait: none can slip between read and mark
            stale = rollups.stale_days(cur, "activity_days", org_id, first, last)
            stale = sorted(set(stale) & set(days))
            if not stale:
                return
            whole, partial = rollups.split_spans(developer_spans, org.timezone, first, last)
            with _registered(cur, "whole_days", whole), _registered(cur, "partial_spans", partial):
                activity.refresh_month(cur, org_id, first, stale)
            self._mark_fresh("activity_days", org_id, stale)

    def invalidate_activity_days(self, org_id: str, since: date | None) -> None:
        with self._transaction() as cur:
            rollups.invalidate(cur, "activity_days", org_id, since)

    def list_events(
        self,
        org_id: str,
        *,
        start_us: int | None,
        end_us: int | None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[StoredEvent]:
        where = ["org = ?"]
        params: list[Any] = [org_id]
        if start_us is not None:
            where.append("ts >= ?")
            params.append(start_us)
        if end_us is not None:
            where.append("ts < ?")
            params.append(end_us)
        if after is not None:
            # Spelled out, not ``(ts, id) > (?, ?)``: the plain ``ts >= ?`` lets DuckDB skip
            # the row groups before the cursor by their min/max, so a page costs what lies
            # after it, not a scan of every event of the org.
            where.append("ts >= ? AND (ts > ? OR id > ?)")
            params.extend([after[0], after[0], after[1]])
        sql = (
            f"SELECT {_EVENT_SELECT} FROM events WHERE {' AND '.join(where)}"
            f" ORDER BY ts, id LIMIT {int(limit)}"
        )
        return [
            StoredEvent(**dict(zip(STORED_COLUMNS, row, strict=True)))
            for row in self._rows(sql, params)
        ]

    def count_events(self, org_id: str) -> int:
        rows = self._rows("SELECT count(*) FROM events WHERE org = ?", [org_id])
        return int(rows[0][0])

    def event_batches(
        self, org_id: str, *, start_us: int, end_us: int, batch_rows: int
    ) -> Iterator[pa.Table]:
        """The window read one slice of time (``EVENT_SLICE_US``) at a time, each slice in
        keyset pages bounded by the slice's end: a page's query then touches only the row
        groups of its slice (events are stored roughly in time order), never the rest of the
        window, and no result stays open on a cursor between two pages (the caller may take
        them on different threads). Slices are gathered into tables of about ``batch_rows``."""
        pending: list[pa.Table] = []
        held = 0
        for lo in range(start_us, end_us, EVENT_SLICE_US):
            for page in self._event_pages(org_id, lo, min(end_us, lo + EVENT_SLICE_US), batch_rows):
                pending.append(page)
                held += page.num_rows
                if held >= batch_rows:
                    yield pa.concat_tables(pending)
                    pending, held = [], 0
        if held:
            yield pa.concat_tables(pending)

    def _event_pages(self, org_id: str, lo: int, hi: int, batch_rows: int) -> Iterator[pa.Table]:
        after: tuple[int, str] | None = None
        while True:
            where = "org = ? AND ts >= ? AND ts < ?"
            params: list[Any] = [org_id, lo, hi]
            if after is not None:
                where += " AND (ts, id) > (?, ?)"
                params.extend(after)
            sql = (
                f"SELECT {_EVENT_SELECT} FROM events WHERE {where}"
                f" ORDER BY ts, id LIMIT {int(batch_rows)}"
            )
            table = self._cursor().sql(sql, params=params).to_arrow_table()
            if table.num_rows:
                yield table
            if table.num_rows < batch_rows:
                return
            after = (table["ts"][-1].as_py(), table["id"][-1].as_py())

    # -- department usage ------------------------------------------------------------------
    def assistant_usage(
        self,
        org_id: str,
        spans: Sequence[MemberSpan],
        first_day: date,
        last_day: date,
        *,
        department: str | None = None,
    ) -> list[AssistantDay]:
        if not spans:
            return []
        if not self.rollups:
            return _assistant_days(self._raw_usage(org_id, spans, first_day, last_day))
        cursor = self._cursor()
        params: dict[str, Any] = {"org": org_id, "first": first_day, "last": last_day, "days": None}
        if department is None:
            with self._span_tables(cursor, org_id, spans, first_day, last_day):
                rows = cursor.execute(departments.USAGE_FROM_SPANS_SQL, params).fetchall()
            return _assistant_days(rows)
        # Fresh days from the department's own records, and the stale days, which the
        # member-day rows of the spans answer: one statement, so one snapshot.
        rows = cursor.execute(
            departments.USAGE_FROM_DEPARTMENT_DAY_SQL,
            {"org": org_id, "department": department, "first": first_day, "last": last_day},
        ).fetchall()
        stale = sorted(day for day, usage in rows if usage is None)
        outdated = set(stale)
        fresh = sorted(
            (row for row in rows if row[1] is not None and row[0] not in outdated),
            key=itemgetter(0),
        )
        days = departments.decode_days([usage for _, usage in fresh])
        if stale:
            with self._span_tables(cursor, org_id, spans, stale[0], stale[-1]):
                params.update(first=stale[0], last=stale[-1], days=stale)
                days += _assistant_days(
                    cursor.execute(departments.USAGE_FROM_SPANS_SQL, params).fetchall()
                )
            days.sort(key=lambda usage: usage.day)
        return days

    @contextmanager
    def _span_tables(
        self,
        cursor: duckdb.DuckDBPyConnection,
        org_id: str,
        spans: Sequence[MemberSpan],
        first_day: date,
        last_day: date,
    ) -> Iterator[None]:
        """Register ``whole_days`` and ``partial_spans`` (see ``rollups.span_rows_sql``)."""
        org = self.get_org(org_id)
        assert org is not None
        whole, partial = rollups.split_spans(spans, org.timezone, first_day, last_day)
        with (
            _registered(cursor, "whole_days", whole),
            _registered(cursor, "partial_spans", partial),
        ):
            yield

    def _raw_usage(
        self, org_id: str, spans: Sequence[MemberSpan], first_day: date, last_day: date
    ) -> list[tuple[Any, ...]]:
        """The same question straight from the raw events (the rollups' oracle)."""
        cursor = self._cursor()
        with _registered(cursor, "usage_spans", _span_table(spans)):
            return cursor.execute(USAGE_SQL, [org_id, first_day, last_day]).fetchall()

    # -- per-member usage and last events ---------------------------------------------------
    def member_usage(
        self,
        org_id: str,
        spans: Sequence[MemberSpan],
        first_day: date,
        last_day: date,
        *,
        offset: int = 0,
        limit: int | None = None,
    ) -> MemberUsage:
        """The page's pairs and their latest instants from ``member_last``, then the page's
        member-day rows (the raw events only for the spans' partial pieces), in one read
        transaction."""
        if not self.rollups:
            return super().member_usage(
                org_id, spans, first_day, last_day, offset=offset, limit=limit
            )
        if not spans:
            return MemberUsage(total=0, days=[])
        org = self.get_org(org_id)
        assert org is not None
        whole, partial = rollups.split_spans(spans, org.timezone, first_day, last_day)
        pieces, piece_params = _pieces(partial)
        params = {
            "org": org_id,
            "first": first_day,
            "last": last_day,
            "offset": offset,
            "limit": limit if limit is not None else 2**62,
            **piece_params,
        }
        cursor = self._cursor()
        cursor.execute("BEGIN TRANSACTION")  # one snapshot for both statements
        try:
            with (
                _registered(cursor, "whole_days", whole),
                _registered(cursor, "partial_spans", partial),
            ):
                head, *page = cursor.execute(rollups.member_pairs_sql(pieces), params).fetchall()
                rows = self._page_rows(cursor, org_id, page, pieces, piece_params)
        finally:
            cursor.execute("COMMIT")
        latest = {(day, member): last_ts for day, member, last_ts, _ in page}
        return MemberUsage(total=int(head[2]), days=_member_days(rows, latest))

    @staticmethod
    def _page_rows(
        cursor: duckdb.DuckDBPyConnection,
        org_id: str,
        page: list[tuple[Any, ...]],
        pieces: int | None,
        piece_params: dict[str, Any],
    ) -> list[tuple[Any, ...]]:
        """The member-day rows of the page's (day, member, last_ts, whole) pairs; the partial
        pieces (as :func:`_pieces` names them) are read only if a pair is not whole."""
        if not page:
            return []
        days = sorted({day for day, *_ in page})
        whole = [bool(row[3]) for row in page]
        pairs = pa.table(
            {"day": [row[0] for row in page], "member": [row[1] for row in page], "whole": whole},
            schema=PAGE_PAIRS_SCHEMA,
        )
        params = {"org": org_id, "first": days[0], "last": days[-1], "days": days}
        if all(whole):
            pieces = 0
        else:
            params.update(piece_params)
        with _registered(cursor, "page_pairs", pairs):
            return cursor.execute(rollups.page_rows_sql(pieces), params).fetchall()

    def assistant_day_totals(
        self, org_id: str, spans: Sequence[MemberSpan], first_day: date, last_day: date
    ) -> list[AssistantDayTotals]:
        if not self.rollups or not spans:
            return super().assistant_day_totals(org_id, spans, first_day, last_day)
        params: dict[str, Any] = {"org": org_id, "first": first_day, "last": last_day, "days": None}
        with self._member_day_rows(org_id, spans, first_day, last_day) as (cursor, rows):
            found = cursor.execute(rollups.day_totals_sql(rows), params).fetchall()
        return [
            AssistantDayTotals(day, int(a), int(c), int(s), int(acc), int(ls), int(la))
            for day, a, c, s, acc, ls, la in found
        ]

    def trailing_active_members(
        self,
        org_id: str,
        spans: Sequence[MemberSpan],
        first_day: date,
        last_day: date,
        lengths: Sequence[int],
    ) -> dict[int, list[int]]:
        """From the member-day rollups: the deltas of each window length by day (see
        ``rollups.trailing_active_sql``), summed in order here."""
        if not self.rollups or not spans:
            return super().trailing_active_members(org_id, spans, first_day, last_day, lengths)
        start = first_day - timedelta(days=max(lengths) - 1)
        params: dict[str, Any] = {
            "org": org_id,
            "first": start,
            "last": last_day,
            "days": None,
            "lengths": list(lengths),
        }
        with self._member_day_rows(org_id, spans, start, last_day) as (cursor, rows):
            found = cursor.execute(rollups.trailing_active_sql(rows), params).fetchall()
        deltas: dict[int, dict[date, int]] = {n: defaultdict(int) for n in lengths}
        for n, day, delta in found:
            deltas[n][day] += delta
        span = (last_day - start).days + 1
        skip = (first_day - start).days
        answer: dict[int, list[int]] = {}
        for n in lengths:
            running, counts = 0, []
            for i in range(span):
                running += deltas[n].get(start + timedelta(days=i), 0)
                if i >= skip:
                    counts.append(running)
            answer[n] = counts
        return answer

    @contextmanager
    def _member_day_rows(
        self, org_id: str, spans: Sequence[MemberSpan], first_day: date, last_day: date
    ) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
        """A cursor and the SQL of the assistant's member-day rows of ``spans`` on these days:
        when every span covers every day (the whole organization), a plain filter on the
        members; otherwise the rollups' whole-day and partial-span reading."""
        cursor = self._cursor()
        org = self.get_org(org_id)
        assert org is not None
        whole, partial = rollups.split_spans(spans, org.timezone, first_day, last_day)
        covers = partial.num_rows == 0 and bool(
            pc.all(
                pc.and_(
                    pc.equal(whole["first_day"], pa.scalar(first_day, pa.date32())),
                    pc.equal(whole["last_day"], pa.scalar(last_day, pa.date32())),
                )
            ).as_py()
        )
        if covers:
            with _registered(cursor, "span_members", whole.select(["member"])):
                yield cursor, rollups.WHOLE_MEMBERS_ROWS_SQL
            return
        with (
            _registered(cursor, "whole_days", whole),
            _registered(cursor, "partial_spans", partial),
        ):
            yield cursor, rollups.span_rows_sql(rollups.ASSISTANT_KINDS)

    def latest_event_times(self, org_id: str) -> dict[str, int]:
        if not self.rollups:
            return super().latest_event_times(org_id)
        rows = self._cursor().execute(rollups.LATEST_EVENT_SQL, {"org": org_id}).fetchall()
        return dict(rows)

    # -- environment statistics ------------------------------------------------------------
    def active_members(
        self,
        org_id: str,
        first_day: date,
        last_day: date,
        *,
        event_types: Sequence[str] | None = None,
        during: Sequence[MemberSpan] | None = None,
        per_workspace: bool = False,
        cohort: str | None = None,
        daily: bool = True,
    ) -> ActiveMembers:
        kind = _ACTIVITY_KINDS.get(tuple(event_types) if event_types is not None else None)
        if not self.rollups or kind is None or (per_workspace and kind != "workspace"):
            return self._raw_active_members(
                org_id, first_day, last_day, event_types, during, per_workspace
            )
        stat = _stat_of(kind, per_workspace, during, cohort)
        if stat is None:
            return self._counted(org_id, first_day, last_day, kind, during, per_workspace, None)
        return self._precounted(
            org_id, first_day, last_day, stat, kind, during, per_workspace, daily
        )

    def _precounted(
        self,
        org_id: str,
        first_day: date,
        last_day: date,
        stat: str,
        kind: str,
        during: Sequence[MemberSpan] | None,
        per_workspace: bool,
        daily: bool,
    ) -> ActiveMembers:
        """From ``activity_count``: each month of the window by its period row (the whole
        month, the window's start to the month's end, the 1st to the window's end) and its
        days by their day rows (or their sums); a month with a stale day, or one the window
        cuts at both ends, is counted from the member-day rows instead."""
        wanted, _ = _month_periods(first_day, last_day, set())
        rows = (
            self._cursor()
            .execute(
                activity.READ_SQL[daily],
                {
                    "org": org_id,
                    "stat": stat,
                    "month_first": month_first(first_day),
                    "month_last": month_last(last_day),
                    **_period_params(wanted),
                    **({"first": first_day, "last": last_day} if daily else {}),
                },
            )
            .fetchall()
        )
        stale = {(start.year, start.month) for _, start, period, *_ in rows if period is None}
        wanted, counted = _month_periods(first_day, last_day, stale)
        if counted:  # a counted month's rows may be stale, or not enough: it is recounted
            rows = [row for row in rows if (row[1].year, row[1].month) in wanted]
        per_day = {(grp, start): n for grp, start, period, n, _ in rows if period == "day"}
        per_month: dict[tuple[str, int, int], int] = {}
        day_sums: dict[tuple[str, int, int], int] = {}
        for grp, start, period, n, total in rows:
            if period is not None and period != "day":
                per_month[grp, start.year, start.month] = n
                day_sums[grp, start.year, start.month] = total
        for run in _runs(counted):  # each run: the days of consecutive counted months
            rest = self._counted(org_id, run[0], run[-1], kind, during, per_workspace, None)
            if daily:
                per_day.update(rest.per_day)
            per_month.update(rest.per_month)
            day_sums.update(rest.day_sums)
        return ActiveMembers(per_day, per_month, day_sums)

    def _counted(
        self,
        org_id: str,
        first_day: date,
        last_day: date,
        kind: str,
        during: Sequence[MemberSpan] | None,
        per_workspace: bool,
        days: list[date] | None,
    ) -> ActiveMembers:
        """Distinct members from the member-day rows of ``kind`` (on ``days`` only, if given)."""
        params: dict[str, Any] = {"org": org_id, "first": first_day, "last": last_day, "days": days}
        active = activity.active_rows_sql(
            kind, per_workspace=per_workspace, during=during is not None
        )
        sql = f"WITH active AS ({active}) {activity.COUNTS_SQL}"
        cursor = self._cursor()
        if during is None:
            return _active_members(cursor.execute(sql, params).fetchall())
        with self._span_tables(cursor, org_id, during, first_day, last_day):
            rows = cursor.execute(sql, params).fetchall()
        return _active_members(rows)

    def _raw_active_members(
        self,
        org_id: str,
        first_day: date,
        last_day: date,
        event_types: Sequence[str] | None,
        during: Sequence[MemberSpan] | None,
        per_workspace: bool,
    ) -> ActiveMembers:
        """The same question straight from the raw events (the rollups' oracle)."""
        where = ["e.org = ?", "e.day BETWEEN ? AND ?"]
        params: list[Any] = [org_id, first_day, last_day]
        if event_types is not None:
            where.append("e.type = ANY(?)")
            params.append(list(event_types))
        if per_workspace:
            where.append("e.workspace IS NOT NULL")
        join = (
            " JOIN member_spans s ON s.member = e.member AND e.ts >= s.from_us AND e.ts < s.to_us"
            if during is not None
            else ""
        )
        group = "e.workspace" if per_workspace else "''"
        sql = (
            f"WITH active AS (SELECT DISTINCT {group} AS grp, e.day, e.member FROM events e{join}"
            f" WHERE {' AND '.join(where)})" + _ACTIVE_COUNTS
        )
        cursor = self._cursor()
        with _registered(cursor, "member_spans", _span_table(during or ())):
            rows = cursor.execute(sql, params).fetchall()
        return _active_members(rows)

    # -- app usage -------------------------------------------------------------------------
    #: One column per resource, in RESOURCES order; each takes the resource name as a parameter.
    _RESOURCE_SUMS = ", ".join(
        "sum(delta) FILTER (WHERE type = 'app_resource' AND resource = ?)" for _ in RESOURCES
    )

    def app_totals(
        self, org_id: str, app_ids: Sequence[str], *, day: date, end_us: int
    ) -> dict[str, AppTotals]:
        if not app_ids:
            return {}
        wanted = ", ".join("?" for _ in app_ids)
        if self.rollups:  # whole org days only, so the daily rollups answer exactly
            # One row per (app, kind, resource), turned into columns here: as 12 FILTERed
            # aggregates, the statement took twice as long.
            sql = f"""
            SELECT app, kind, resource, sum(total), max(last_ts),
                   arg_max(last_records, (last_ts, last_id)) FILTER (WHERE kind = 'data')
            FROM app_day
            WHERE org = ? AND day <= ? AND app IN ({wanted})
            GROUP BY app, kind, resource
            """
            return _app_totals_of_groups(self._rows(sql, [org_id, day, *app_ids]))
        sql = f"""
            SELECT app, {self._RESOURCE_SUMS},
                arg_max(records, (ts, id)) FILTER (WHERE type = 'app_data'),
                max(ts) FILTER (WHERE type = 'app_visit'),
                max(ts) FILTER (WHERE type = 'app_edit')
            FROM events
            WHERE org = ? AND day <= ? AND ts < ? AND app IN ({wanted})
              AND type IN ('app_resource', 'app_data', 'app_visit', 'app_edit')
            GROUP BY app
        """
        rows = self._rows(sql, [*RESOURCES, org_id, day, end_us, *app_ids])
        return {row[0]: self._app_totals(row) for row in rows}

    @staticmethod
    def _app_totals(row: tuple[Any, ...]) -> AppTotals:
        sums = row[1 : 1 + len(RESOURCES)]
        records, last_visit, last_edit = row[1 + len(RESOURCES) :]
        return AppTotals(
            resources={r: int(v) for r, v in zip(RESOURCES, sums, strict=True) if v is not None},
            records=records,
            last_visit_us=last_visit,
            last_edit_us=last_edit,
        )


def _app_totals_of_groups(rows: Iterable[tuple[Any, ...]]) -> dict[str, AppTotals]:
    """``AppTotals`` per app from ``app_day`` grouped by (app, kind, resource)."""
    resources: dict[str, dict[str, int]] = defaultdict(dict)
    latest: dict[tuple[str, str], Any] = {}
    for app, kind, resource, total, last_ts, records in rows:
        if kind != "resource":
            latest[app, kind] = records if kind == "data" else last_ts
        elif resource in RESOURCES:
            resources[app][resource] = int(total)
    apps = {app for app, _ in latest} | resources.keys()
    return {
        app: AppTotals(
            resources=resources.get(app, {}),
            records=latest.get((app, "data")),
            last_visit_us=latest.get((app, "app_visit")),
            last_edit_us=latest.get((app, "app_edit")),
        )
        for app in apps
    }


@contextmanager
def _registered(cursor: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    """``table`` readable as ``name`` in the cursor's queries, for the block's duration."""
    cursor.register(name, table)
    try:
        yield
    finally:
        cursor.unregister(name)


def _insert_new(cursor: duckdb.DuckDBPyConnection, table: pa.Table) -> list[str]:
    """Insert the events of ``table`` whose (org, id) is not stored yet; return their ids.

    The primary key answers "already stored?" by an index lookup per id, not a scan."""
    with _registered(cursor, "incoming_events", table):
        rows = cursor.execute(
            "INSERT INTO events SELECT * FROM incoming_events ON CONFLICT DO NOTHING RETURNING id"
        ).fetchall()
    return [row[0] for row in rows]


def _setting_value(text: str) -> str:
    """A size such as ``512MB`` or ``1GB``, checked before it reaches SQL."""
    if not text.replace(".", "").replace(" ", "").isalnum():
        raise ValueError(f"not a memory size: {text!r}")
    return text


def _org(row: tuple[Any, ...]) -> Organization:
    return Organization(id=row[0], name=row[1], domain=row[2], timezone=row[3])


def _event_table(org_id: str, events: Sequence[StoredEvent]) -> pa.Table:
    """The events as an Arrow table (columns built by transposing C-made tuples: fast)."""
    columns = list(zip(*map(msgspec.structs.astuple, events), strict=True))
    arrays = [pa.array([org_id] * len(events), pa.string())] + [
        pa.array(column, field.type)
        for column, field in zip(columns, list(EVENT_SCHEMA)[1:], strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)


# -- department usage ----------------------------------------------------------------------

SPAN_SCHEMA = pa.schema([("member", pa.string()), ("from_us", pa.int64()), ("to_us", pa.int64())])

# The window's assistant events of the spans' members (only the window's days are read), then
# one aggregate per part: 0 the day's distinct members, 1 completion, 2 chatting, 3 coding.
# Columns: part, day, key1, key2, then five numbers whose meaning depends on the part. Strings
# sort by their UTF-8 bytes (DuckDB's default collation), which is code-point order.
USAGE_SQL = """
WITH hits AS MATERIALIZED (
    SELECT e.day, e.type, e.member, e.ide, e.language, e.chat_type, e.source, e.accepted,
           e.lines_suggested, e.lines_accepted, e.lines_changed
    FROM events AS e
    JOIN usage_spans AS s ON e.member = s.member AND e.ts >= s.from_us AND e.ts < s.to_us
    WHERE e.org = ? AND e.day BETWEEN ? AND ? AND e.type IN ('completion', 'chat', 'code')
)
SELECT 0 AS part, day, NULL::VARCHAR AS key1, NULL::VARCHAR AS key2,
       count(DISTINCT member),
       count(DISTINCT member) FILTER (WHERE type = 'chat'),
       count(DISTINCT member) FILTER (WHERE type = 'completion'),
       0, 0
FROM hits GROUP BY day
UNION ALL
SELECT 1, day, ide, language,
       count(*), count(*) FILTER (WHERE accepted), sum(lines_suggested), sum(lines_accepted),
       count(DISTINCT member)
FROM hits WHERE type = 'completion' GROUP BY day, ide, language
UNION ALL
SELECT 2, day, chat_type, ide,
       count(*), count(*) FILTER (WHERE accepted), 0, 0, count(DISTINCT member)
FROM hits WHERE type = 'chat' GROUP BY day, chat_type, ide
UNION ALL
SELECT 3, day, language, NULL,
       sum(lines_accepted), sum(lines_changed),
       coalesce(sum(lines_accepted) FILTER (WHERE source = 'chat'), 0), 0, count(DISTINCT member)
FROM hits WHERE type = 'code' GROUP BY day, language
ORDER BY day, part, key1, key2
"""


def _assistant_days(rows: list[tuple[Any, ...]]) -> list[AssistantDay]:
    """Assemble the rows of :data:`USAGE_SQL` (ordered by day, then part) into days.

    Each day's part-0 row comes first and opens the day; the records are built positionally
    (their field order is the column order of each part), the fastest way msgspec offers.
    """
    days: list[tuple[Any, ...]] = []
    completion: list[CompletionUsage] = []
    chatting: list[ChatUsage] = []
    coding: list[CodingUsage] = []
    for part, day, key1, key2, a, b, c, d, n in rows:
        if part == 0:
            completion, chatting, coding = [], [], []
            days.append((day, a, b, c, completion, chatting, coding))
        elif part == 1:
            completion.append(CompletionUsage(key1, key2, a, b, c, d, n))
        elif part == 2:
            chatting.append(ChatUsage(key1, key2, a, b, n))
        else:
            coding.append(CodingUsage(key1, a, b, c, n))
    return [
        AssistantDay(day, a, b, c, tuple(completion), tuple(chatting), tuple(coding))
        for day, a, b, c, completion, chatting, coding in days
    ]


def _member_days(
    rows: Sequence[tuple[Any, ...]], latest: Mapping[tuple[date, str], int]
) -> list[MemberDay]:
    """Assemble the page rows of ``rollups.PAGE_ROWS_SQL`` (ordered by day, member, kind
    and keys) into records; ``latest``: each pair's latest counted event."""
    days: list[MemberDay] = []
    key: tuple[date, str] | None = None
    completion: list[CompletionUsage] = []
    chatting: list[ChatUsage] = []
    coding: list[CodingUsage] = []

    def close() -> None:
        if key is not None:
            days.append(
                MemberDay(
                    key[0], key[1], latest[key], tuple(completion), tuple(chatting), tuple(coding)
                )
            )

    for day, member, kind, k1, k2, n, n_accepted, s1, s2, s3 in rows:
        if (day, member) != key:
            close()
            key, completion, chatting, coding = (day, member), [], [], []
        if kind == "completion":
            completion.append(CompletionUsage(k1, k2, n, n_accepted, s1, s2, 1))
        elif kind == "chat":
            chatting.append(ChatUsage(k1, k2, n, n_accepted, 1))
        else:
            coding.append(CodingUsage(k1, s2, s3, s1, 1))
    close()
    return days


# Which ``member_day`` kind answers ``active_members`` for its ``event_types``.
_ACTIVITY_KINDS: dict[tuple[str, ...] | None, str] = {
    None: "any",
    ("workspace_activity",): "workspace",
}
# Distinct members per (group, day) and per (group, month) of the rows of ``active``.
_ACTIVE_COUNTS = (
    " SELECT grp, day, year(day), month(day), count(DISTINCT member), grouping(day)"
    " FROM active GROUP BY GROUPING SETS ((grp, day), (grp, year(day), month(day)))"
)


def _month_periods(
    first_day: date, last_day: date, stale_months: set[tuple[int, int]]
) -> tuple[dict[tuple[int, int], tuple[str, date]], list[date]]:
    """For each month of the window, the ``activity_count`` row that holds its distinct count
    (period, start); and the days of the months no row answers (stale, or cut at both ends)."""
    wanted: dict[tuple[int, int], tuple[str, date]] = {}
    counted: list[date] = []
    month = month_first(first_day)
    while month <= last_day:
        low, high = max(first_day, month), min(last_day, month_last(month))
        whole_start, whole_end = low == month, high == month_last(month)
        key = (month.year, month.month)
        if key in stale_months or not (whole_start or whole_end):
            counted.extend(days_between(low, high))
        elif whole_start and whole_end:
            wanted[key] = ("month", month)
        elif whole_end:
            wanted[key] = ("from_date", low)
        else:
            wanted[key] = ("to_date", high)
        month = next_month(month)
    return wanted, counted


def _period_params(wanted: dict[tuple[int, int], tuple[str, date]]) -> dict[str, date | None]:
    """``activity.READ_SQL``'s parameters that name the month-wide rows of ``wanted``."""
    starts: dict[str, list[date]] = {"month": [], "from_date": [], "to_date": []}
    for period, start in wanted.values():
        starts[period].append(start)
    whole = starts["month"]
    return {
        "whole_first": whole[0] if whole else None,
        "whole_last": whole[-1] if whole else None,
        "from_first": starts["from_date"][0] if starts["from_date"] else None,
        "to_last": starts["to_date"][0] if starts["to_date"] else None,
    }


def _runs(days: list[date]) -> list[list[date]]:
    """Ascending ``days`` cut into runs of consecutive days."""
    runs: list[list[date]] = []
    for day in days:
        if runs and (day - runs[-1][-1]).days == 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def _stat_of(
    kind: str, per_workspace: bool, during: Sequence[MemberSpan] | None, cohort: str | None
) -> str | None:
    """Which precomputed stat of ``activity_count`` answers the question, if one does."""
    if during is None:
        return "workspace" if per_workspace else "users" if kind == "any" else None
    if cohort == "developers" and kind == "workspace" and not per_workspace:
        return "developers"
    return None


def _active_members(rows: list[tuple[Any, ...]]) -> ActiveMembers:
    return ActiveMembers.from_days(
        per_day={(r[0], r[1]): r[4] for r in rows if r[5] == 0},
        per_month={(r[0], r[2], r[3]): r[4] for r in rows if r[5] == 1},
    )


def _pieces(partial: pa.Table) -> tuple[int | None, dict[str, Any]]:
    """How ``rollups.partial_events_sql`` reads the partial pieces of ``partial`` (member,
    from_us, to_us), and the parameters naming them (none beyond ``rollups.PIECES_APART``)."""
    if partial.num_rows > rollups.PIECES_APART:
        return None, {}
    params: dict[str, Any] = {}
    for i, (member, from_us, to_us) in enumerate(
        zip(*(partial[c].to_pylist() for c in ("member", "from_us", "to_us")), strict=True)
    ):
        params.update({f"pm{i}": member, f"pf{i}": from_us, f"pt{i}": to_us})
    return partial.num_rows, params


PAGE_PAIRS_SCHEMA = pa.schema(
    [("day", pa.date32()), ("member", pa.string()), ("whole", pa.bool_())]
)


def _span_table(spans: Sequence[MemberSpan]) -> pa.Table:
    return pa.table(
        {
            "member": [s.member for s in spans],
            "from_us": [s.from_us for s in spans],
            "to_us": [s.to_us for s in spans],
        },
        schema=SPAN_SCHEMA,
    )
