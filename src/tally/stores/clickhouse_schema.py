"""The ClickHouse event store's tables: the events, their ids and race losers, and the first-level
rollups that materialized views fill in the same insert as the events.

Rollups (per org day and member, free of any directory fact, like the DuckDB store's):

- ``assistant_day`` (SummingMergeTree): per (day, member, kind, k1, k2) of the assistant events,
  ``n`` events, ``n_accepted``, and sums ``s1``/``s2``/``s3`` (see :data:`ASSISTANT_VALUES`);
- ``activity_day`` (SummingMergeTree): per (kind, day, member, workspace) the events of any type
  (kind ``any``) and the ``workspace_activity`` events per workspace (kind ``workspace``);
- ``app_day``: per (app, day, kind, resource) and insert block, the delta sum and the latest
  event (ts, id, records);
- ``day_bounds`` (AggregatingMergeTree): per org day the first and last instant of its events,
  which tells a reader whether a member span covers a day's events whole;
- ``member_last`` (AggregatingMergeTree): per (kind, day, member) the latest instant of the
  member's events of any type (kind ``any``) and of its assistant events (kind ``assistant``):
  the last visit and each member-day's last counted event, without raw events.

The views see every stored copy, race losers included; readers subtract the losers' rows (kept
whole in ``event_losers``), so the rollups stay exact. Every statement here is accepted by
ClickHouse 18.16 and by the current engine (chDB).
"""

from __future__ import annotations

#: The stored columns: ``org``, the insert stamp ``ver``, then those of ``StoredEvent``.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("org", "String"),
    ("ver", "Int64"),
    ("id", "String"),
    ("ts", "Int64"),
    ("day", "Date"),
    ("type", "String"),
    ("member", "String"),
    ("ide", "Nullable(String)"),
    ("language", "Nullable(String)"),
    ("chat_type", "Nullable(String)"),
    ("source", "Nullable(String)"),
    ("accepted", "Nullable(UInt8)"),
    ("lines_suggested", "Nullable(Int64)"),
    ("lines_accepted", "Nullable(Int64)"),
    ("lines_changed", "Nullable(Int64)"),
    ("workspace", "Nullable(String)"),
    ("app", "Nullable(String)"),
    ("resource", "Nullable(String)"),
    ("delta", "Nullable(Int64)"),
    ("records", "Nullable(Int64)"),
)

#: Copies of one (org, id) meet on one shard: the duplicate check and the losers are local.
SHARDING_KEY = "cityHash64(org, id)"

ASSISTANT_TYPES = "('completion', 'chat', 'code')"

#: One assistant event's rollup key: kind, k1, k2 (completion: ide, language; chat: chat_type,
#: ide; code: language, '').
ASSISTANT_KEYS = (
    "type AS kind",
    "ifNull(multiIf(type = 'completion', ide, type = 'chat', chat_type, language), '') AS k1",
    "ifNull(multiIf(type = 'completion', language, type = 'chat', ide, NULL), '') AS k2",
)
#: One assistant event's contribution (name, expression): completion: 1, accepted, lines
#: suggested, lines accepted, 0; chat: 1, accepted, 0, 0, 0; code: 1, 0, lines accepted of
#: source=chat, lines accepted, lines changed.
ASSISTANT_VALUES = (
    ("n", "toInt64(1)"),
    ("n_accepted", "toInt64(ifNull(accepted, 0) = 1)"),
    (
        "s1",
        "toInt64(ifNull(if(type = 'code',"
        " if(ifNull(source, '') = 'chat', lines_accepted, 0), lines_suggested), 0))",
    ),
    ("s2", "toInt64(ifNull(lines_accepted, 0))"),
    ("s3", "toInt64(ifNull(lines_changed, 0))"),
)


def _event_columns() -> str:
    return ", ".join(f"{name} {kind}" for name, kind in EVENT_COLUMNS)


def tables(db: str, suffix: str) -> list[str]:
    """DDL of the tables, named with ``suffix`` (``_local`` on a shard)."""
    return [
        # Read by org day ranges, type and member; partitioned by month of the org day.
        f"CREATE TABLE IF NOT EXISTS {db}.events{suffix} ({_event_columns()})"
        " ENGINE = MergeTree PARTITION BY toYYYYMM(day) ORDER BY (org, day, type, member, id)",
        # Every stored copy of every id, by (org, id): the duplicate check, an index lookup;
        # (day, type, member) find a copy in ``events`` by its primary key.
        f"CREATE TABLE IF NOT EXISTS {db}.event_ids{suffix}"
        " (org String, id String, ver Int64, day Date, type String, member String)"
        " ENGINE = MergeTree ORDER BY (org, id) SETTINGS index_granularity = 1024",
        # The copies that lost a race (not the earliest stamp of their id), whole: never
        # counted; readers of the rollups subtract them. A loser may be listed twice.
        f"CREATE TABLE IF NOT EXISTS {db}.event_losers{suffix} ({_event_columns()})"
        " ENGINE = MergeTree ORDER BY (org, id, ver)",
        f"CREATE TABLE IF NOT EXISTS {db}.assistant_day{suffix}"
        " (org String, day Date, member String, kind String, k1 String, k2 String,"
        " n Int64, n_accepted Int64, s1 Int64, s2 Int64, s3 Int64)"
        " ENGINE = SummingMergeTree PARTITION BY toYYYYMM(day)"
        " ORDER BY (org, day, member, kind, k1, k2)",
        f"CREATE TABLE IF NOT EXISTS {db}.activity_day{suffix}"
        " (org String, kind String, day Date, member String, workspace String, n Int64)"
        " ENGINE = SummingMergeTree PARTITION BY toYYYYMM(day)"
        " ORDER BY (org, kind, day, member, workspace)",
        f"CREATE TABLE IF NOT EXISTS {db}.app_day{suffix}"
        " (org String, app String, day Date, kind String, resource String, total Int64,"
        " last_ts Int64, last_id String, last_records Int64)"
        " ENGINE = MergeTree ORDER BY (org, app, day, kind, resource)",
        f"CREATE TABLE IF NOT EXISTS {db}.day_bounds{suffix}"
        " (org String, day Date, lo AggregateFunction(min, Int64),"
        " hi AggregateFunction(max, Int64))"
        " ENGINE = AggregatingMergeTree ORDER BY (org, day)",
        f"CREATE TABLE IF NOT EXISTS {db}.member_last{suffix}"
        " (org String, kind String, day Date, member String, hi AggregateFunction(max, Int64))"
        " ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(day)"
        " ORDER BY (org, kind, day, member)",
    ]


