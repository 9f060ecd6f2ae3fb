"""Daily rollups of the DuckDB store: what the statistics read instead of raw events.

Two tables, both free of any directory fact (so a department move or a developer flag change never
invalidates them; the engine applies the directory at query time):

- ``member_day``: per org day, member and key, the sums every API needs (``kind`` says which:
  ``completion`` (ide, language), ``chat`` (chat_type, ide), ``code`` (language)), and
  ``activity_day``, the same columns for ``any`` (every event: the member was active) and
  ``workspace`` (workspace id), apart so that each API scans only its own rows;
- ``app_day``: per org day, app and kind, the resource delta sums and the latest data / visit /
  edit of the day;
- ``member_last``: per org day, member and kind (``any``: every event; ``assistant``: the
  ``completion``, ``chat`` and ``code`` events) the latest instant, compacted by ``max``.

Two second levels sit on top, in their own modules: ``duckdb_departments`` (per department
subtree and day) and ``duckdb_activity`` (distinct active members per day and month); this module
keeps what they share: the member spans over the rollups and which org days each has fresh.

Rows are *deltas*: each append adds the aggregate of its new events (in the same transaction, so
the rollups never disagree with the events), readers sum them, and :func:`compact` merges a day's
deltas into one row per key. Only new events are rolled up, so duplicates never count twice;
a late event simply adds a delta to its (old) day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tally.model.events import StoredEvent
from tally.stores.base import MemberSpan
from tally.timeutil import day_start, from_micros, local_day, to_micros

SCHEMA = """
CREATE TABLE IF NOT EXISTS member_day (
    org VARCHAR NOT NULL, day DATE NOT NULL, member VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    k1 VARCHAR NOT NULL, k2 VARCHAR NOT NULL,
    n BIGINT NOT NULL, n_accepted BIGINT NOT NULL, s1 BIGINT NOT NULL, s2 BIGINT NOT NULL,
    s3 BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS activity_day (
    org VARCHAR NOT NULL, day DATE NOT NULL, member VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    k1 VARCHAR NOT NULL, k2 VARCHAR NOT NULL,
    n BIGINT NOT NULL, n_accepted BIGINT NOT NULL, s1 BIGINT NOT NULL, s2 BIGINT NOT NULL,
    s3 BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS member_last (
    org VARCHAR NOT NULL, day DATE NOT NULL, member VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    last_ts BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS app_day (
    org VARCHAR NOT NULL, day DATE NOT NULL, app VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    resource VARCHAR NOT NULL, total BIGINT NOT NULL,
    last_ts BIGINT, last_id VARCHAR, last_records BIGINT
);
"""

# What one member-day row means per kind (n, n_accepted, s1, s2, s3):
#   completion: events, accepted events, lines_suggested, lines_accepted, 0
#   chat:       turns, accepted turns, 0, 0, 0
#   code:       events, 0, lines_accepted of source=chat, lines_accepted, lines_changed
#   any:        events of any type, 0, 0, 0, 0
#   workspace:  workspace_activity events, 0, 0, 0, 0
_MEMBER_DAY_FROM_KIND = {
    "completion": """
SELECT {scope}, day, member, 'completion', ide, language, count(*),
       count(*) FILTER (WHERE accepted), sum(lines_suggested), sum(lines_accepted), 0
  FROM {src} WHERE type = 'completion' GROUP BY {scope}, day, member, ide, language""",
    "chat": """
SELECT {scope}, day, member, 'chat', chat_type, ide, count(*), count(*) FILTER (WHERE accepted),
       0, 0, 0
  FROM {src} WHERE type = 'chat' GROUP BY {scope}, day, member, chat_type, ide""",
    "code": """
SELECT {scope}, day, member, 'code', language, '', count(*), 0,
       coalesce(sum(lines_accepted) FILTER (WHERE source = 'chat'), 0), sum(lines_accepted),
       sum(lines_changed)
  FROM {src} WHERE type = 'code' GROUP BY {scope}, day, member, language""",
    "any": """
SELECT {scope}, day, member, 'any', '', '', count(*), 0, 0, 0, 0
  FROM {src} GROUP BY {scope}, day, member""",
    "workspace": """
SELECT {scope}, day, member, 'workspace', workspace, '', count(*), 0, 0, 0, 0
  FROM {src} WHERE type = 'workspace_activity' GROUP BY {scope}, day, member, workspace""",
}


def member_day_from(
    src: str, scope: str = "org", kinds: Sequence[str] = tuple(_MEMBER_DAY_FROM_KIND)
) -> str:
    """The member-day rows (of ``kinds``: default all) of the events of ``src``, their first
    column ``scope`` (``org``, or the group column of a per-department roll-up)."""
    return "\nUNION ALL".join(
        _MEMBER_DAY_FROM_KIND[kind].format(src=src, scope=scope) for kind in kinds
    )


_APP_DAY_FROM = """
SELECT org, day, app, 'resource', resource, sum(delta), NULL, NULL, NULL
  FROM {src} WHERE type = 'app_resource' GROUP BY org, day, app, resource
UNION ALL
SELECT org, day, app, 'data', '', 0, max(ts), arg_max(id, (ts, id)), arg_max(records, (ts, id))
  FROM {src} WHERE type = 'app_data' GROUP BY org, day, app
UNION ALL
SELECT org, day, app, type, '', 0, max(ts), arg_max(id, (ts, id)), NULL
  FROM {src} WHERE type IN ('app_visit', 'app_edit') GROUP BY org, day, app, type
"""

_MEMBER_LAST_FROM = """
SELECT org, day, member, 'any', max(ts) FROM {src} GROUP BY org, day, member
UNION ALL
SELECT org, day, member, 'assistant', max(ts)
  FROM {src} WHERE type IN ('completion', 'chat', 'code') GROUP BY org, day, member
"""

#: Member-day kinds kept apart in ``activity_day`` (the environment statistics read only those),
#: so neither API scans the other's rows.
ACTIVITY_KINDS = ("any", "workspace")


def table_of(kind: str) -> str:
    """The member-day table holding ``kind``."""
    return "activity_day" if kind in ACTIVITY_KINDS else "member_day"


_MEMBER_DAY_COMPACT = """
SELECT org, day, member, kind, k1, k2, sum(n), sum(n_accepted), sum(s1), sum(s2), sum(s3)
  FROM {table} WHERE org = $org AND day IN (SELECT unnest($days::DATE[]))
 GROUP BY ALL
"""
_APP_DAY_COMPACT = """
SELECT org, day, app, kind, resource, sum(total), max(last_ts),
       arg_max(last_id, (last_ts, last_id)), arg_max(last_records, (last_ts, last_id))
  FROM app_day WHERE org = $org AND day IN (SELECT unnest($days::DATE[]))
 GROUP BY ALL
"""
_MEMBER_LAST_COMPACT = """
SELECT org, day, member, kind, max(last_ts)
  FROM member_last WHERE org = $org AND day IN (SELECT unnest($days::DATE[]))
 GROUP BY ALL
"""


def add(cursor: duckdb.DuckDBPyConnection, org_id: str, events: Iterable[StoredEvent]) -> None:
    """Roll up ``events`` (new events only) as delta rows.

    The same aggregation as :func:`member_day_from` / :data:`_APP_DAY_FROM` (which ``rebuild``
    runs over the events table), done in Python: for a batch of a few thousand events it costs
    a fraction of eight planned queries. ``test_rollups`` checks the two agree.
    """
    member_rows: dict[tuple[Any, ...], list[int]] = {}
    app_rows: dict[tuple[Any, ...], list[Any]] = {}
    last_rows: dict[tuple[Any, ...], list[int]] = {}
    for e in events:
        _add(member_rows, (e.day, e.member, "any", "", ""), 1, 0, 0, 0, 0)
        kind = e.type
        _latest(last_rows, (e.day, e.member, "any"), e.ts)
        if kind in ASSISTANT_KINDS:
            _latest(last_rows, (e.day, e.member, "assistant"), e.ts)
        if kind == "completion":
            _add(
                member_rows,
                (e.day, e.member, kind, e.ide, e.language),
                1,
                int(bool(e.accepted)),
                e.lines_suggested or 0,
                e.lines_accepted or 0,
                0,
            )
        elif kind == "chat":
            _add(
                member_rows,
                (e.day, e.member, kind, e.chat_type, e.ide),
                1,
                int(bool(e.accepted)),
                0,
                0,
                0,
            )
        elif kind == "code":
            lines = e.lines_accepted or 0
            _add(
                member_rows,
                (e.day, e.member, kind, e.language, ""),
                1,
                0,
                lines if e.source == "chat" else 0,
                lines,
                e.lines_changed or 0,
            )
        elif kind == "workspace_activity":
            _add(member_rows, (e.day, e.member, "workspace", e.workspace, ""), 1, 0, 0, 0, 0)
        elif kind == "app_resource":
            key = (e.day, e.app, "resource", e.resource)
            app_rows[key] = [app_rows.get(key, [0])[0] + (e.delta or 0), None, None, None]
        elif kind in ("app_data", "app_visit", "app_edit"):
            key = (e.day, e.app, "data" if kind == "app_data" else kind, "")
            current = app_rows.get(key)
            if current is None or (e.ts, e.id) > (current[1], current[2]):
                app_rows[key] = [0, e.ts, e.id, e.records]
    for table in ("member_day", "activity_day"):
        rows = {key: values for key, values in member_rows.items() if table_of(key[2]) == table}
        _insert(cursor, table, org_id, rows, MEMBER_DAY_SCHEMA)
    _insert(cursor, "app_day", org_id, app_rows, APP_DAY_SCHEMA)
    _insert(cursor, "member_last", org_id, last_rows, MEMBER_LAST_SCHEMA)


def add_table(cursor: duckdb.DuckDBPyConnection, source: str) -> None:
    """Roll up the (new) events of the registered table ``source`` with the SQL of ``rebuild``:
    the cheaper way for a bulk import's large batches."""
    _insert_member_days(cursor, member_day_from(source), {})
    cursor.execute(f"INSERT INTO app_day {_APP_DAY_FROM.format(src=source)}")
    cursor.execute(f"INSERT INTO member_last {_MEMBER_LAST_FROM.format(src=source)}")


def fill_member_last(cursor: duckdb.DuckDBPyConnection) -> None:
    """A file of a version without ``member_last`` (its events, none of its rows): fill it
    from the events of every organization."""
    cursor.execute(
        "INSERT INTO member_last SELECT * FROM"
        f" ({_MEMBER_LAST_FROM.format(src='events')}) ORDER BY day, member"
    )


def _latest(rows: dict[tuple[Any, ...], list[int]], key: tuple[Any, ...], ts: int) -> None:
    current = rows.get(key)
    if current is None:
        rows[key] = [ts]
    elif ts > current[0]:
        current[0] = ts


def _insert_member_days(
    cursor: duckdb.DuckDBPyConnection, select: str, params: dict[str, Any]
) -> None:
    """Insert the member-day rows of ``select`` into their tables, in (day, member) order."""
    cursor.execute(
        "CREATE OR REPLACE TEMP TABLE rolled_up AS SELECT * FROM"
        f" ({select}) AS r(org, day, member, kind, k1, k2, n, n_accepted, s1, s2, s3)",
        params,
    )
    activity = ", ".join(f"'{k}'" for k in ACTIVITY_KINDS)
    cursor.execute(
        f"INSERT INTO member_day SELECT * FROM rolled_up WHERE kind NOT IN ({activity})"
        " ORDER BY day, member"
    )
    cursor.execute(
        f"INSERT INTO activity_day SELECT * FROM rolled_up WHERE kind IN ({activity})"
        " ORDER BY day, member"
    )
    cursor.execute("DROP TABLE rolled_up")


def _add(rows: dict[tuple[Any, ...], list[int]], key: tuple[Any, ...], *values: int) -> None:
    current = rows.get(key)
    if current is None:
        rows[key] = list(values)
    else:
        for i, value in enumerate(values):
            current[i] += value


def _insert(
    cursor: duckdb.DuckDBPyConnection,
    table: str,
    org_id: str,
    rows: dict[tuple[Any, ...], list[Any]],
    schema: pa.Schema,
) -> None:
    if not rows:
        return
    records = [(org_id, *key, *values) for key, values in rows.items()]
    columns = list(zip(*records, strict=True))
    cursor.register(
        "rollup_delta", pa.table(dict(zip(schema.names, columns, strict=True)), schema=schema)
    )
    try:
        cursor.execute(f"INSERT INTO {table} SELECT * FROM rollup_delta")
    finally:
        cursor.unregister("rollup_delta")


MEMBER_DAY_SCHEMA = pa.schema(
    [
        ("org", pa.string()),
        ("day", pa.date32()),
        ("member", pa.string()),
        ("kind", pa.string()),
        ("k1", pa.string()),
        ("k2", pa.string()),
        ("n", pa.int64()),
        ("n_accepted", pa.int64()),
        ("s1", pa.int64()),
        ("s2", pa.int64()),
        ("s3", pa.int64()),
    ]
)
MEMBER_LAST_SCHEMA = pa.schema(
    [
        ("org", pa.string()),
        ("day", pa.date32()),
        ("member", pa.string()),
        ("kind", pa.string()),
        ("last_ts", pa.int64()),
    ]
)
APP_DAY_SCHEMA = pa.schema(
    [
        ("org", pa.string()),
        ("day", pa.date32()),
        ("app", pa.string()),
        ("kind", pa.string()),
        ("resource", pa.string()),
        ("total", pa.int64()),
        ("last_ts", pa.int64()),
        ("last_id", pa.string()),
        ("last_records", pa.int64()),
    ]
)


def rebuild(cursor: duckdb.DuckDBPyConnection, org_id: str) -> None:
    """Recompute an organization's rollups from its raw events (one compact row per key)."""
    params = {"org": org_id}
    for table in ("member_day", "activity_day", "app_day", "member_last"):
        cursor.execute(f"DELETE FROM {table} WHERE org = $org", params)
    source = "(SELECT * FROM events WHERE org = $org)"
    _insert_member_days(cursor, member_day_from(source), params)
    cursor.execute(
        f"INSERT INTO app_day SELECT * FROM ({_APP_DAY_FROM.format(src=source)}) ORDER BY day, app",
        params,
    )
    cursor.execute(
        "INSERT INTO member_last SELECT * FROM"
        f" ({_MEMBER_LAST_FROM.format(src=source)}) ORDER BY day, member",
        params,
    )


def compact(cursor: duckdb.DuckDBPyConnection, org_id: str, days: Iterable[date]) -> None:
    """Merge the delta rows of ``days`` into one row per key (answers do not change)."""
    params = {"org": org_id, "days": sorted(set(days))}
    if not params["days"]:
        return
    for table, select in (
        ("member_day", _MEMBER_DAY_COMPACT.format(table="member_day")),
        ("activity_day", _MEMBER_DAY_COMPACT.format(table="activity_day")),
        ("app_day", _APP_DAY_COMPACT),
        ("member_last", _MEMBER_LAST_COMPACT),
    ):
        cursor.execute(f"CREATE OR REPLACE TEMP TABLE compacted_rows AS {select}", params)
        cursor.execute(
            f"DELETE FROM {table} WHERE org = $org AND day IN (SELECT unnest($days::DATE[]))",
            params,
        )
        cursor.execute(f"INSERT INTO {table} SELECT * FROM compacted_rows")
        cursor.execute("DROP TABLE compacted_rows")


# -- reading: member spans over the rollups ---------------------------------------------------

WHOLE_DAYS_SCHEMA = pa.schema(
    [("member", pa.string()), ("first_day", pa.date32()), ("last_day", pa.date32())]
)
PARTIAL_SCHEMA = pa.schema(
    [("member", pa.string()), ("from_us", pa.int64()), ("to_us", pa.int64())]
)


def split_spans(
    spans: Sequence[MemberSpan],
    tz: str,
    first_day: date,
    last_day: date,
    *,
    groups: Sequence[str] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Split member spans into the org days they cover whole (answered by the rollups) and the
    partial pieces of days they cover in part (answered by the raw events of those pieces only).

    Spans are clipped to the window; a boundary inside a day is rare (a department move, a
    developer flag change), so nearly everything is read from the rollups. Spans covering the
    whole window (nearly all) are sorted out column-wise; only the others are split one by one.
    ``groups``: one label per span, kept as the ``grp`` column of both tables (every
    department's subtree spans split in one go: per-group calls cost more than the splitting).
    """
    window_from = to_micros(day_start(first_day, tz))
    window_to = to_micros(day_start(last_day + timedelta(days=1), tz))
    members = pa.array([s.member for s in spans], pa.string())
    labels = pa.array(groups if groups is not None else [None] * len(spans), pa.string())
    lo = pc.max_element_wise(pa.array([s.from_us for s in spans], pa.int64()), window_from)
    hi = pc.min_element_wise(pa.array([s.to_us for s in spans], pa.int64()), window_to)
    covers = pc.and_(pc.equal(lo, window_from), pc.equal(hi, window_to))
    others = pc.and_(pc.invert(covers), pc.less(lo, hi))
    whole: dict[str, list[Any]] = {"member": [], "first_day": [], "last_day": [], "grp": []}
    partial: dict[str, list[Any]] = {"member": [], "from_us": [], "to_us": [], "grp": []}
    for member, label, low, high in zip(
        members.filter(others).to_pylist(),
        labels.filter(others).to_pylist(),
        lo.filter(others).to_pylist(),
        hi.filter(others).to_pylist(),
        strict=True,
    ):
        days, pieces = _split(low, high, tz, (first_day, last_day, window_from, window_to))
        for first, last in days:
            _append(whole, member, first, last, label)
        for from_us, to_us in pieces:
            _append(partial, member, from_us, to_us, label)
    covering = pc.sum(covers).as_py() or 0
    head = {
        "member": members.filter(covers),
        "first_day": pa.array([first_day] * covering, pa.date32()),
        "last_day": pa.array([last_day] * covering, pa.date32()),
        "grp": labels.filter(covers),
    }
    whole_schema, partial_schema = WHOLE_DAYS_SCHEMA, PARTIAL_SCHEMA
    if groups is None:
        del head["grp"], whole["grp"], partial["grp"]
    else:
        whole_schema = whole_schema.append(pa.field("grp", pa.string()))
        partial_schema = partial_schema.append(pa.field("grp", pa.string()))
    return (
        pa.concat_tables(
            [pa.table(head, schema=whole_schema), pa.table(whole, schema=whole_schema)]
        ),
        pa.table(partial, schema=partial_schema),
    )


def _split(
    lo: int, hi: int, tz: str, window: tuple[date, date, int, int]
) -> tuple[list[tuple[date, date]], list[tuple[int, int]]]:
    """One clipped span ``lo .. hi``: its run of whole days (if any) and its partial pieces."""
    first_day, last_day, window_from, window_to = window
    first = first_day if lo == window_from else _first_whole_day(lo, tz)
    last = last_day if hi == window_to else local_day(from_micros(hi), tz) - timedelta(days=1)
    if first > last:
        return [], [(lo, hi)]
    first_from = to_micros(day_start(first, tz))
    last_to = to_micros(day_start(last + timedelta(days=1), tz))
    pieces = [(a, b) for a, b in ((lo, first_from), (last_to, hi)) if a < b]
    return [(first, last)], pieces


def _first_whole_day(micros: int, tz: str) -> date:
    day = local_day(from_micros(micros), tz)
    return day if to_micros(day_start(day, tz)) == micros else day + timedelta(days=1)


def _append(columns: dict[str, list[Any]], *row: Any) -> None:
    for column, value in zip(columns.values(), row, strict=True):
        column.append(value)


#: The event type each member-day kind but ``any`` rolls up.
_EVENT_TYPE_OF = {
    "completion": "completion",
    "chat": "chat",
    "code": "code",
    "workspace": "workspace_activity",
}


def span_rows_sql(kinds: Sequence[str], *, grouped: bool = False) -> str:
    """The member-day rows (columns of ``member_day`` but ``org``) of ``kinds`` for the
    registered tables ``whole_days`` and ``partial_spans``, on the days ``$first .. $last``
    that ``$days`` lists (``NULL``: all of them).

    ``grouped``: the span tables carry a ``grp`` column (:func:`split_group_spans`), and each
    row comes out once per group, ``grp`` first.
    """
    kind_list = ", ".join(f"'{k}'" for k in kinds)
    (table,) = {table_of(k) for k in kinds}  # the kinds asked for together live in one table
    group = "w.grp, " if grouped else ""
    types = "" if "any" in kinds else ", ".join(f"'{_EVENT_TYPE_OF[k]}'" for k in kinds)
    partial_source = (
        f"(SELECT e.*{', p.grp' if grouped else ''} FROM events AS e JOIN partial_spans AS p"
        " ON e.member = p.member AND e.ts >= p.from_us AND e.ts < p.to_us"
        " WHERE e.org = $org AND e.day BETWEEN $first AND $last"
        + (f" AND e.type IN ({types})" if types else "")
        + " AND ($days IS NULL OR list_contains($days, e.day)))"
    )
    partial_rows = member_day_from(partial_source, "grp" if grouped else "org", kinds)
    return f"""
    SELECT {group}r.day, r.member, r.kind, r.k1, r.k2, r.n, r.n_accepted, r.s1, r.s2, r.s3
      FROM {table} AS r
      JOIN whole_days AS w ON r.member = w.member AND r.day BETWEEN w.first_day AND w.last_day
     WHERE r.org = $org AND r.day BETWEEN $first AND $last AND r.kind IN ({kind_list})
       AND ($days IS NULL OR list_contains($days, r.day))
    UNION ALL
    SELECT {"grp, " if grouped else ""}day, member, kind, k1, k2, n, n_accepted, s1, s2, s3
      FROM ({partial_rows})
           AS p({"grp" if grouped else "org"}, day, member, kind, k1, k2, n, n_accepted, s1, s2, s3)
     WHERE kind IN ({kind_list})
    """


#: The member-day kinds department usage reads.
ASSISTANT_KINDS = ("completion", "chat", "code")


# -- second levels: which org days are fresh -----------------------------------------------


def mark_stale(
    cursor: duckdb.DuckDBPyConnection, table: str, org_id: str, days: Sequence[date]
) -> None:
    """Days that received events: the second-level rows of ``table``'s family are stale now."""
    if days:
        cursor.execute(
            f"INSERT OR REPLACE INTO {table} SELECT $org, unnest($days::DATE[]), false",
            {"org": org_id, "days": list(days)},
        )


def invalidate(
    cursor: duckdb.DuckDBPyConnection, table: str, org_id: str, since: date | None
) -> None:
    """The directory changed what ``table``'s family counts from ``since`` on (``None``:
    always): mark those days stale."""
    cursor.execute(
        f"UPDATE {table} SET fresh = false"
        " WHERE org = $org AND fresh AND ($since IS NULL OR day >= $since)",
        {"org": org_id, "since": since},
    )


def stale_days(
    cursor: duckdb.DuckDBPyConnection,
    table: str,
    org_id: str,
    first: date | None,
    last: date | None,
) -> list[date]:
    rows = cursor.execute(
        f"SELECT day FROM {table} WHERE org = $org AND NOT fresh"
        " AND ($first IS NULL OR day >= $first) AND ($last IS NULL OR day <= $last) ORDER BY day",
        {"org": org_id, "first": first, "last": last},
    ).fetchall()
    return [row[0] for row in rows]


def mark_fresh(
    cursor: duckdb.DuckDBPyConnection, table: str, org_id: str, days: Sequence[date]
) -> None:
    cursor.execute(
        f"UPDATE {table} SET fresh = true WHERE org = $org AND list_contains($days, day)",
        {"org": org_id, "days": list(days)},
    )


# -- per-member usage and last events ------------------------------------------------------

_ASSISTANT_TYPES = "('completion', 'chat', 'code')"

#: Partial pieces up to which :func:`partial_events_sql` reads each piece's events by its own
#: instants (the events table's zone maps on ``ts`` skip the rest); beyond, one join.
PIECES_APART = 64


def partial_events_sql(pieces: int | None, where: str) -> str:
    """The assistant events (``events`` columns) of the spans' partial pieces matching
    ``where`` (on ``e``): ``pieces`` of them named by parameters ``$pm{i}``, ``$pf{i}``,
    ``$pt{i}`` (member, from, to) each read apart; ``None``: the registered ``partial_spans``."""
    types = f"e.type IN {_ASSISTANT_TYPES} AND {where}"
    if pieces is None:
        return (
            "(SELECT e.* FROM events AS e JOIN partial_spans AS p"
            " ON e.member = p.member AND e.ts >= p.from_us AND e.ts < p.to_us"
            f" WHERE {types})"
        )
    return (
        "("
        + " UNION ALL ".join(
            f"SELECT e.* FROM events AS e WHERE e.member = $pm{i} AND e.ts >= $pf{i}"
            f" AND e.ts < $pt{i} AND {types}"
            for i in range(pieces)
        )
        + ")"
    )


_ASSISTANT_TYPES = "('completion', 'chat', 'code')"


def member_pairs_sql(pieces: int | None) -> str:
    """The (day, member) pairs of the spans (``whole_days``; the partial pieces as
    :func:`partial_events_sql` names them, ``0``: none) with a counted event, from
    ``member_last`` (the raw events for the partial pieces), each with its latest counted
    instant and whether the spans hold its day whole: first one row counting them (``day``
    NULL; the count in ``last_ts``), then the pairs ``$offset .. $offset + $limit`` in (day,
    member) order (byte order: code-point order)."""
    partial = ""
    if pieces != 0:
        events = partial_events_sql(pieces, "e.org = $org AND e.day BETWEEN $first AND $last")
        partial = f"UNION ALL SELECT day, member, ts, false FROM {events} AS e"
    return f"""
WITH pairs AS MATERIALIZED (
    SELECT day, member, max(last_ts) AS last_ts, bool_or(whole) AS whole FROM (
        SELECT l.day, l.member, l.last_ts, true AS whole
          FROM member_last AS l
          JOIN whole_days AS w
            ON l.member = w.member AND l.day BETWEEN w.first_day AND w.last_day
         WHERE l.org = $org AND l.day BETWEEN $first AND $last AND l.kind = 'assistant'
        {partial}
    ) GROUP BY day, member
)
SELECT NULL::DATE AS day, NULL::VARCHAR AS member, count(*) AS last_ts, NULL::BOOLEAN AS whole
  FROM pairs
UNION ALL
(SELECT day, member, last_ts, whole FROM pairs ORDER BY day, member LIMIT $limit OFFSET $offset)
"""


def page_rows_sql(pieces: int | None) -> str:
    """The member-day rows of the registered ``page_pairs`` (day, member, whole) summed per
    key, ordered by day, member, kind and keys (the breakdowns' order): from ``member_day`` for
    the pairs held whole, from the raw events of the partial pieces (as in
    :func:`member_pairs_sql`) for the others. ``$days`` lists the page's days (``$first ..
    $last`` their range)."""
    partial = ""
    if pieces != 0:
        events = partial_events_sql(
            pieces,
            "e.org = $org AND e.day BETWEEN $first AND $last AND list_contains($days, e.day)",
        )
        source = (
            f"(SELECT e.* FROM {events} AS e"
            " JOIN page_pairs AS q ON e.day = q.day AND e.member = q.member AND NOT q.whole)"
        )
        partial = f"""
    UNION ALL
    SELECT day, member, kind, k1, k2, n, n_accepted, s1, s2, s3 FROM (
        {member_day_from(source, "org", ASSISTANT_KINDS)}
    ) AS p(org, day, member, kind, k1, k2, n, n_accepted, s1, s2, s3)"""
    return f"""
SELECT day, member, kind, k1, k2, sum(n), sum(n_accepted), sum(s1), sum(s2), sum(s3) FROM (
    SELECT r.day, r.member, r.kind, r.k1, r.k2, r.n, r.n_accepted, r.s1, r.s2, r.s3
      FROM member_day AS r
      JOIN page_pairs AS q ON r.day = q.day AND r.member = q.member AND q.whole
     WHERE r.org = $org AND r.day BETWEEN $first AND $last AND list_contains($days, r.day){partial}
)
GROUP BY day, member, kind, k1, k2
ORDER BY day, member, kind, k1, k2
"""


#: Each member's latest event of any type.
LATEST_EVENT_SQL = """
SELECT member, max(last_ts) FROM member_last WHERE org = $org AND kind = 'any' GROUP BY member
"""

#: The assistant's member-day rows of the members of ``span_members`` on the days ``$first ..
#: $last``: what ``span_rows_sql(ASSISTANT_KINDS)`` reads when every span covers every day
#: (the whole organization, the dashboard's overview), without its range join.
WHOLE_MEMBERS_ROWS_SQL = """
SELECT day, member, kind, k1, k2, n, n_accepted, s1, s2, s3 FROM member_day
 WHERE org = $org AND day BETWEEN $first AND $last AND kind IN ('completion', 'chat', 'code')
   AND member IN (SELECT member FROM span_members)
   AND ($days IS NULL OR list_contains($days, day))
"""


def trailing_active_sql(rows: str) -> str:
    """Distinct active members over trailing windows, as day deltas, from the member-day
    ``rows``: each active (day, member) covers the days ``day .. day + n - 1``, cut where the
    member's next active day begins, so the pieces of one member never overlap; ``+1`` where a
    piece starts, ``-1`` where it ends. A running sum of the deltas by day is the count
    (``$lengths`` the window lengths)."""
    return f"""
WITH pairs AS MATERIALIZED (SELECT DISTINCT day, member FROM ({rows})),
runs AS MATERIALIZED (
    SELECT day, lead(day) OVER (PARTITION BY member ORDER BY day) AS next FROM pairs
),
lengths AS (SELECT unnest($lengths::INTEGER[]) AS n)
SELECT n, day, count(*) FROM runs, lengths GROUP BY n, day
UNION ALL
SELECT n, CASE WHEN next IS NOT NULL AND next < day + n THEN next ELSE day + n END AS stop,
       -count(*)
  FROM runs, lengths GROUP BY n, stop
"""


def day_totals_sql(rows: str) -> str:
    """The assistant's totals per day (no breakdowns) of the member-day ``rows``: distinct
    members, then the sums (see the kinds' meanings above)."""
    return f"""
SELECT day, count(DISTINCT member),
       coalesce(sum(n) FILTER (WHERE kind = 'chat'), 0),
       coalesce(sum(n) FILTER (WHERE kind = 'completion'), 0),
       coalesce(sum(n_accepted) FILTER (WHERE kind = 'completion'), 0),
       coalesce(sum(s1) FILTER (WHERE kind = 'completion'), 0),
       coalesce(sum(s2) FILTER (WHERE kind = 'completion'), 0)
  FROM ({rows})
 GROUP BY day ORDER BY day
"""
