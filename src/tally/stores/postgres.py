"""The scale-out directory store: organizations, directory and tokens in PostgreSQL, shared by
every ``tally serve`` worker, with a version counter and a cross-worker rate limit beside them.

Instants are kept as epoch microseconds (BIGINT), as in the DuckDB store, so round trips are
exact and no session time zone can change an answer. Text is stored with a reversible escape
for NUL (which PostgreSQL text cannot hold) and answers are sorted in Python, in code-point
order, so nothing depends on the database's collation.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg import pq

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
from tally.stores.base import DirectoryStore
from tally.timeutil import from_micros, to_micros
from tally.tokens import TokenRecord

Connection = psycopg.Connection[tuple[Any, ...]]
T = TypeVar("T")

SCHEMA_VERSION = 1
TOKEN_COLUMNS = "id, hash, org, scopes, created_at, expires_at, revoked_at, last_used_at"
#: Key of the advisory lock that serialises schema creation across starting processes.
SCHEMA_LOCK = 0x74616C6C79  # "tally"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS tally_meta (key text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE IF NOT EXISTS directory_version (
        id smallint PRIMARY KEY CHECK (id = 1), v bigint NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS orgs (
        id text PRIMARY KEY, name text NOT NULL, domain text NOT NULL, timezone text NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS departments (
        org text NOT NULL, id text NOT NULL, name text NOT NULL, parent text,
        PRIMARY KEY (org, id))""",
    """CREATE TABLE IF NOT EXISTS members (
        org text NOT NULL, id text NOT NULL, name text NOT NULL, email text NOT NULL,
        created_at bigint NOT NULL, deleted_at bigint, PRIMARY KEY (org, id))""",
    """CREATE TABLE IF NOT EXISTS member_versions (
        org text NOT NULL, member text NOT NULL, effective_at bigint NOT NULL,
        developer boolean NOT NULL, departments text[] NOT NULL,
        PRIMARY KEY (org, member, effective_at))""",
    """CREATE TABLE IF NOT EXISTS workspaces (
        org text NOT NULL, id text NOT NULL, name text NOT NULL,
        created_at bigint NOT NULL, deleted_at bigint, PRIMARY KEY (org, id))""",
    """CREATE TABLE IF NOT EXISTS workspace_members (
        org text NOT NULL, workspace text NOT NULL, position integer NOT NULL,
        member text NOT NULL, since bigint NOT NULL, until bigint,
        PRIMARY KEY (org, workspace, position))""",
    """CREATE TABLE IF NOT EXISTS apps (
        org text NOT NULL, id text NOT NULL, name text NOT NULL, creator text NOT NULL,
        created_at bigint NOT NULL, deleted_at bigint, PRIMARY KEY (org, id))""",
    """CREATE TABLE IF NOT EXISTS tokens (
        id text PRIMARY KEY, hash text NOT NULL, org text, scopes text[] NOT NULL,
        created_at bigint NOT NULL)""",
    "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS expires_at bigint",
    "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS revoked_at bigint",
    "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS last_used_at bigint",
    # ``wait`` is scratch: the answer of the key's latest rate_limit_hit (0: let through).
    """CREATE TABLE IF NOT EXISTS rate_limits (
        key text PRIMARY KEY, tat bigint NOT NULL, wait bigint NOT NULL)""",
    "INSERT INTO directory_version VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
)

#: GCRA in one statement. A key without a row has ``tat = now``. The row lock taken by
#: ON CONFLICT serialises concurrent hits of one key, and every SET expression reads the row
#: as it was before this statement: a refusal keeps ``tat`` and records the wait.
_RATE_LIMIT_HIT = """
INSERT INTO rate_limits AS r (key, tat, wait)
VALUES (%(key)s, %(now)s::bigint + %(interval)s, 0)
ON CONFLICT (key) DO UPDATE SET
    tat = CASE WHEN GREATEST(r.tat, %(now)s) - %(tolerance)s > %(now)s THEN r.tat
               ELSE GREATEST(r.tat, %(now)s) + %(interval)s END,
    wait = CASE WHEN GREATEST(r.tat, %(now)s) - %(tolerance)s > %(now)s
                THEN GREATEST(r.tat, %(now)s) - %(tolerance)s - %(now)s
                ELSE 0 END
RETURNING wait
"""

#: What :meth:`PostgresDirectoryStore.load_directory` reads of one org, in one snapshot.
_DIRECTORY_QUERIES = (
    "SELECT id, name, domain, timezone FROM orgs WHERE id = %s",
    "SELECT id, name, parent FROM departments WHERE org = %s",
    "SELECT member, effective_at, developer, departments FROM member_versions"
    " WHERE org = %s ORDER BY effective_at",
    "SELECT id, name, email, created_at, deleted_at FROM members WHERE org = %s",
    "SELECT workspace, member, since, until FROM workspace_members"
    " WHERE org = %s ORDER BY position",
    "SELECT id, name, created_at, deleted_at FROM workspaces WHERE org = %s",
    "SELECT id, name, creator, created_at, deleted_at FROM apps WHERE org = %s",
)

