"""The per-department second level of the DuckDB store: department usage per subtree and day.

``department_day`` holds, per org day and department, the day's usage of the department's whole
subtree (distinct members counted once per subtree) as one ready record: the JSON array of an
``AssistantDay`` (its breakdowns sorted), built by DuckDB when the day is refreshed, so a reader
fetches one value per day and msgspec decodes it straight into records (fetching the ~100
breakdown rows of each day, sorting and assembling them cost more than the rest of an answer).

``department_days`` lists the org days with assistant events and whether their
``department_day`` rows are *fresh*; ``department_stale`` the departments whose rows are stale
on every day (a department moved to another parent changes the subtrees above it, old and new,
and nothing else: those are recomputed, not every department's every day). Those rows depend
on the directory (who is in which department when), so they are not updated in the append's
transaction: an append, or a directory change that moves members, marks its days (or
departments) stale, a refresher recomputes them (:func:`refresh_departments`), and a reader
answers stale days from ``member_day`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import duckdb
import msgspec
import pyarrow as pa

from tally.stores.base import AssistantDay, MemberSpan
from tally.stores.duckdb_rollups import (
    ASSISTANT_KINDS,
    mark_fresh,
    span_rows_sql,
    split_spans,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS department_day (
    org VARCHAR NOT NULL, department VARCHAR NOT NULL, day DATE NOT NULL, usage VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS department_days (
    org VARCHAR NOT NULL, day DATE NOT NULL, fresh BOOLEAN NOT NULL, PRIMARY KEY (org, day)
);
CREATE TABLE IF NOT EXISTS department_stale (
    org VARCHAR NOT NULL, department VARCHAR NOT NULL, generation BIGINT NOT NULL,
    PRIMARY KEY (org, department)
);
"""


def split_group_spans(
    spans: Mapping[str, Sequence[MemberSpan]], tz: str, first_day: date, last_day: date
) -> tuple[pa.Table, pa.Table]:
    """:func:`split_spans` of several groups at once, each row tagged with its group (``grp``)."""
    flat = [span for group_spans in spans.values() for span in group_spans]
    labels = [group for group, group_spans in spans.items() for _ in group_spans]
    return split_spans(flat, tz, first_day, last_day, groups=labels)


def usage_parts_sql(by: str = "") -> str:
    """Department usage rows of the member-day rows ``hits``, per day (and per ``by``, first).

    Columns: part, day, key1, key2, then five numbers whose meaning depends on the part: 0 the
    day's distinct members (any, chat, completion), 1 completion, 2 chatting, 3 coding.
    """
    lead = f"{by}, " if by else ""
    return f"""
    SELECT {lead}0 AS part, day, NULL::VARCHAR AS key1, NULL::VARCHAR AS key2,
           count(DISTINCT member) AS a,
           count(DISTINCT member) FILTER (WHERE kind = 'chat') AS b,
           count(DISTINCT member) FILTER (WHERE kind = 'completion') AS c,
           0 AS d, 0 AS n
      FROM hits GROUP BY {lead}day
    UNION ALL
    SELECT {lead}1, day, k1, k2, sum(n), sum(n_accepted), sum(s1), sum(s2), count(DISTINCT member)
      FROM hits WHERE kind = 'completion' GROUP BY {lead}day, k1, k2
    UNION ALL
    SELECT {lead}2, day, k1, k2, sum(n), sum(n_accepted), 0, 0, count(DISTINCT member)
      FROM hits WHERE kind = 'chat' GROUP BY {lead}day, k1, k2
    UNION ALL
    SELECT {lead}3, day, k1, NULL, sum(s2), sum(s3), sum(s1), 0, count(DISTINCT member)
      FROM hits WHERE kind = 'code' GROUP BY {lead}day, k1
    """


#: Department usage of the registered span tables (see :func:`span_rows_sql`), per day.
USAGE_FROM_SPANS_SQL = f"""
WITH hits AS MATERIALIZED ({span_rows_sql(ASSISTANT_KINDS)})
{usage_parts_sql()}
ORDER BY day, part, key1, key2
"""

