"""The seam between the ClickHouse event store and a ClickHouse engine: one small protocol, two
implementations (a server over the native protocol, and chDB, the current engine in-process).

The store writes one dialect of SQL that ClickHouse 18.16 and the current engine both accept;
parameters (``%(name)s``) are rendered here as literals, the same way for both, and rows to insert
travel as data (never as inline ``VALUES``, which 18.16's native protocol does not take).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from tally.stores import clickhouse_native as native

Row = tuple[Any, ...]

#: A plain identifier (database, cluster): the only names the store puts into SQL unquoted.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ExternalTable:
    """Rows a query reads as a table ``name`` (a batch's ids, the member spans of a read):
    the columns of ``data`` that ``structure`` names. Never empty (the native protocol ends
    the external data at an empty block)."""

    name: str
    structure: Sequence[tuple[str, str]]  # (column, ClickHouse type)
    data: pa.Table


class Executor(Protocol):
    """Runs the store's SQL on one engine."""

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """A statement without an answer (DDL)."""

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        external_tables: Sequence[ExternalTable] = (),
    ) -> list[Row]:
        """The rows of a ``SELECT``; ``external_tables`` are readable by name meanwhile."""

    def insert(self, table: str, data: pa.Table, structure: Sequence[tuple[str, str]]) -> None:
        """Insert the columns of ``data`` that ``structure`` names (Arrow types matching the
        ClickHouse ones: string, int64, uint8, date32); on a cluster the rows are on their
        shards when this returns."""

    def close(self) -> None: ...


# -- parameters -------------------------------------------------------------------------------


def literal(value: Any) -> str:
    """``value`` as a ClickHouse literal (strings escaped; sequences as tuples, for ``IN``)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, date):
        return f"toDate('{value.isoformat()}')"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    if isinstance(value, list | tuple | frozenset | set):
        items = sorted(value) if isinstance(value, frozenset | set) else value
        if not items:
            raise ValueError("an empty list has no ClickHouse literal")
        return "(" + ", ".join(literal(item) for item in items) + ")"
    raise TypeError(f"no ClickHouse literal for {type(value).__name__}")


def render(sql: str, params: Mapping[str, Any] | None) -> str:
    """``sql`` with each ``%(name)s`` replaced by the literal of ``params[name]``."""
    if not params:
        return sql
    return sql % {name: literal(value) for name, value in params.items()}


# -- a server over the native protocol -----------------------------------------------------


class DriverExecutor:
    """A ClickHouse server (18.16 or later) through clickhouse-driver, one connection per
    thread (a driver client must not be shared between threads)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        insert_settings: Mapping[str, Any],
        user: str = "default",
        password: str = "",
    ) -> None:
        self._host, self._port, self._user, self._password = host, port, user, password
        self._insert_settings = dict(insert_settings)
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            from clickhouse_driver import Client  # type: ignore[import-untyped]

            client = Client(
                self._host,
                port=self._port,
                user=self._user,
                password=self._password,
                settings={"max_query_size": 4 << 20},
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._client().execute(render(sql, params))

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        external_tables: Sequence[ExternalTable] = (),
    ) -> list[Row]:
        if external_tables:
            return native.query(
                self._client(),
                render(sql, params),
                [(table.name, table.data, table.structure) for table in external_tables],
            )
        rows: list[Row] = self._client().execute(render(sql, params))
        return rows

    def insert(self, table: str, data: pa.Table, structure: Sequence[tuple[str, str]]) -> None:
        if data.num_rows:
            native.insert(self._client(), table, data, structure, self._insert_settings)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.disconnect()


# -- chDB: the current engine in-process ----------------------------------------------------


class ChdbExecutor:
    """chDB (``chdb.session.Session`` on a directory): the current ClickHouse engine in this
    process. External tables become temporary tables of the session for one query, so queries
    are serialised by a lock (the session is shared by the store's threads)."""

    def __init__(self, path: Path) -> None:
        from chdb import session

        path.mkdir(parents=True, exist_ok=True)
        open_session: Any = session.Session  # chDB's methods carry no annotations
        self._session: Any = open_session(str(path))
        self._lock = threading.Lock()

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            self._session.query(render(sql, params))

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        external_tables: Sequence[ExternalTable] = (),
    ) -> list[Row]:
        with self._lock, self._temporary(external_tables):
            table = self._session.query(render(sql, params), "ArrowTable")
        columns = [_plain(column.to_pylist(), column.type) for column in table.columns]
        return list(zip(*columns, strict=True)) if columns else []

    @contextmanager
    def _temporary(self, tables: Sequence[ExternalTable]) -> Iterator[None]:
        created: list[str] = []
        try:
            for table in tables:
                structure = ", ".join(f"{name} {kind}" for name, kind in table.structure)
                self._session.query(f"CREATE TEMPORARY TABLE {table.name} ({structure})")
                created.append(table.name)
                self._insert_arrow(table.name, table.data, table.structure)
            yield
        finally:
            for name in created:
                self._session.query(f"DROP TEMPORARY TABLE IF EXISTS {name}")

    def insert(self, table: str, data: pa.Table, structure: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            self._insert_arrow(table, data, structure)

    def _insert_arrow(
        self, table: str, data: pa.Table, structure: Sequence[tuple[str, str]]
    ) -> None:
        """chDB reads the Arrow table in place (its ``Python()`` table function finds the
        local variable ``arrow_rows`` by name)."""
        if not data.num_rows:
            return
        names = [name for name, _ in structure]
        arrow_rows = data.select(names)  # noqa: F841  (read by chDB from this frame)
        columns = ", ".join(names)
        self._session.query(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM Python(arrow_rows)"
        )

    def close(self) -> None:
        with self._lock:
            self._session.close()


def _plain(values: list[Any], kind: pa.DataType) -> list[Any]:
    """Values as the driver gives them: a tuple (an Arrow struct) as a Python tuple, not a
    dict of its field names."""
    if pa.types.is_struct(kind):
        return [None if v is None else tuple(v.values()) for v in values]
    if pa.types.is_list(kind) and pa.types.is_struct(kind.value_type):
        return [None if v is None else [tuple(item.values()) for item in v] for v in values]
    return values
