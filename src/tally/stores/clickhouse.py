"""The scale-out event store: ClickHouse (one server, or a cluster of shards), or chDB in-process.

Idempotency by (org, id): an append looks up its batch's ids (one round trip, the ids sent as an
external table) and inserts only the new ones, under one insert stamp ``ver``; copies that two
racing appends both stored are told apart by that stamp (the earliest wins), and the later
copies are kept whole in ``event_losers``. Materialized views fill the first-level rollups
(``clickhouse_schema``) in the events' own insert, so a crash can never leave events without
their rollups; since the views see every copy, readers subtract the losers (each once) and
count a member only where its net event count is positive. Statistics read the rollups for the
days a member span covers whole, and raw events only for the days a span cuts
(``clickhouse_rollups``). Inserts and id tables travel in ClickHouse's Native format built from
Arrow (``clickhouse_native``); the same SQL runs on ClickHouse 18.16 and on the current engine."""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tally.model.events import RESOURCES, STORED_COLUMNS, STORED_SCHEMA, StoredEvent
from tally.stores import clickhouse_rollups as rollups
from tally.stores import clickhouse_schema as schema
from tally.stores.base import (
    ActiveMembers,
    AppendResult,
    AppTotals,
    AssistantDay,
    ChatUsage,
    CodingUsage,
    CompletionUsage,
    EventStore,
    MemberDay,
    MemberSpan,
    MemberUsage,
)
from tally.stores.clickhouse_client import (
    IDENTIFIER,
    ChdbExecutor,
    DriverExecutor,
    Executor,
    ExternalTable,
    Row,
)
from tally.stores.clickhouse_schema import EVENT_COLUMNS

_INSERTED = tuple(name for name, _ in EVENT_COLUMNS)
assert _INSERTED[2:] == STORED_COLUMNS, "the stored layout follows StoredEvent"
_SELECTED = ", ".join(STORED_COLUMNS)
_ACCEPTED = STORED_COLUMNS.index("accepted")
_ARROW_TYPES = {
    "String": pa.string(),
    "Int64": pa.int64(),
    "UInt8": pa.uint8(),
    "Date": pa.date32(),
}
#: The stored columns as Arrow (``accepted`` as 0/1).
EVENT_SCHEMA = pa.schema(
    [
        (name, _ARROW_TYPES[kind.removeprefix("Nullable(").rstrip(")")])
        for name, kind in EVENT_COLUMNS
    ]
)
ID_STRUCTURE = (("id", "String"),)