#: The usage of one department's days from ``department_day``, then (``usage`` NULL) the stale
#: days of the window, which must be answered from the spans (a stale day's stored usage, if
#: any, is outdated: the reader drops it); in no order. (The reader sorts and drops in Python:
#: an anti-join and an ORDER BY made the statement take twice as long.)
USAGE_FROM_DEPARTMENT_DAY_SQL = """
SELECT day, usage FROM department_day
 WHERE org = $org AND department = $department AND day BETWEEN $first AND $last
UNION ALL
SELECT day, NULL FROM department_days
 WHERE org = $org AND day BETWEEN $first AND $last
   AND (NOT fresh OR EXISTS (
        SELECT 1 FROM department_stale WHERE org = $org AND department = $department))
"""

#: One ``AssistantDay`` per (grp, day) of the usage rows ``parts`` (see
#: :func:`usage_parts_sql`), as a JSON array in the records' field order.
_DAY_RECORDS_SQL = """
SELECT grp, day, json_array(
    day,
    any_value(a) FILTER (WHERE part = 0),
    any_value(b) FILTER (WHERE part = 0),
    any_value(c) FILTER (WHERE part = 0),
    coalesce(to_json(list(json_array(key1, key2, a, b, c, d, n) ORDER BY key1, key2)
                     FILTER (WHERE part = 1)), '[]'),
    coalesce(to_json(list(json_array(key1, key2, a, b, n) ORDER BY key1, key2)
                     FILTER (WHERE part = 2)), '[]'),
    coalesce(to_json(list(json_array(key1, a, b, c, n) ORDER BY key1)
                     FILTER (WHERE part = 3)), '[]')
)::VARCHAR
  FROM parts GROUP BY grp, day
"""

_DAY_DECODER = msgspec.json.Decoder(AssistantDay)


def decode_days(records: Sequence[str]) -> list[AssistantDay]:
    """The ``usage`` values of ``department_day`` as records."""
    return [_DAY_DECODER.decode(record) for record in records]


def refresh_departments(
    cursor: duckdb.DuckDBPyConnection,
    org_id: str,
    days: list[date],
    only: list[str] | None = None,
) -> None:
    """Recompute ``department_day`` on ``days`` from the registered grouped span tables (one
    group per department: its subtree's spans); ``only``: just those departments' rows (the
    caller marks the days fresh when it recomputed every department)."""
    params = {"org": org_id, "first": days[0], "last": days[-1], "days": days, "only": only}
    cursor.execute(
        "DELETE FROM department_day WHERE org = $org AND day BETWEEN $first AND $last"
        " AND list_contains($days, day) AND ($only IS NULL OR list_contains($only, department))",
        params,
    )
    cursor.execute(
        f"""
        INSERT INTO department_day (org, department, day, usage)
        WITH hits AS MATERIALIZED ({span_rows_sql(ASSISTANT_KINDS, grouped=True)}),
             parts AS ({usage_parts_sql("grp")})
        SELECT $org, * FROM ({_DAY_RECORDS_SQL}) ORDER BY 1, 2
        """,
        {k: v for k, v in params.items() if k != "only"},
    )
    if only is None:
        mark_fresh(cursor, "department_days", org_id, days)


def reset_departments(cursor: duckdb.DuckDBPyConnection, org_id: str | None) -> None:
    """Forget the per-department rows (of ``org_id``; ``None``: all): every day with assistant
    events is stale until refreshed."""
    params = {"org": org_id}
    where = "WHERE ($org IS NULL OR org = $org)"
    cursor.execute(f"DELETE FROM department_day {where}", params)
    cursor.execute(f"DELETE FROM department_days {where}", params)
    cursor.execute(f"DELETE FROM department_stale {where}", params)
    cursor.execute(
        f"INSERT INTO department_days SELECT DISTINCT org, day, false FROM member_day {where}",
        params,
    )
