"""The per-department second level of the DuckDB store: department usage per subtree and day.

``department_day`` holds, per org day and department, the answer rows of the department's whole
subtree (distinct members counted once per subtree), and ``department_days`` lists the org days
with assistant events and whether their ``department_day`` rows are *fresh*. Those rows depend
on the directory (who is in which department when), so they are not updated in the append's
transaction: an append, or a directory change that moves members, marks its days stale, a
refresher recomputes stale days (:func:`refresh_departments`), and a reader answers stale days
from ``member_day`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import duckdb
import pyarrow as pa

from tally.stores.base import MemberSpan
from tally.stores.duckdb_rollups import (
    ASSISTANT_KINDS,
    mark_fresh,
    span_rows_sql,
    split_spans,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS department_day (
    org VARCHAR NOT NULL, department VARCHAR NOT NULL, day DATE NOT NULL, part TINYINT NOT NULL,
    key1 VARCHAR, key2 VARCHAR,
    a BIGINT NOT NULL, b BIGINT NOT NULL, c BIGINT NOT NULL, d BIGINT NOT NULL, n BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS department_days (
    org VARCHAR NOT NULL, day DATE NOT NULL, fresh BOOLEAN NOT NULL, PRIMARY KEY (org, day)
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

#: The same rows from ``department_day`` for one department's fresh days, then one row of part
#: -1 per stale day of the window (those must be answered from the spans).
USAGE_FROM_DEPARTMENT_DAY_SQL = """
WITH stale AS (
    SELECT day FROM department_days
     WHERE org = $org AND NOT fresh AND day BETWEEN $first AND $last
)
SELECT part, day, key1, key2, a, b, c, d, n FROM department_day
 WHERE org = $org AND department = $department AND day BETWEEN $first AND $last
   AND day NOT IN (SELECT day FROM stale)
UNION ALL
SELECT -1, day, NULL, NULL, 0, 0, 0, 0, 0 FROM stale
ORDER BY part = -1, day, part, key1, key2
"""


def refresh_departments(cursor: duckdb.DuckDBPyConnection, org_id: str, days: list[date]) -> None:
    """Recompute ``department_day`` on ``days`` from the registered grouped span tables (one
    group per department: its subtree's spans) and mark those days fresh."""
    params = {"org": org_id, "first": days[0], "last": days[-1], "days": days}
    cursor.execute(
        "DELETE FROM department_day WHERE org = $org AND day BETWEEN $first AND $last"
        " AND list_contains($days, day)",
        params,
    )
    cursor.execute(
        f"""
        INSERT INTO department_day (org, department, part, day, key1, key2, a, b, c, d, n)
        WITH hits AS MATERIALIZED ({span_rows_sql(ASSISTANT_KINDS, grouped=True)})
        SELECT $org, * FROM ({usage_parts_sql("grp")}) ORDER BY grp, day, part
        """,
        params,
    )
    mark_fresh(cursor, "department_days", org_id, days)


def reset_departments(cursor: duckdb.DuckDBPyConnection, org_id: str | None) -> None:
    """Forget the per-department rows (of ``org_id``; ``None``: all): every day with assistant
    events is stale until refreshed."""
    params = {"org": org_id}
    where = "WHERE ($org IS NULL OR org = $org)"
    cursor.execute(f"DELETE FROM department_day {where}", params)
    cursor.execute(f"DELETE FROM department_days {where}", params)
    cursor.execute(
        f"INSERT INTO department_days SELECT DISTINCT org, day, false FROM member_day {where}",
        params,
    )
