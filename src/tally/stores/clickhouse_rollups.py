"""Reading the ClickHouse store's first-level rollups exactly: member spans split by the org
days' event bounds, and the SQL that nets the rollups against the race losers.

A span covers an org day *whole* when every event of that day lies inside it, i.e. when it holds
the day's first and last instant (``day_bounds``); it misses the day when it ends before the
first or starts after the last. Whole days are answered from the member-day rollups; the rare
other days (a department move, a developer flag change inside a day with events on both sides)
from that member's raw events of that day only. No timezone is needed: the stored events say
where each org day begins and ends, as far as any answer can tell.

Every read nets three sources per (day, member, key): the rollup rows (every stored copy), minus
the race losers (each listed copy once), plus the partial days' live raw events; a member counts
in a group when its net event count there is positive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import pyarrow as pa

from tally.stores.base import MemberSpan
from tally.stores.clickhouse_schema import ASSISTANT_KEYS, ASSISTANT_TYPES, ASSISTANT_VALUES

WHOLE_STRUCTURE = (("member", "String"), ("first_day", "Date"), ("last_day", "Date"))
PARTIAL_STRUCTURE = (
    ("member", "String"),
    ("day", "Date"),
    ("from_us", "Int64"),
    ("to_us", "Int64"),
)
WHOLE_SCHEMA = pa.schema(
    [("member", pa.string()), ("first_day", pa.date32()), ("last_day", pa.date32())]
)
PARTIAL_SCHEMA = pa.schema(
    [
        ("member", pa.string()),
        ("day", pa.date32()),
        ("from_us", pa.int64()),
        ("to_us", pa.int64()),
    ]
)


def split_spans(
    spans: Sequence[MemberSpan],
    bounds: Mapping[date, tuple[int, int]],
    first_day: date,
    last_day: date,
) -> tuple[pa.Table, pa.Table]:
    """``whole`` (member, first_day, last_day): runs of the window's days whose events a span
    holds whole; ``partial`` (member, day, from_us, to_us): a span cutting a day's events.

    ``bounds``: the first and last instant of each org day of the window with events (a day
    without events needs no row)."""
    days = sorted(d for d in bounds if first_day <= d <= last_day)
    whole: dict[str, list[object]] = {"member": [], "first_day": [], "last_day": []}
    partial: dict[str, list[object]] = {"member": [], "day": [], "from_us": [], "to_us": []}
    if days:
        low = min(bounds[d][0] for d in days)
        high = max(bounds[d][1] for d in days)
        covering: list[object] = [s.member for s in spans if s.from_us <= low and high < s.to_us]
        whole["member"] = list(covering)
        whole["first_day"] = [first_day] * len(covering)
        whole["last_day"] = [last_day] * len(covering)
        for span in spans:
            if (span.from_us <= low and high < span.to_us) or not (
                span.from_us <= high and low < span.to_us
            ):
                continue
            run: list[date] = []
            for day in days:
                lo, hi = bounds[day]
                if span.from_us <= lo and hi < span.to_us:
                    run.append(day)
                    continue
                if span.from_us <= hi and lo < span.to_us:
                    _append(partial, span.member, day, span.from_us, span.to_us)
                if run:
                    _append(whole, span.member, run[0], run[-1])
                    run = []
            if run:
                _append(whole, span.member, run[0], run[-1])
    return pa.table(whole, schema=WHOLE_SCHEMA), pa.table(partial, schema=PARTIAL_SCHEMA)


def _append(columns: dict[str, list[object]], *row: object) -> None:
    for column, value in zip(columns.values(), row, strict=True):
        column.append(value)


# -- SQL -----------------------------------------------------------------------------------------


def losers_sql(losers: str, where: str) -> str:
    """Each race loser of ``losers`` matching ``where`` once (a loser may be listed twice)."""
    return f"(SELECT * FROM {losers} WHERE {where} LIMIT 1 BY id, ver) AS lost"


def assistant_sql(
    names: Mapping[str, str], join: str, *, with_partial: bool, with_whole: bool
) -> str:
    """Department usage per day from the rollups: one row per day with its distinct members
    (any, chat, completion) and an array of its (kind, k1, k2, n, n_accepted, s1, s2, s3,
    members) groups. ``join``: ``GLOBAL `` on a cluster. Parameters: org, first, last, and
    (``with_partial``) pdays, pmembers; external tables ``whole`` and ``partial``."""
    value_names = [name for name, _ in ASSISTANT_VALUES]
    union = _assistant_parts(names, join, with_partial=with_partial, with_whole=with_whole)
    net = ", ".join(f"sum({name}) AS t_{name}" for name in value_names)
    totals = ", ".join(f"sum(t_{name}) AS g_{name}" for name in value_names)
    group = ", ".join(f"g_{name}" for name in value_names)
    return f"""
    SELECT day, uniqExactMerge(members) AS active, uniqExactMergeIf(members, kind = 'chat'),
           uniqExactMergeIf(members, kind = 'completion'),
           groupArray((kind, k1, k2, {group}, developers))
    FROM (
        SELECT day, kind, k1, k2, {totals}, toInt64(count()) AS developers,
               uniqExactState(member) AS members
        FROM (
            SELECT day, member, kind, k1, k2, {net}
            FROM ({union})
            GROUP BY day, member, kind, k1, k2 HAVING t_n > 0
        )
        GROUP BY day, kind, k1, k2
    )
    GROUP BY day
    """


def _assistant_parts(
    names: Mapping[str, str], join: str, *, with_partial: bool, with_whole: bool
) -> str:
    """The assistant rows (day, member, kind, k1, k2, values) of the spans, to be netted per
    key: the rollup rows of the ``whole`` days, minus their race losers, plus the live raw
    events of the ``partial`` days inside their spans."""
    window = "org = %(org)s AND day >= %(first)s AND day <= %(last)s"
    value_names = [name for name, _ in ASSISTANT_VALUES]
    keys = ", ".join(ASSISTANT_KEYS)
    parts = []
    if with_whole:
        parts.append(
            f"SELECT day, member, kind, k1, k2, {', '.join(value_names)}"
            f" FROM {names['assistant_day']} {join}ALL INNER JOIN whole USING member"
            f" WHERE {window} AND day >= first_day AND day <= last_day"
        )
        negated = ", ".join(f"-{expr} AS {name}" for name, expr in ASSISTANT_VALUES)
        losers = losers_sql(names["event_losers"], f"{window} AND type IN {ASSISTANT_TYPES}")
        parts.append(
            f"SELECT day, member, {keys}, {negated}"
            f" FROM {losers} {join}ALL INNER JOIN whole USING member"
            " WHERE day >= first_day AND day <= last_day"
        )
    if with_partial:
        values = ", ".join(f"{expr} AS {name}" for name, expr in ASSISTANT_VALUES)
        parts.append(
            f"SELECT day, member, {keys}, {values}"
            f" FROM {names['events']} {join}ALL INNER JOIN partial USING (member, day)"
            f" WHERE {window} AND day IN %(pdays)s AND member IN %(pmembers)s"
            f" AND type IN {ASSISTANT_TYPES} AND ts >= from_us AND ts < to_us"
            f" AND {live(names)}"
        )
    return " UNION ALL ".join(parts)


def member_usage_sql(
    names: Mapping[str, str],
    join: str,
    *,
    with_partial: bool,
    with_whole: bool,
    page: tuple[int, int] | None,
) -> str:
    """Per-member usage from the rollups, the parameters and tables of :func:`assistant_sql`.

    ``page`` (offset, limit): the (day, member) pairs with a counted event, that slice of them
    in (day, member) order (byte order: code-point order), each with the array of its (kind,
    k1, k2, n, n_accepted, s1, s2, s3) groups; ``None``: one row, how many such pairs there
    are. A group counts where its net event count is positive (a pair has one such group at
    least, since the losers are copies the rollups hold)."""
    union = _assistant_parts(names, join, with_partial=with_partial, with_whole=with_whole)
    if page is None:
        return (
            "SELECT toInt64(count()) FROM (SELECT day, member"
            f" FROM ({union}) GROUP BY day, member HAVING sum(n) > 0)"
        )
    value_names = [name for name, _ in ASSISTANT_VALUES]
    net = ", ".join(f"sum({name}) AS t_{name}" for name in value_names)
    group = ", ".join(f"t_{name}" for name in value_names)
    offset, limit = page
    return f"""
    SELECT day, member, groupArray((kind, k1, k2, {group}))
    FROM (
        SELECT day, member, kind, k1, k2, {net}
        FROM ({union})
        GROUP BY day, member, kind, k1, k2 HAVING t_n > 0
    )
    GROUP BY day, member
    ORDER BY day, member
    LIMIT {int(offset)}, {int(limit)}
    """


def member_last_sql(names: Mapping[str, str], *, pairs: bool) -> str:
    """The latest instants of ``member_last`` (part 0) and of the race losers (part 1): per
    (day, member) of the assistant events of the days ``%(days)s`` and members
    ``%(members)s`` (``pairs``), or per member of the events of any type (day 0). Where a
    loser holds the latest instant of its group, that group must be read from the raw events
    (the rollup saw the loser); elsewhere the rollup's latest instant is a live event's."""
    if pairs:
        where = " AND day IN %(days)s AND member IN %(members)s"
        kind, types, keys = "assistant", f" AND type IN {ASSISTANT_TYPES}", "day, member"
    else:
        where, kind, types, keys = "", "any", "", "toDate(0) AS day, member"
    group = "day, member" if pairs else "member"
    return f"""
    SELECT toUInt8(0) AS part, {keys}, maxMerge(hi) AS last
    FROM {names["member_last"]}
    WHERE org = %(org)s AND kind = '{kind}'{where} GROUP BY {group}
    UNION ALL
    SELECT toUInt8(1) AS part, {keys}, max(ts) AS last
    FROM {names["event_losers"]}
    WHERE org = %(org)s{where}{types} GROUP BY {group}
    """


def live(names: Mapping[str, str]) -> str:
    """The condition that leaves out the copies that lost a race (shard-local on a cluster:
    a copy and its losers entry share a shard)."""
    return f"(id, ver) NOT IN (SELECT id, ver FROM {names['local_losers']} WHERE org = %(org)s)"


def active_sql(
    names: Mapping[str, str],
    join: str,
    *,
    kind: str,
    per_workspace: bool,
    during: bool,
    with_whole: bool,
    with_partial: bool,
) -> str:
    """Distinct members per (grp, day) and per (grp, month) from the rollups of ``kind``
    (``any``: every event; ``workspace``: ``workspace_activity``), within the spans' ``whole``
    (if ``with_whole``) and ``partial`` (if ``with_partial``) tables when ``during``. Rows:
    grp, month start, distinct members of the month, array of (day, distinct members)."""
    window = "org = %(org)s AND day >= %(first)s AND day <= %(last)s"
    grp = "workspace" if per_workspace else "materialize('')"
    raw_grp = "assumeNotNull(workspace)" if per_workspace else "materialize('')"
    types = " AND type = 'workspace_activity' AND workspace IS NOT NULL"
    only = types if kind == "workspace" else ""
    join_whole = f" {join}ALL INNER JOIN whole USING member" if during else ""
    in_whole = " AND day >= first_day AND day <= last_day" if during else ""
    parts = []
    if with_whole or not during:
        parts.append(
            f"SELECT {grp} AS grp, day, member, n FROM {names['activity_day']}{join_whole}"
            f" WHERE {window} AND kind = '{kind}'{in_whole}"
        )
        losers = losers_sql(names["event_losers"], window + only)
        parts.append(
            f"SELECT {raw_grp} AS grp, day, member, toInt64(-1) AS n FROM {losers}{join_whole}"
            f" WHERE 1{in_whole}"
        )
    if with_partial:
        parts.append(
            f"SELECT {raw_grp} AS grp, day, member, toInt64(1) AS n"
            f" FROM {names['events']} {join}ALL INNER JOIN partial USING (member, day)"
            f" WHERE {window} AND day IN %(pdays)s AND member IN %(pmembers)s{only}"
            f" AND ts >= from_us AND ts < to_us AND {live(names)}"
        )
    union = " UNION ALL ".join(parts)
    return f"""
    SELECT grp, toStartOfMonth(day) AS month, uniqExactMerge(members), groupArray((day, active))
    FROM (
        SELECT grp, day, toInt64(count()) AS active, uniqExactState(member) AS members
        FROM (
            SELECT grp, day, member FROM ({union})
            GROUP BY grp, day, member HAVING sum(n) > 0
        )
        GROUP BY grp, day
    )
    GROUP BY grp, month
    """


def app_sql(names: Mapping[str, str]) -> str:
    """Per (app, kind, resource) of ``%(apps)s`` up to the org day ``%(day)s``: the delta sum,
    the latest instant and the latest records (ties in time: the greater id)."""
    return f"""
    SELECT app, kind, resource, toInt64(sum(total)), max(last_ts),
           argMax(last_records, (last_ts, last_id))
    FROM {names["app_day"]}
    WHERE org = %(org)s AND day <= %(day)s AND app IN %(apps)s
    GROUP BY app, kind, resource
    """


def app_losers_sql(names: Mapping[str, str]) -> str:
    """The race losers among the apps' events up to the org day: (app, type, resource, delta)."""
    losers = losers_sql(
        names["event_losers"],
        "org = %(org)s AND day <= %(day)s AND app IN %(apps)s"
        " AND type IN ('app_resource', 'app_data', 'app_visit', 'app_edit')",
    )
    return (
        "SELECT assumeNotNull(app), type, ifNull(resource, ''), toInt64(ifNull(delta, 0))"
        f" FROM {losers}"
    )