class ClickHouseEventStore(EventStore):
    """An :class:`EventStore` in ClickHouse or chDB.

    ``url``: ``clickhouse://[user[:password]@]host:port/database`` (one server), with
    ``?cluster=NAME`` for a cluster named in the servers' ``remote_servers`` (a table per shard
    and a ``Distributed`` table over them), or ``chdb:///path/to/dir`` (``?database=NAME``,
    default ``tally``).
    The schema is created when missing.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        cluster = query.get("cluster")
        if parts.scheme == "clickhouse":
            database = parts.path.strip("/") or "tally"
            host, port = parts.hostname or "127.0.0.1", parts.port or 9000
            self._login = {
                "user": unquote(parts.username or "default"),
                "password": unquote(parts.password or ""),
            }
            settings = {"insert_distributed_sync": 1} if cluster else {}
            self._executor: Executor = DriverExecutor(
                host, port, insert_settings=settings, **self._login
            )
        elif parts.scheme == "chdb":
            if cluster:
                raise ValueError("chDB runs in-process: it has no cluster")
            database = query.get("database", "tally")
            self._executor = ChdbExecutor(Path(unquote(parts.netloc + parts.path)))
        else:
            raise ValueError(f"not a ClickHouse URL: {url!r}")
        for name in (database, cluster or "x"):
            if not IDENTIFIER.match(name):
                raise ValueError(f"not a plain ClickHouse name: {name!r}")
        self.database, self.cluster = database, cluster
        db = database
        #: What a query reads or an insert writes (the Distributed table on a cluster), and
        #: ``local_losers``: the shard-local losers a shard's part of a query reads beside it.
        self._names = {table: f"{db}.{table}" for table in schema.TABLES}
        if cluster:
            self._names["local_losers"] = f"{db}.event_losers_local"
            self._create_cluster_schema(host, port, cluster)
        else:
            self._names["local_losers"] = f"{db}.event_losers"
            self._create_schema(self._executor, "")
        self._global = "GLOBAL " if cluster else ""

    # -- schema ----------------------------------------------------------------------------
    def _create_schema(self, executor: Executor, suffix: str) -> None:
        """The tables (``suffix``: ``_local`` on a shard) and the views that fill ``event_ids``
        and the rollups from every insert into ``events``."""
        db = self.database
        executor.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
        present = {
            row[0]
            for row in executor.query(
                "SELECT name FROM system.tables WHERE database = %(db)s", {"db": db}
            )
        }
        for ddl in schema.tables(db, suffix) + schema.views(db, suffix):
            executor.execute(ddl)
        if f"events{suffix}" in present:  # a store of an older schema: fill its new rollups
            for table in schema.ADDED_TABLES:
                if f"{table}{suffix}" not in present:
                    for statement in schema.backfill(db, suffix, table):
                        executor.execute(statement)

    def _create_cluster_schema(self, host: str, port: int, cluster: str) -> None:
        """On every node of the cluster (and the one named by the URL): the shard-local tables,
        and ``Distributed`` tables over them, sharded by (org, id)."""
        nodes = {
            (str(h), int(p))
            for h, p in self._executor.query(
                "SELECT host_address, port FROM system.clusters WHERE cluster = %(cluster)s",
                {"cluster": cluster},
            )
        }
        if not nodes:
            raise ValueError(f"the server knows no cluster {cluster!r}")
        db = self.database
        for node_host, node_port in sorted(nodes | {(host, port)}):
            node = DriverExecutor(node_host, node_port, insert_settings={}, **self._login)
            try:
                self._create_schema(node, "_local")
                for table in schema.TABLES:
                    node.execute(
                        f"CREATE TABLE IF NOT EXISTS {db}.{table} AS {db}.{table}_local"
                        f" ENGINE = Distributed({cluster}, {db}, {table}_local,"
                        f" {schema.SHARDING_KEY if table in schema.BY_ID else 'rand()'})"
                    )
            finally:
                node.close()

    def close(self) -> None:
        self._executor.close()

    def size_bytes(self) -> int | None:
        """The active parts of the database on the node the URL names (on a cluster: that
        node's shard only)."""
        rows = self._executor.query(
            "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = %(db)s",
            {"db": self.database},
        )
        return int(rows[0][0]) if rows else None

    # -- events ----------------------------------------------------------------------------
    def append_events(self, org_id: str, events: Sequence[StoredEvent]) -> AppendResult:
        if not events:
            return AppendResult(frozenset())
        columns = list(zip(*map(msgspec.structs.astuple, events), strict=True))
        arrays = [
            pa.array(column, STORED_SCHEMA.field(name).type).cast(EVENT_SCHEMA.field(name).type)
            for name, column in zip(STORED_COLUMNS, columns, strict=True)
        ]
        return self._append(org_id, pa.Table.from_arrays(arrays, names=list(STORED_COLUMNS)))

    def append_table(self, org_id: str, table: pa.Table) -> AppendResult:
        if table.num_rows == 0:
            return AppendResult(frozenset())
        columns = [table[name].cast(EVENT_SCHEMA.field(name).type) for name in STORED_COLUMNS]
        return self._append(org_id, pa.Table.from_arrays(columns, names=list(STORED_COLUMNS)))

    def _append(self, org_id: str, table: pa.Table) -> AppendResult:
        """Store the events of ``table`` (``STORED_COLUMNS``, distinct ids) whose id is new,
        under one fresh insert stamp; then settle the races of the stored ones."""
        ids = table["id"]
        known = self._stored_ids(org_id, ids)
        if known:
            table = table.filter(pc.invert(pc.is_in(ids, pa.array(known, pa.string()))))
        if table.num_rows:
            n = table.num_rows
            stamped = table.add_column(0, "ver", pa.array(np.full(n, _stamp(), np.int64)))
            stamped = stamped.add_column(0, "org", pa.array([org_id] * n, pa.string()))
            self._executor.insert(self._names["events"], stamped, schema.EVENT_COLUMNS)
        self._settle(org_id, ids)  # a retry settles what a failed append left
        return AppendResult(frozenset(table["id"].to_pylist()))

    def _stored_ids(self, org_id: str, ids: pa.ChunkedArray | pa.Array) -> list[str]:
        """Which of ``ids`` the org has stored: one lookup through the (org, id) index, the
        batch's ids sent along as a table."""
        rows = self._executor.query(
            f"SELECT DISTINCT id FROM {self._names['event_ids']}"
            f" WHERE org = %(org)s AND id {self._global}IN batch_ids",
            {"org": org_id},
            [_id_table(ids)],
        )
        return [row[0] for row in rows]

    def _settle(self, org_id: str, ids: pa.ChunkedArray | pa.Array | None) -> None:
        """Where an id of ``ids`` (``None``: any id) has several stored copies (two appends
        raced), list every copy but the earliest, whole, as a loser.

        Runs after the append's insert: of two racing appends, the later insert sees both
        copies. An append that fails before this point is retried by its client, and the retry
        settles its ids; ``rebuild_rollups`` settles a whole organization."""
        where = "" if ids is None else f" AND id {self._global}IN batch_ids"
        rows = self._executor.query(
            f"SELECT id, groupUniqArray((ver, day, type, member)) FROM {self._names['event_ids']}"
            f" WHERE org = %(org)s{where} GROUP BY id HAVING uniqExact(ver) > 1",
            {"org": org_id},
            [] if ids is None else [_id_table(ids)],
        )
        losers = [(event_id, *copy) for event_id, copies in rows for copy in sorted(copies)[1:]]
        if not losers:
            return
        found = self._executor.query(
            f"SELECT {', '.join(_INSERTED)} FROM {self._names['events']}"
            " WHERE org = %(org)s AND day IN %(days)s AND type IN %(types)s"
            " AND member IN %(members)s AND (id, ver) IN %(copies)s",
            {
                "org": org_id,
                "days": {day for _, _, day, _, _ in losers},
                "types": {kind for _, _, _, kind, _ in losers},
                "members": {member for *_, member in losers},
                "copies": {(event_id, ver) for event_id, ver, *_ in losers},
            },
        )
        table = pa.Table.from_pylist(
            [dict(zip(_INSERTED, row, strict=True)) for row in found], schema=EVENT_SCHEMA
        )
        self._executor.insert(self._names["event_losers"], table, schema.EVENT_COLUMNS)

    def list_events(
        self,
        org_id: str,
        *,
        start_us: int | None,
        end_us: int | None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[StoredEvent]:
        where = ["org = %(org)s", rollups.live(self._names)]
        params: dict[str, Any] = {"org": org_id}
        if start_us is not None:
            where.append("ts >= %(start)s")
            params["start"] = start_us
        if end_us is not None:
            where.append("ts < %(end)s")
            params["end"] = end_us
        if after is not None:
            where.append("(ts > %(after_ts)s OR (ts = %(after_ts)s AND id > %(after_id)s))")
            params.update(after_ts=after[0], after_id=after[1])
        rows = self._executor.query(
            f"SELECT {_SELECTED} FROM {self._names['events']} WHERE {' AND '.join(where)}"
            f" ORDER BY ts, id LIMIT {int(limit)}",
            params,
        )
        return [_event(row) for row in rows]

    def count_events(self, org_id: str) -> int:
        rows = self._executor.query(
            f"SELECT count() FROM {self._names['events']}"
            f" WHERE org = %(org)s AND {rollups.live(self._names)}",
            {"org": org_id},
        )
        return int(rows[0][0])

    def rebuild_rollups(self, org_id: str) -> None:
        """The rollups are written in the events' own inserts, and readers net them against
        the losers; what is left to recompute is which copies lost a race, for the whole
        organization."""
        self._settle(org_id, None)

    # -- reading: the spans over the rollups -----------------------------------------------
    def _day_bounds(
        self, org_id: str, first_day: date, last_day: date
    ) -> dict[date, tuple[int, int]]:
        rows = self._executor.query(
            f"SELECT day, minMerge(lo), maxMerge(hi) FROM {self._names['day_bounds']}"
            " WHERE org = %(org)s AND day >= %(first)s AND day <= %(last)s GROUP BY day",
            {"org": org_id, "first": first_day, "last": last_day},
        )
        return {day: (int(lo), int(hi)) for day, lo, hi in rows}

    def _span_tables(
        self, org_id: str, spans: Sequence[MemberSpan], first_day: date, last_day: date
    ) -> tuple[list[ExternalTable], dict[str, Any]]:
        """The external tables ``whole`` and ``partial`` (each only if not empty) and the
        parameters naming the partial days and members."""
        bounds = self._day_bounds(org_id, first_day, last_day)
        whole, partial = rollups.split_spans(spans, bounds, first_day, last_day)
        tables: list[ExternalTable] = []
        params: dict[str, Any] = {}
        if whole.num_rows:
            tables.append(ExternalTable("whole", rollups.WHOLE_STRUCTURE, whole))
        if partial.num_rows:
            tables.append(ExternalTable("partial", rollups.PARTIAL_STRUCTURE, partial))
            params["pdays"] = set(partial["day"].to_pylist())
            params["pmembers"] = set(partial["member"].to_pylist())
        return tables, params

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
        tables, params = self._span_tables(org_id, spans, first_day, last_day)
        if not tables:
            return []
        names = {t.name for t in tables}
        sql = rollups.assistant_sql(
            self._names,
            self._global,
            with_whole="whole" in names,
            with_partial="partial" in names,
        )
        params.update(org=org_id, first=first_day, last=last_day)
        return _assistant_days(self._executor.query(sql, params, tables))

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
        """From the rollups: the count of (day, member) pairs, the page's pairs with their
        groups, and their latest counted event from ``member_last`` (from the raw events only
        for the pairs of a partial day, or whose latest instant a race loser holds)."""
        if not spans:
            return MemberUsage(total=0, days=[])
        tables, params = self._span_tables(org_id, spans, first_day, last_day)
        if not tables:
            return MemberUsage(total=0, days=[])
        names = {t.name for t in tables}
        params.update(org=org_id, first=first_day, last=last_day)
        shape = {"with_whole": "whole" in names, "with_partial": "partial" in names}
        sql = rollups.member_usage_sql(self._names, self._global, page=None, **shape)
        total = int(self._executor.query(sql, params, tables)[0][0])
        if offset >= total or limit == 0:
            return MemberUsage(total=total, days=[])
        page = (offset, min(limit if limit is not None else total, total - offset))
        sql = rollups.member_usage_sql(self._names, self._global, page=page, **shape)
        rows = self._executor.query(sql, params, tables)
        partial = {
            (day, member)
            for table in tables
            if table.name == "partial"
            for day, member in zip(
                table.data["day"].to_pylist(), table.data["member"].to_pylist(), strict=True
            )
        }
        latest = self._member_last_events(org_id, spans, [(r[0], r[1]) for r in rows], partial)
        return MemberUsage(total=total, days=_member_days(rows, latest))

    def _member_last_events(
        self,
        org_id: str,
        spans: Sequence[MemberSpan],
        pairs: Sequence[tuple[date, str]],
        partial: set[tuple[date, str]],
    ) -> dict[tuple[date, str], int]:
        """The latest counted event of each (day, member) of ``pairs``; ``partial``: the pairs
        whose day the member's spans cut (read from the raw events, like a loser's pair)."""
        params: dict[str, Any] = {
            "org": org_id,
            "days": {day for day, _ in pairs},
            "members": {member for _, member in pairs},
        }
        latest: dict[tuple[date, str], int] = {}
        lost: dict[tuple[date, str], int] = {}
        for part, day, member, ts in self._executor.query(
            rollups.member_last_sql(self._names, pairs=True), params
        ):
            (lost if part else latest)[day, member] = int(ts)
        raw = {
            pair
            for pair in pairs
            if pair in partial or pair not in latest or lost.get(pair) == latest[pair]
        }
        if raw:
            mine = [s for s in spans if s.member in {member for _, member in raw}]
            sql = f"""
            SELECT day, member, max(ts) FROM {self._names["events"]}
            {self._global}ALL INNER JOIN spans USING member
            WHERE org = %(org)s AND day IN %(days)s AND member IN %(members)s
              AND type IN {schema.ASSISTANT_TYPES} AND ts >= from_us AND ts < to_us
              AND {rollups.live(self._names)}
            GROUP BY day, member
            """
            params.update(days={d for d, _ in raw}, members={m for _, m in raw})
            found = self._executor.query(sql, params, [_span_table(mine)])
            latest.update(
                {(day, member): int(ts) for day, member, ts in found if (day, member) in raw}
            )
        return latest

    def latest_event_times(self, org_id: str) -> dict[str, int]:
        """Each member's latest instant of ``member_last``; a member whose latest instant a race
        loser holds is read from its live raw events instead."""
        latest: dict[str, int] = {}
        lost: dict[str, int] = {}
        for part, _, member, ts in self._executor.query(
            rollups.member_last_sql(self._names, pairs=False), {"org": org_id}
        ):
            (lost if part else latest)[member] = int(ts)
        raw = {member for member, ts in lost.items() if latest.get(member) == ts}
        if raw:
            for member in raw:
                del latest[member]
            found = self._executor.query(
                f"SELECT member, max(ts) FROM {self._names['events']}"
                " WHERE org = %(org)s AND member IN %(members)s"
                f" AND {rollups.live(self._names)} GROUP BY member",
                {"org": org_id, "members": raw},
            )
            latest.update({member: int(ts) for member, ts in found})
        return latest

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
        if (event_types is not None and not event_types) or (during is not None and not during):
            return ActiveMembers({}, {}, {})
        kind = _ACTIVITY_KINDS.get(tuple(event_types) if event_types is not None else None)
        if kind is None or (per_workspace and kind != "workspace"):
            return self._raw_active_members(
                org_id, first_day, last_day, event_types, during, per_workspace
            )
        params: dict[str, Any] = {"org": org_id, "first": first_day, "last": last_day}
        tables: list[ExternalTable] = []
        if during is not None:
            tables, more = self._span_tables(org_id, during, first_day, last_day)
            if not tables:
                return ActiveMembers({}, {}, {})
            params.update(more)
        names = {t.name for t in tables}
        sql = rollups.active_sql(
            self._names,
            self._global,
            kind=kind,
            per_workspace=per_workspace,
            during=during is not None,
            with_whole="whole" in names,
            with_partial="partial" in names,
        )
        per_day: dict[tuple[str, date], int] = {}
        per_month: dict[tuple[str, int, int], int] = {}
        for grp, month, members, days in self._executor.query(sql, params, tables):
            per_month[grp, month.year, month.month] = int(members)
            for day, active in days:
                per_day[grp, day] = int(active)
        return ActiveMembers.from_days(per_day, per_month)

    def _raw_active_members(
        self,
        org_id: str,
        first_day: date,
        last_day: date,
        event_types: Sequence[str] | None,
        during: Sequence[MemberSpan] | None,
        per_workspace: bool,
    ) -> ActiveMembers:
        """Event types the rollups do not keep apart: from the window's raw events."""
        where = [
            "org = %(org)s",
            "day >= %(first)s",
            "day <= %(last)s",
            rollups.live(self._names),
        ]
        params: dict[str, Any] = {"org": org_id, "first": first_day, "last": last_day}
        if event_types is not None:
            where.append("type IN %(types)s")
            params["types"] = tuple(event_types)
        if per_workspace:
            where.append("workspace IS NOT NULL")
        source = self._names["events"]
        external: list[ExternalTable] = []
        if during is not None:
            source += f" {self._global}ALL INNER JOIN spans USING member"
            where.append("ts >= from_us AND ts < to_us")
            external.append(_span_table(during))
        group = "assumeNotNull(workspace)" if per_workspace else "''"
        body = f"FROM {source} WHERE {' AND '.join(where)}"
        sql = f"""
        SELECT toUInt8(0) AS part, {group} AS grp, day AS start, toInt64(uniqExact(member)) AS n
        {body} GROUP BY grp, start
        UNION ALL
        SELECT toUInt8(1) AS part, {group} AS grp, toStartOfMonth(day) AS start,
               toInt64(uniqExact(member)) AS n
        {body} GROUP BY grp, start
        """
        per_day: dict[tuple[str, date], int] = {}
        per_month: dict[tuple[str, int, int], int] = {}
        for part, grp, start, n in self._executor.query(sql, params, external):
            if part == 0:
                per_day[grp, start] = int(n)
            else:
                per_month[grp, start.year, start.month] = int(n)
        return ActiveMembers.from_days(per_day, per_month)

    # -- app usage -------------------------------------------------------------------------
    def app_totals(
        self, org_id: str, app_ids: Sequence[str], *, day: date, end_us: int
    ) -> dict[str, AppTotals]:
        if not app_ids:
            return {}
        params = {"org": org_id, "day": day, "end": end_us, "apps": tuple(app_ids)}
        # Up to the end of an org day: whole org days, which the daily rollups answer.
        groups = self._executor.query(rollups.app_sql(self._names), params)
        losers = self._executor.query(rollups.app_losers_sql(self._names), params)
        sums: dict[tuple[str, str], int] = defaultdict(int)
        raw = set()
        for app, kind, resource, delta in losers:
            if kind == "app_resource":
                sums[app, resource] -= delta
            else:  # a latest event may have lost: that app from its raw events
                raw.add(app)
        resources: dict[str, dict[str, int]] = defaultdict(dict)
        latest: dict[tuple[str, str], int | None] = {}
        for app, kind, resource, total, last_ts, records in groups:
            if kind == "app_resource":
                if resource in RESOURCES:
                    resources[app][resource] = int(total) + sums[app, resource]
            else:
                latest[app, kind] = records if kind == "app_data" else last_ts
        totals = {
            app: AppTotals(
                resources=resources.get(app, {}),
                records=latest.get((app, "app_data")),
                last_visit_us=latest.get((app, "app_visit")),
                last_edit_us=latest.get((app, "app_edit")),
            )
            for app in {app for app, _ in latest} | resources.keys()
            if app not in raw
        }
        if raw:
            totals.update(self._raw_app_totals(org_id, sorted(raw), day=day, end_us=end_us))
        return totals

    def _raw_app_totals(
        self, org_id: str, app_ids: Sequence[str], *, day: date, end_us: int
    ) -> dict[str, AppTotals]:
        sql = f"""
        SELECT assumeNotNull(app) AS app_id, type, ifNull(resource, '') AS res,
               toInt64(ifNull(sum(delta), 0)), max(ts), argMax(records, (ts, id))
        FROM {self._names["events"]}
        WHERE org = %(org)s AND day <= %(day)s AND ts < %(end)s AND app IN %(apps)s
          AND type IN ('app_resource', 'app_data', 'app_visit', 'app_edit')
          AND {rollups.live(self._names)}
        GROUP BY app_id, type, res
        """
        rows = self._executor.query(
            sql, {"org": org_id, "day": day, "end": end_us, "apps": tuple(app_ids)}
        )
        resources: dict[str, dict[str, int]] = defaultdict(dict)
        latest: dict[tuple[str, str], int | None] = {}
        for app, kind, resource, total, last_ts, records in rows:
            if kind == "app_resource":
                if resource in RESOURCES:
                    resources[app][resource] = int(total)
            else:
                latest[app, kind] = records if kind == "app_data" else last_ts
        apps = {app for app, _ in latest} | resources.keys()
        return {
            app: AppTotals(
                resources=resources.get(app, {}),
                records=latest.get((app, "app_data")),
                last_visit_us=latest.get((app, "app_visit")),
                last_edit_us=latest.get((app, "app_edit")),
            )
            for app in apps
        }


# -- helpers ---------------------------------------------------------------------------------

#: Which ``activity_day`` kind answers ``active_members`` for its ``event_types``.
_ACTIVITY_KINDS: dict[tuple[str, ...] | None, str] = {
    None: "any",
    ("workspace_activity",): "workspace",
}
SPAN_STRUCTURE = (("member", "String"), ("from_us", "Int64"), ("to_us", "Int64"))


def _stamp() -> int:
    """An insert stamp: microseconds since the epoch, then 10 random bits (so two appends of
    the same microsecond are told apart); an earlier append has the smaller stamp."""
    return (time.time_ns() // 1_000) << 10 | secrets.randbits(10)


def _id_table(ids: pa.ChunkedArray | pa.Array) -> ExternalTable:
    return ExternalTable("batch_ids", ID_STRUCTURE, pa.table({"id": ids}))


def _event(row: Row) -> StoredEvent:
    values = list(row)
    if values[_ACCEPTED] is not None:
        values[_ACCEPTED] = bool(values[_ACCEPTED])
    return StoredEvent(**dict(zip(STORED_COLUMNS, values, strict=True)))


def _span_table(spans: Sequence[MemberSpan]) -> ExternalTable:
    data = pa.table(
        {
            "member": [s.member for s in spans],
            "from_us": [s.from_us for s in spans],
            "to_us": [s.to_us for s in spans],
        },
        schema=pa.schema([("member", pa.string()), ("from_us", pa.int64()), ("to_us", pa.int64())]),
    )
    return ExternalTable("spans", SPAN_STRUCTURE, data)


def _assistant_days(rows: Iterable[Row]) -> list[AssistantDay]:
    """Days from the rows of ``rollups.assistant_sql``: a day's distinct members (any, chat,
    completion) and its groups. Breakdowns sorted by their keys in code-point order."""
    days = []
    for day, active, chat, completion, groups in sorted(rows, key=lambda row: row[0]):
        completions: list[CompletionUsage] = []
        chatting: list[ChatUsage] = []
        coding: list[CodingUsage] = []
        for kind, k1, k2, n, accepted, s1, s2, s3, developers in groups:
            if kind == "completion":
                completions.append(CompletionUsage(k1, k2, n, accepted, s1, s2, developers))
            elif kind == "chat":
                chatting.append(ChatUsage(k1, k2, n, accepted, developers))
            else:
                coding.append(CodingUsage(k1, s2, s3, s1, developers))
        days.append(
            AssistantDay(
                day,
                int(active),
                int(chat),
                int(completion),
                tuple(sorted(completions, key=lambda u: (u.ide, u.language))),
                tuple(sorted(chatting, key=lambda u: (u.chat_type, u.ide))),
                tuple(sorted(coding, key=lambda u: u.language)),
            )
        )
    return days


def _member_days(rows: Iterable[Row], latest: Mapping[tuple[date, str], int]) -> list[MemberDay]:
    """Records from the page rows of ``rollups.member_usage_sql`` (in (day, member) order);
    each breakdown sorted by its keys in code-point order."""
    days = []
    for day, member, groups in rows:
        completions: list[CompletionUsage] = []
        chatting: list[ChatUsage] = []
        coding: list[CodingUsage] = []
        for kind, k1, k2, n, accepted, s1, s2, s3 in groups:
            if kind == "completion":
                completions.append(CompletionUsage(k1, k2, n, accepted, s1, s2, 1))
            elif kind == "chat":
                chatting.append(ChatUsage(k1, k2, n, accepted, 1))
            else:
                coding.append(CodingUsage(k1, s2, s3, s1, 1))
        days.append(
            MemberDay(
                day,
                member,
                latest[day, member],
                tuple(sorted(completions, key=lambda u: (u.ide, u.language))),
                tuple(sorted(chatting, key=lambda u: (u.chat_type, u.ide))),
                tuple(sorted(coding, key=lambda u: u.language)),
            )
        )
    return days