# -- text that PostgreSQL cannot hold: NUL, escaped with \x01 ----------------------------

_ESCAPED = re.compile(r"\x01(.)", re.DOTALL)
_UNESCAPE = {"\x01": "\x01", "\x02": "\x00"}


def _enc(text: str) -> str:
    if "\x00" not in text and "\x01" not in text:
        return text
    return text.replace("\x01", "\x01\x01").replace("\x00", "\x01\x02")


def _dec(text: str) -> str:
    if "\x01" not in text:
        return text
    return _ESCAPED.sub(lambda m: _UNESCAPE[m.group(1)], text)


def _enc_opt(text: str | None) -> str | None:
    return None if text is None else _enc(text)


def _dec_opt(text: str | None) -> str | None:
    return None if text is None else _dec(text)


def _us(instant: datetime | None) -> int | None:
    return None if instant is None else to_micros(instant)


def _dt(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


class _Connections:
    """A few autocommit connections shared by the threads of one process (a minimal pool)."""

    def __init__(self, dsn: str, size: int, connect_timeout: int) -> None:
        self._dsn = dsn
        self._size = size
        self._connect_timeout = connect_timeout
        self._idle: list[Connection] = []
        self._open = 0
        self._closed = False
        self._cond = threading.Condition()

    def _take(self) -> Connection:
        with self._cond:
            while True:
                if self._closed:
                    raise psycopg.InterfaceError("the store is closed")
                if self._idle:
                    return self._idle.pop()
                if self._open < self._size:
                    self._open += 1
                    break
                self._cond.wait()
        try:
            return psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=self._connect_timeout
            )
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def _give(self, conn: Connection) -> None:
        healthy = (
            not conn.closed
            and not conn.broken
            and conn.info.transaction_status == pq.TransactionStatus.IDLE
        )
        with self._cond:
            if healthy and not self._closed:
                self._idle.append(conn)
            else:
                self._open -= 1
            self._cond.notify()
        if not healthy or self._closed:
            conn.close()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        conn = self._take()
        try:
            yield conn
        finally:
            self._give(conn)

    def drop_idle(self) -> None:
        """Close the idle connections (the next ones asked for are new)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()


class PostgresDirectoryStore(DirectoryStore):
    """A :class:`DirectoryStore` in a PostgreSQL database (``postgresql://user@host:port/db``),
    shared by any number of processes."""

    #: Other processes may write this store: compare :meth:`directory_version` to notice.
    shared = True

    def __init__(self, url: str, *, max_connections: int = 8, connect_timeout: int = 10) -> None:
        self.url = url
        self._pool = _Connections(url, max_connections, connect_timeout)
        try:
            self._create_schema()
        except BaseException:
            self._pool.close()
            raise

    def _create_schema(self) -> None:
        """Create the tables if missing; safe when several processes start at once."""
        with self._pool.connection() as conn:
            where = f"{conn.info.dbname} on {conn.info.host}:{conn.info.port}"
            row = conn.execute("SHOW server_encoding").fetchone()
            if row is None or row[0] != "UTF8":
                raise RuntimeError(f"the PostgreSQL database {where} must use the UTF8 encoding")
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK])
                for statement in SCHEMA:
                    conn.execute(statement)
                row = conn.execute(
                    "SELECT value FROM tally_meta WHERE key = 'schema_version'"
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO tally_meta VALUES ('schema_version', %s)",
                        [str(SCHEMA_VERSION)],
                    )
                elif int(row[0]) > SCHEMA_VERSION:
                    raise RuntimeError(
                        f"{where} holds schema version {row[0]}, newer than this Tally's "
                        f"{SCHEMA_VERSION}"
                    )

    # -- plumbing --------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One transaction that also bumps the directory version (and, locking its row first,
        orders every directory write across processes)."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("UPDATE directory_version SET v = v + 1 WHERE id = 1")
            yield conn

    def _read(self, fetch: Callable[[Connection], T]) -> T:
        """``fetch`` on a connection; once more on a new one if the connection was lost (the
        server restarted, or dropped an idle connection): reads are safe to repeat."""
        try:
            with self._pool.connection() as conn:
                return fetch(conn)
        except psycopg.OperationalError:
            self._pool.drop_idle()  # lost together, most likely
            with self._pool.connection() as conn:
                return fetch(conn)

    def _rows(self, query: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        args = list(params)
        return self._read(lambda conn: conn.execute(query, args).fetchall())

    def close(self) -> None:
        self._pool.close()

    def size_bytes(self) -> int | None:
        """The database, as ``pg_database_size`` counts it."""
        rows = self._rows("SELECT pg_database_size(current_database())")
        return int(rows[0][0]) if rows else None

    def directory_version(self) -> int:
        """Bumped in the transaction of every directory and token write. Read it before
        :meth:`load_directory`, so that a cached directory is never older than the number kept
        with it."""
        rows = self._rows("SELECT v FROM directory_version WHERE id = 1")
        return int(rows[0][0])

    # -- organizations ---------------------------------------------------------------------
    def put_org(self, org: Organization) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO orgs VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
                " name = EXCLUDED.name, domain = EXCLUDED.domain, timezone = EXCLUDED.timezone",
                [_enc(org.id), _enc(org.name), _enc(org.domain), _enc(org.timezone)],
            )

    def get_org(self, org_id: str) -> Organization | None:
        rows = self._rows(
            "SELECT id, name, domain, timezone FROM orgs WHERE id = %s", [_enc(org_id)]
        )
        return _org(rows[0]) if rows else None

    def list_orgs(self) -> list[Organization]:
        orgs = [_org(r) for r in self._rows("SELECT id, name, domain, timezone FROM orgs")]
        return sorted(orgs, key=lambda o: o.id)

    # -- directory -------------------------------------------------------------------------
    def put_department(self, org_id: str, department: Department) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO departments VALUES (%s, %s, %s, %s) ON CONFLICT (org, id)"
                " DO UPDATE SET name = EXCLUDED.name, parent = EXCLUDED.parent",
                [
                    _enc(org_id),
                    _enc(department.id),
                    _enc(department.name),
                    _enc_opt(department.parent),
                ],
            )

    def put_member(self, org_id: str, member: Member) -> None:
        org, member_id = _enc(org_id), _enc(member.id)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO members VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (org, id)"
                " DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email,"
                " created_at = EXCLUDED.created_at, deleted_at = EXCLUDED.deleted_at",
                [
                    org,
                    member_id,
                    _enc(member.name),
                    _enc(member.email),
                    _us(member.created_at),
                    _us(member.deleted_at),
                ],
            )
            conn.execute(
                "DELETE FROM member_versions WHERE org = %s AND member = %s", [org, member_id]
            )
            if member.versions:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO member_versions VALUES (%s, %s, %s, %s, %s)",
                        [
                            [
                                org,
                                member_id,
                                _us(v.effective_at),
                                v.developer,
                                [_enc(d) for d in v.departments],
                            ]
                            for v in member.versions
                        ],
                    )

    def put_workspace(self, org_id: str, workspace: Workspace) -> None:
        org, workspace_id = _enc(org_id), _enc(workspace.id)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO workspaces VALUES (%s, %s, %s, %s, %s) ON CONFLICT (org, id)"
                " DO UPDATE SET name = EXCLUDED.name, created_at = EXCLUDED.created_at,"
                " deleted_at = EXCLUDED.deleted_at",
                [
                    org,
                    workspace_id,
                    _enc(workspace.name),
                    _us(workspace.created_at),
                    _us(workspace.deleted_at),
                ],
            )
            conn.execute(
                "DELETE FROM workspace_members WHERE org = %s AND workspace = %s",
                [org, workspace_id],
            )
            if workspace.members:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO workspace_members VALUES (%s, %s, %s, %s, %s, %s)",
                        [
                            [org, workspace_id, i, _enc(m.member), _us(m.since), _us(m.until)]
                            for i, m in enumerate(workspace.members)
                        ],
                    )

    def put_app(self, org_id: str, app: App) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO apps VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (org, id)"
                " DO UPDATE SET name = EXCLUDED.name, creator = EXCLUDED.creator,"
                " created_at = EXCLUDED.created_at, deleted_at = EXCLUDED.deleted_at",
                [
                    _enc(org_id),
                    _enc(app.id),
                    _enc(app.name),
                    _enc(app.creator),
                    _us(app.created_at),
                    _us(app.deleted_at),
                ],
            )

    def load_directory(self, org_id: str) -> Directory | None:
        """The organization's directory as of one snapshot (one read-only transaction)."""
        org_key = [_enc(org_id)]

        def fetch(conn: Connection) -> list[list[tuple[Any, ...]]] | None:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                found = [conn.execute(_DIRECTORY_QUERIES[0], org_key).fetchall()]
                if not found[0]:
                    return None
                found += [conn.execute(q, org_key).fetchall() for q in _DIRECTORY_QUERIES[1:]]
                return found

        found = self._read(fetch)
        if found is None:
            return None
        (
            org_rows,
            department_rows,
            version_rows,
            member_rows,
            membership_rows,
            workspace_rows,
            app_rows,
        ) = found
        departments = sorted(
            (
                Department(id=_dec(r[0]), name=_dec(r[1]), parent=_dec_opt(r[2]))
                for r in department_rows
            ),
            key=lambda d: d.id,
        )
        versions: dict[str, list[MemberVersion]] = {}
        for member_id, effective_at, developer, departments_of in version_rows:
            versions.setdefault(_dec(member_id), []).append(
                MemberVersion(
                    effective_at=from_micros(effective_at),
                    developer=developer,
                    departments=tuple(_dec(d) for d in departments_of),
                )
            )
        members = sorted(
            (
                Member(
                    id=_dec(r[0]),
                    name=_dec(r[1]),
                    email=_dec(r[2]),
                    created_at=from_micros(r[3]),
                    deleted_at=_dt(r[4]),
                    versions=tuple(versions.get(_dec(r[0]), ())),
                )
                for r in member_rows
            ),
            key=lambda m: m.id,
        )
        memberships: dict[str, list[WorkspaceMembership]] = {}
        for workspace_id, member_id, since, until in membership_rows:
            memberships.setdefault(_dec(workspace_id), []).append(
                WorkspaceMembership(
                    member=_dec(member_id), since=from_micros(since), until=_dt(until)
                )
            )
        workspaces = sorted(
            (
                Workspace(
                    id=_dec(r[0]),
                    name=_dec(r[1]),
                    created_at=from_micros(r[2]),
                    deleted_at=_dt(r[3]),
                    members=tuple(memberships.get(_dec(r[0]), ())),
                )
                for r in workspace_rows
            ),
            key=lambda w: w.id,
        )
        apps = sorted(
            (
                App(
                    id=_dec(r[0]),
                    name=_dec(r[1]),
                    creator=_dec(r[2]),
                    created_at=from_micros(r[3]),
                    deleted_at=_dt(r[4]),
                )
                for r in app_rows
            ),
            key=lambda a: a.id,
        )
        return Directory.build(_org(org_rows[0]), departments, members, workspaces, apps)

    # -- tokens ----------------------------------------------------------------------------
    def add_token(self, token: TokenRecord) -> None:
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    _enc(token.id),
                    _enc(token.hash),
                    _enc_opt(token.org),
                    [_enc(s) for s in token.scopes],
                    _us(token.created_at),
                    _us(token.expires_at),
                    _us(token.revoked_at),
                    _us(token.last_used_at),
                ],
            )

    def list_tokens(self) -> list[TokenRecord]:
        tokens = [
            TokenRecord(
                id=_dec(r[0]),
                hash=_dec(r[1]),
                org=_dec_opt(r[2]),
                scopes=tuple(_dec(s) for s in r[3]),
                created_at=from_micros(r[4]),
                expires_at=_dt(r[5]),
                revoked_at=_dt(r[6]),
                last_used_at=_dt(r[7]),
            )
            for r in self._rows(f"SELECT {TOKEN_COLUMNS} FROM tokens")
        ]
        return sorted(tokens, key=lambda t: (t.created_at, t.id))

    def revoke_token(self, token_id: str, at: datetime) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE tokens SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                [_us(at), _enc(token_id)],
            )

    def record_token_use(self, token_id: str, at: datetime) -> None:
        # Not through _write: a use is no directory change, so no worker needs to reload.
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(
                "UPDATE tokens SET last_used_at = %s WHERE id = %s", [_us(at), _enc(token_id)]
            )

    # -- rate limit ------------------------------------------------------------------------
    def rate_limit_hit(self, key: str, now_us: int, interval_us: int, tolerance_us: int) -> int:
        """One request of ``key`` at ``now_us`` under GCRA, atomically across processes: 0 if
        it may pass (and is counted), else the µs to wait (and nothing is counted).

        ``interval_us``: the emission interval (1 s / rate); ``tolerance_us``: how far ahead of
        ``now_us`` the key's theoretical arrival time may run (a burst of about
        ``1 + tolerance_us // interval_us`` requests passes after a long idle)."""
        if interval_us <= 0 or tolerance_us < 0:
            raise ValueError("rate_limit_hit needs interval_us > 0 and tolerance_us >= 0")
        params = {
            "key": _enc(key),
            "now": now_us,
            "interval": interval_us,
            "tolerance": tolerance_us,
        }
        with self._pool.connection() as conn:
            row = conn.execute(_RATE_LIMIT_HIT, params).fetchone()
        assert row is not None  # INSERT ... ON CONFLICT DO UPDATE returns its row
        return int(row[0])


def _org(row: tuple[Any, ...]) -> Organization:
    return Organization(
        id=_dec(row[0]), name=_dec(row[1]), domain=_dec(row[2]), timezone=_dec(row[3])
    )
