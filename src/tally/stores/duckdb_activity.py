"""Second-level rollups of the environment statistics: distinct active members per org day and
per calendar month, precomputed for the three questions the statistics ask.

``activity_count`` holds, per org and *stat*, rows of four periods: ``day`` (that day),
``month`` (the whole calendar month starting at ``start``), ``to_date`` (from the 1st of the
month through ``start``) and ``from_date`` (from ``start`` through the month's last day). The
last two answer a window's first and last months when the window cuts them: every window longer
than a month is then answered from precomputed rows alone. The stats:

- ``users``: members with any event (``grp`` is ``""``);
- ``workspace``: members with a ``workspace_activity`` event in workspace ``grp``;
- ``developers``: members with a ``workspace_activity`` event while a developer (``grp`` ``""``).

A distinct count cannot be summed across days, hence the periods. ``activity_days`` lists the
org days with events and whether their rows are fresh: every append marks its days stale, and
so does a directory change of who is a developer when. A month's ``month``, ``to_date`` and
``from_date`` rows are current exactly when every day of the month is fresh, because a refresh
of any day recomputes them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import duckdb

from tally.stores import duckdb_rollups as rollups
from tally.timeutil import month_last

SCHEMA = """
CREATE TABLE IF NOT EXISTS activity_count (
    org VARCHAR NOT NULL, stat VARCHAR NOT NULL, grp VARCHAR NOT NULL, period VARCHAR NOT NULL,
    start DATE NOT NULL, n BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS activity_days (
    org VARCHAR NOT NULL, day DATE NOT NULL, fresh BOOLEAN NOT NULL, PRIMARY KEY (org, day)
);
"""

#: (stat, member-day kind, counted per workspace)
STATS = (
    ("users", "any", False),
    ("workspace", "workspace", True),
    ("developers", "workspace", False),
)


def active_rows_sql(kind: str, *, per_workspace: bool, during: bool) -> str:
    """The distinct (grp, day, member) of the member-day rows of ``kind`` on the days
    ``$first .. $last`` that ``$days`` lists (``NULL``: all); ``during``: only inside the
    registered span tables (see ``duckdb_rollups.span_rows_sql``)."""
    group = "k1" if per_workspace else "''"
    if during:
        source = f"SELECT day, member, k1 FROM ({rollups.span_rows_sql((kind,))})"
    else:
        source = (
            "SELECT day, member, k1 FROM activity_day WHERE org = $org"
            f" AND day BETWEEN $first AND $last AND kind = '{kind}'"
            " AND ($days IS NULL OR list_contains($days, day))"
        )
    return f"SELECT DISTINCT {group} AS grp, day, member FROM ({source})"


#: Distinct members per (grp, day) and per (grp, month) of the rows of ``active``.
COUNTS_SQL = """
SELECT grp, day, year(day), month(day), count(DISTINCT member), grouping(day)
  FROM active GROUP BY GROUPING SETS ((grp, day), (grp, year(day), month(day)))
"""


#: Per (grp, day of the month): members active from the 1st through that day, and from that
#: day through the month's end, from each member's first and last active day of the month.
_TO_AND_FROM_DATE_CTES = """
bounds AS (SELECT grp, member, min(day) AS first, max(day) AS last FROM active GROUP BY ALL),
month_days AS (SELECT unnest(generate_series($first, $last, INTERVAL 1 DAY))::DATE AS day),
to_and_from AS (
    SELECT b.grp, d.day, count(*) FILTER (WHERE b.first <= d.day) AS to_date,
           count(*) FILTER (WHERE b.last >= d.day) AS from_date
      FROM bounds AS b CROSS JOIN month_days AS d GROUP BY b.grp, d.day
)
"""


def refresh_month(
    cursor: duckdb.DuckDBPyConnection, org_id: str, month_start: date, stale: Sequence[date]
) -> None:
    """Recompute the ``day`` rows of the ``stale`` days of the month starting ``month_start``,
    and all its month-wide rows; the registered ``whole_days`` / ``partial_spans`` hold the
    developer spans of the whole month."""
    month_end = month_last(month_start)
    params = {"org": org_id, "first": month_start, "last": month_end, "stale": list(stale)}
    cursor.execute(
        "DELETE FROM activity_count WHERE org = $org AND start BETWEEN $first AND $last"
        " AND (period <> 'day' OR list_contains($stale, start))",
        params,
    )
    for stat, kind, per_workspace in STATS:
        active = active_rows_sql(kind, per_workspace=per_workspace, during=stat == "developers")
        cursor.execute(
            f"""
            INSERT INTO activity_count
            WITH active AS MATERIALIZED ({active}),
                 counts AS ({COUNTS_SQL}),
                 {_TO_AND_FROM_DATE_CTES}
            SELECT $org, '{stat}', c.grp, CASE WHEN c.g = 1 THEN 'month' ELSE 'day' END,
                   CASE WHEN c.g = 1 THEN make_date(c.y, c.m, 1) ELSE c.day END, c.n
              FROM counts AS c(grp, day, y, m, n, g)
             WHERE c.g = 1 OR list_contains($stale, c.day)
            UNION ALL
            SELECT $org, '{stat}', grp, 'to_date', day, to_date FROM to_and_from WHERE to_date > 0
            UNION ALL
            SELECT $org, '{stat}', grp, 'from_date', day, from_date FROM to_and_from
             WHERE from_date > 0
            """,
            {**params, "days": None},
        )
    rollups.mark_fresh(cursor, "activity_days", org_id, stale)


def reset(cursor: duckdb.DuckDBPyConnection, org_id: str | None) -> None:
    """Forget the activity counts (of ``org_id``; ``None``: all): every day with events is stale
    until refreshed."""
    params = {"org": org_id}
    where = "WHERE ($org IS NULL OR org = $org)"
    cursor.execute(f"DELETE FROM activity_count {where}", params)
    cursor.execute(f"DELETE FROM activity_days {where}", params)
    cursor.execute(
        "INSERT INTO activity_days SELECT DISTINCT org, day, false FROM activity_day"
        f" {where} AND kind = 'any'",
        params,
    )


def _read_sql(*, daily: bool) -> str:
    """The precomputed rows of one stat in a window's months: its days ``$first .. $last``
    (``daily``: one row each; else summed per month, period ``day_sum``), the month-wide
    periods a window from ``$first`` to ``$last`` can use, then (``period`` NULL) one row per
    stale day of those months: one statement, so one snapshot."""
    in_window = "FROM counts WHERE period = 'day' AND start BETWEEN $first AND $last"
    days = (
        f"SELECT grp, start, period, n {in_window}"
        if daily
        else "SELECT grp, date_trunc('month', start)::DATE AS month, 'day_sum', sum(n)::BIGINT"
        f" {in_window} GROUP BY grp, month"
    )
    return f"""
WITH counts AS (
    SELECT grp, start, period, n FROM activity_count
     WHERE org = $org AND stat = $stat AND start BETWEEN $month_first AND $last
)
{days}
UNION ALL
SELECT grp, start, period, n FROM counts
 WHERE period = 'month' OR (period = 'from_date' AND start = $first)
    OR (period = 'to_date' AND start = $last)
UNION ALL
SELECT NULL, day, NULL, 0 FROM activity_days
 WHERE org = $org AND NOT fresh AND day BETWEEN $month_first AND $month_last
"""


#: ``_read_sql`` by ``daily``.
READ_SQL = {daily: _read_sql(daily=daily) for daily in (True, False)}
