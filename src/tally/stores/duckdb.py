"""The embedded default store: one DuckDB file, nothing to install.

Instants are kept as epoch microseconds (BIGINT) so that no timezone setting of the database can
change an answer; org-local days are computed at ingest and kept beside each event. Duplicate
events are refused by the primary key (an ART index lookup per id, not a scan).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

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
from tally.stores.base import AppendResult, AppTotals, Store
from tally.timeutil import from_micros, to_micros
from tally.tokens import TokenRecord

SCHEMA_VERSION = 1

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
CREATE TABLE IF NOT EXISTS events (
    org VARCHAR NOT NULL, id VARCHAR NOT NULL, ts BIGINT NOT NULL, day DATE NOT NULL,
    type VARCHAR NOT NULL, member VARCHAR NOT NULL,
    ide VARCHAR, language VARCHAR, chat_type VARCHAR, source VARCHAR, accepted BOOLEAN,
    lines_suggested BIGINT, lines_accepted BIGINT, lines_changed BIGINT,
    workspace VARCHAR, app VARCHAR, resource VARCHAR, delta BIGINT, records BIGINT,
    PRIMARY KEY (org, id)
);
"""

EVENT_SCHEMA = pa.schema(
    [
        ("org", pa.string()),
        ("id", pa.string()),
        ("ts", pa.int64()),
        ("day", pa.date32()),
        ("type", pa.string()),
        ("member", pa.string()),
        ("ide", pa.string()),
        ("language", pa.string()),
        ("chat_type", pa.string()),
        ("source", pa.string()),
        ("accepted", pa.bool_()),
        ("lines_suggested", pa.int64()),
        ("lines_accepted", pa.int64()),
        ("lines_changed", pa.int64()),
        ("workspace", pa.string()),
        ("app", pa.string()),
        ("resource", pa.string()),
        ("delta", pa.int64()),
        ("records", pa.int64()),
    ]
)
_EVENT_SELECT = ", ".join(STORED_COLUMNS)


def _us(instant: datetime | None) -> int | None:
    return None if instant is None else to_micros(instant)


def _dt(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


class DuckDBStore(Store):
    """A :class:`Store` in one DuckDB file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreBusy(
                    f"{path} is in use by another process (is `tally serve` running on it?)"
                ) from exc
            raise
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._db.execute(SCHEMA)
        self._db.execute(
            "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
            [str(SCHEMA_VERSION)],
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
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._cursor().execute(sql, list(params)).fetchall()

    def close(self) -> None:
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
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?)",
                [token.id, token.hash, token.org, list(token.scopes), _us(token.created_at)],
            )

    def list_tokens(self) -> list[TokenRecord]:
        return [
            TokenRecord(
                id=r[0], hash=r[1], org=r[2], scopes=tuple(r[3]), created_at=from_micros(r[4])
            )
            for r in self._rows(
                "SELECT id, hash, org, scopes, created_at FROM tokens ORDER BY created_at, id"
            )
        ]

    # -- events ----------------------------------------------------------------------------
    def append_events(self, org_id: str, events: Sequence[StoredEvent]) -> AppendResult:
        if not events:
            return AppendResult(frozenset())
        with self._transaction() as cur:
            cur.register("incoming_events", _event_table(org_id, events))
            try:
                new = cur.execute(
                    "INSERT INTO events SELECT * FROM incoming_events"
                    " ON CONFLICT DO NOTHING RETURNING id"
                ).fetchall()
            finally:
                cur.unregister("incoming_events")
        return AppendResult(frozenset(r[0] for r in new))

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
            where.append("(ts, id) > (?, ?)")
            params.extend(after)
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


def _org(row: tuple[Any, ...]) -> Organization:
    return Organization(id=row[0], name=row[1], domain=row[2], timezone=row[3])


def _event_table(org_id: str, events: Sequence[StoredEvent]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in STORED_COLUMNS}
    for event in events:
        for name in STORED_COLUMNS:
            columns[name].append(getattr(event, name))
    columns_with_org = {"org": [org_id] * len(events), **columns}
    return pa.table(columns_with_org, schema=EVENT_SCHEMA)
