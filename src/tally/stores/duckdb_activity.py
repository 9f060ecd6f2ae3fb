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

A distinct count cannot be summed across days, hence the periods. Each row also holds
``total``, the sum of the period's daily counts: a mean of the daily counts over a window's
month (the workspaces' ``daily_active_users``) then needs no day rows. ``activity_days`` lists the
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
    start DATE NOT NULL, n BIGINT NOT NULL, total BIGINT NOT NULL
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


#: Distinct members per (grp, day) and per (grp, month) of the rows of ``active``, and the sum
#: of the daily counts (``active`` is distinct: its rows per group and period).
COUNTS_SQL = """
SELECT grp, day, year(day), month(day), count(DISTINCT member), grouping(day), count(*)
  FROM active GROUP BY GROUPING SETS ((grp, day), (grp, year(day), month(day)))
"""


#: Per (grp, day of the month): members active from the 1st through that day, and from that
#: day through the month's end, from each member's first and last active day of the month.
_TO_AND_FROM_DATE_CTES = """
bounds AS (SELECT grp, member, min(day) AS first, max(day) AS last FROM active GROUP BY ALL),
month_days AS (SELECT unnest(generate_series($first, $last, INTERVAL 1 DAY))::DATE AS day),
distinct_counts AS (
    SELECT b.grp, d.day, count(*) FILTER (WHERE b.first <= d.day) AS to_date,
           count(*) FILTER (WHERE b.last >= d.day) AS from_date
      FROM bounds AS b CROSS JOIN month_days AS d GROUP BY b.grp, d.day
),
daily AS (SELECT grp, day, count(*) AS n FROM active GROUP BY grp, day),
to_and_from AS (
    SELECT c.grp, c.day, c.to_date, c.from_date,
           sum(x.n) FILTER (WHERE x.day <= c.day) AS to_total,
           sum(x.n) FILTER (WHERE x.day >= c.day) AS from_total
      FROM distinct_counts AS c JOIN daily AS x ON x.grp = c.grp
     GROUP BY c.grp, c.day, c.to_date, c.from_date
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
                   CASE WHEN c.g = 1 THEN make_date(c.y, c.m, 1) ELSE c.day END, c.n, c.total
              FROM counts AS c(grp, day, y, m, n, g, total)
             WHERE c.g = 1 OR list_contains($stale, c.day)
            UNION ALL
            SELECT $org, '{stat}', grp, 'to_date', day, to_date, to_total FROM to_and_from
             WHERE to_date > 0
            UNION ALL
            SELECT $org, '{stat}', grp, 'from_date', day, from_date, from_total FROM to_and_from
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
    """The precomputed rows of one stat in a window's months: (``daily`` only) its day rows
    ``$first .. $last``; the month-wide rows the window uses (whole months ``$whole_first ..
    $whole_last``, the from-date row at ``$from_first``, the to-date row at ``$to_last``; a
    NULL parameter asks for none); then (``period`` NULL) one row per stale day of the
    window's months: one statement, so one snapshot. Columns: grp, start, period, n, total.
    (One simple select per period: DuckDB prunes each by its own filter, which it did not
    for one select of ORed periods.)"""
    periods = [
        "period = 'month' AND start BETWEEN $whole_first AND $whole_last",
        "period = 'from_date' AND start = $from_first",
        "period = 'to_date' AND start = $to_last",
    ]
    if daily:
        periods.insert(0, "period = 'day' AND start BETWEEN $first AND $last")
    return "\nUNION ALL\n".join(
        [
            *(
                "SELECT grp, start, period, n, total FROM activity_count"
                f" WHERE org = $org AND stat = $stat AND {period}"
                for period in periods
            ),
            "SELECT NULL, day, NULL, 0, 0 FROM activity_days"
            " WHERE org = $org AND NOT fresh AND day BETWEEN $month_first AND $month_last",
        ]
    )


#: ``_read_sql`` by ``daily``.
READ_SQL = {daily: _read_sql(daily=daily) for daily in (True, False)}