#: Tables readable through a ``Distributed`` table on a cluster (all of them).
TABLES = (
    "events",
    "event_ids",
    "event_losers",
    "assistant_day",
    "activity_day",
    "app_day",
    "day_bounds",
    "member_last",
)
#: The tables written by the store itself (the others by the views, shard-locally).
BY_ID = ("events", "event_ids", "event_losers")


def views(db: str, suffix: str) -> list[str]:
    """The materialized views that fill ``event_ids`` and the rollups from each insert."""
    src = f"{db}.events{suffix}"
    keys = ", ".join(ASSISTANT_KEYS)
    sums = ", ".join(f"sum({expr}) AS {name}" for name, expr in ASSISTANT_VALUES)
    return [
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.event_ids_view{suffix}"
        f" TO {db}.event_ids{suffix} AS SELECT org, id, ver, day, type, member FROM {src}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.assistant_day_view{suffix}"
        f" TO {db}.assistant_day{suffix} AS SELECT org, day, member, {keys}, {sums}"
        f" FROM {src} WHERE type IN {ASSISTANT_TYPES} GROUP BY org, day, member, kind, k1, k2",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.activity_any_view{suffix}"
        f" TO {db}.activity_day{suffix} AS SELECT org, 'any' AS kind, day, member,"
        f" '' AS workspace, toInt64(count()) AS n FROM {src} GROUP BY org, day, member",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.activity_workspace_view{suffix}"
        f" TO {db}.activity_day{suffix} AS SELECT org, 'workspace' AS kind, day, member,"
        " assumeNotNull(workspace) AS workspace, toInt64(count()) AS n"
        f" FROM {src} WHERE type = 'workspace_activity' AND workspace IS NOT NULL"
        " GROUP BY org, day, member, workspace",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.app_day_view{suffix}"
        f" TO {db}.app_day{suffix} AS SELECT org, assumeNotNull(app) AS app, day,"
        " type AS kind, ifNull(resource, '') AS resource,"
        " toInt64(sum(ifNull(delta, 0))) AS total, max(ts) AS last_ts,"
        " argMax(id, (ts, id)) AS last_id,"
        " argMax(toInt64(ifNull(records, 0)), (ts, id)) AS last_records"
        f" FROM {src} WHERE type IN ('app_resource', 'app_data', 'app_visit', 'app_edit')"
        " AND app IS NOT NULL GROUP BY org, app, day, kind, resource",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.day_bounds_view{suffix}"
        f" TO {db}.day_bounds{suffix} AS SELECT org, day, minState(ts) AS lo,"
        f" maxState(ts) AS hi FROM {src} GROUP BY org, day",
        *(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.member_last_{kind}_view{suffix}"
            f" TO {db}.member_last{suffix} AS {select}"
            for kind, select in _member_last_selects(src).items()
        ),
    ]


def _member_last_selects(src: str) -> dict[str, str]:
    """Per ``member_last`` kind, the rows of the events of ``src``."""
    return {
        kind: f"SELECT org, '{kind}' AS kind, day, member, maxState(ts) AS hi FROM {src}"
        f"{where} GROUP BY org, day, member"
        for kind, where in (("any", ""), ("assistant", f" WHERE type IN {ASSISTANT_TYPES}"))
    }


#: Rollup tables added after the first release, each with the statements that fill it from the
#: events already stored (run once, right after the table and its views are created: the views
#: catch the inserts from then on, and an insert caught twice is harmless, a ``max`` state).
ADDED_TABLES = ("member_last",)


def backfill(db: str, suffix: str, table: str) -> list[str]:
    """The statements that fill the added rollup ``table`` from ``events``."""
    assert table == "member_last"
    src = f"{db}.events{suffix}"
    return [
        f"INSERT INTO {db}.member_last{suffix} (org, kind, day, member, hi) {select}"
        for select in _member_last_selects(src).values()
    ]
