"""The benchmark's questions, and the hand-written SQL that answers them from raw events.

Each question is asked three ways on the same data: through Tally's HTTP API, by DuckDB straight
from Tally's raw ``events`` table, and by PostgreSQL 15 from a copy of those events. The SQL is
one text for both engines (``?`` placeholders; PostgreSQL's ``%s`` are substituted) except where
a dialect differs (``arg_max``).

Simplification of the raw answers (stated in the output): members are attributed to their
*current* departments and developer flag, not to the version in effect at each event's time.

Helper tables (built before timing, from Tally's directory tables): ``bench_departments``,
``bench_member_departments``, ``bench_members``, ``bench_workspaces``,
``bench_workspace_members``, ``bench_apps``, ``bench_days`` (each window day with the epoch µs
of its end, the next local midnight).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from generate import RESOURCES
from plan import ORG_ID


@dataclass(frozen=True)
class Question:
    key: str
    family: str  # department | member | environment | apps
    label: str
    days: int  # window length ending on the plan's last day (0: one day, the apps' date)
    scope: str  # subtree | root | member | users | developers | workspaces | page

    def window(self, end_day: date) -> tuple[date, date]:
        return end_day - timedelta(days=max(self.days, 1) - 1), end_day


QUESTIONS: tuple[Question, ...] = (
    Question("dept_subtree_31d", "department", "dept usage, subtree ~10%, 31 d", 31, "subtree"),
    Question("dept_subtree_365d", "department", "dept usage, subtree ~10%, 365 d", 365, "subtree"),
    Question("dept_root_31d", "department", "dept usage, root, 31 d", 31, "root"),
    Question("dept_root_365d", "department", "dept usage, root, 365 d", 365, "root"),
    Question("env_users_31d", "environment", "env users, 31 d", 31, "users"),
    Question("env_users_365d", "environment", "env users, 365 d", 365, "users"),
    Question("env_developers_365d", "environment", "env developers, 365 d", 365, "developers"),
    Question("env_workspaces_365d", "environment", "env workspaces, 365 d", 365, "workspaces"),
    Question("apps_page_t1", "apps", "app usage, page of 20, date T-1", 0, "page"),
    Question("member_subtree_31d", "member", "developerUsage, subtree ~10%, 31 d", 31, "subtree"),
    Question("member_one_365d", "member", "developerUsage, one member, 365 d", 365, "member"),
)
QUESTION_KEYS = tuple(q.key for q in QUESTIONS)

DUCKDB_HELPERS = (
    "CREATE TEMP TABLE bench_departments AS SELECT id, parent FROM departments WHERE org = $org",
    """CREATE TEMP TABLE bench_current AS
       SELECT member, developer, departments FROM member_versions WHERE org = $org
       QUALIFY row_number() OVER (PARTITION BY member ORDER BY effective_at DESC) = 1""",
    """CREATE TEMP TABLE bench_member_departments AS
       SELECT member, unnest(departments) AS department FROM bench_current""",
    """CREATE TEMP TABLE bench_members AS
       SELECT m.id, m.created_at, m.deleted_at, c.developer
       FROM members m JOIN bench_current c ON c.member = m.id WHERE m.org = $org""",
    """CREATE TEMP TABLE bench_workspaces AS
       SELECT id, created_at, deleted_at FROM workspaces WHERE org = $org""",
    """CREATE TEMP TABLE bench_workspace_members AS
       SELECT workspace, member, since, until FROM workspace_members WHERE org = $org""",
    "CREATE TEMP TABLE bench_apps AS SELECT id, created_at, deleted_at FROM apps WHERE org = $org",
    "CREATE TEMP TABLE bench_days (day DATE, end_us BIGINT)",
)
HELPER_TABLES = {
    "bench_departments": "id VARCHAR, parent VARCHAR",
    "bench_member_departments": "member VARCHAR, department VARCHAR",
    "bench_members": "id VARCHAR, created_at BIGINT, deleted_at BIGINT, developer BOOLEAN",
    "bench_workspaces": "id VARCHAR, created_at BIGINT, deleted_at BIGINT",
    "bench_workspace_members": "workspace VARCHAR, member VARCHAR, since BIGINT, until BIGINT",
    "bench_apps": "id VARCHAR, created_at BIGINT, deleted_at BIGINT",
    "bench_days": "day DATE, end_us BIGINT",
}
EVENT_COLUMNS = (
    "org VARCHAR, id VARCHAR, ts BIGINT, day DATE, type VARCHAR, member VARCHAR, ide VARCHAR, "
    "language VARCHAR, chat_type VARCHAR, source VARCHAR, accepted BOOLEAN, "
    "lines_suggested BIGINT, lines_accepted BIGINT, lines_changed BIGINT, workspace VARCHAR, "
    "app VARCHAR, resource VARCHAR, delta BIGINT, records BIGINT"
)
PG_INDEXES = (
    "CREATE INDEX events_org_day ON events (org, day)",
    "CREATE INDEX events_org_member_day ON events (org, member, day)",
    "CREATE INDEX events_org_app_ts ON events (org, app, ts)",
    "CREATE INDEX events_org_type_day ON events (org, type, day)",
    "CREATE INDEX bench_member_departments_department ON bench_member_departments (department)",
    "CREATE INDEX bench_departments_parent ON bench_departments (parent)",
)

DEPARTMENT_SQL = """
WITH RECURSIVE sub(id) AS (
    SELECT CAST(? AS VARCHAR)
    UNION
    SELECT d.id FROM bench_departments d JOIN sub ON d.parent = sub.id
),
who AS (
    SELECT DISTINCT member FROM bench_member_departments
    WHERE department IN (SELECT id FROM sub)
)
SELECT day, type, ide, language, chat_type,
       GROUPING(type, ide, language, chat_type) AS level,
       count(*) AS events,
       count(*) FILTER (WHERE accepted) AS accepted,
       sum(lines_suggested) AS lines_suggested,
       sum(lines_accepted) AS lines_accepted,
       sum(lines_changed) AS lines_changed,
       sum(lines_accepted) FILTER (WHERE source = 'chat') AS lines_accepted_chat,
       count(DISTINCT member) AS members
FROM events
WHERE org = ? AND day BETWEEN ? AND ? AND type IN ('completion', 'chat', 'code')
  AND member IN (SELECT member FROM who)
GROUP BY GROUPING SETS ((day), (day, type), (day, type, ide, language, chat_type))
ORDER BY day, level DESC, type, ide, language, chat_type
"""

#: Per-member usage (developerUsage): the (day, member) pairs of ``{who}``'s assistant events
#: in the window, each with its groups and its latest event; the first page of 100 pairs in
#: (day, member) order, every row carrying how many pairs there are in all.
MEMBER_SQL = """
WITH RECURSIVE sub(id) AS (
    SELECT CAST(? AS VARCHAR)
    UNION
    SELECT d.id FROM bench_departments d JOIN sub ON d.parent = sub.id
),
who AS (
    SELECT DISTINCT member FROM bench_member_departments
    WHERE department IN (SELECT id FROM sub)
),
hits AS (
    SELECT day, member, type, ide, language, chat_type,
           count(*) AS events,
           count(*) FILTER (WHERE accepted) AS accepted,
           sum(lines_suggested) AS lines_suggested,
           sum(lines_accepted) AS lines_accepted,
           sum(lines_changed) AS lines_changed,
           sum(lines_accepted) FILTER (WHERE source = 'chat') AS lines_accepted_chat,
           max(ts) AS last_ts
    FROM events
    WHERE org = ? AND day BETWEEN ? AND ? AND type IN ('completion', 'chat', 'code')
      AND {who}
    GROUP BY day, member, type, ide, language, chat_type
),
pairs AS (SELECT DISTINCT day, member FROM hits),
page AS (SELECT day, member FROM pairs ORDER BY day, member LIMIT 100)
SELECT h.day, (SELECT count(*) FROM pairs) AS total, h.member, h.type, h.ide, h.language,
       h.chat_type, h.events, h.accepted, h.lines_suggested, h.lines_accepted, h.lines_changed,
       h.lines_accepted_chat, h.last_ts
FROM hits h JOIN page p ON h.day = p.day AND h.member = p.member
ORDER BY h.day, h.member, h.type, h.ide, h.language, h.chat_type
"""
MEMBER_WHO = {
    "subtree": "member IN (SELECT member FROM who)",
    "member": "member = ?",
}

ACTIVE_SQL = """
SELECT {period} AS period, {key} count(DISTINCT member) AS members
FROM events
WHERE org = ? AND day BETWEEN ? AND ? {filter}
GROUP BY {groups} ORDER BY {groups}
"""

TOTALS_SQL = """
SELECT d.day, count(m.id) AS members
FROM bench_days d
LEFT JOIN bench_members m
  ON m.created_at < d.end_us AND (m.deleted_at IS NULL OR m.deleted_at >= d.end_us) {filter}
WHERE d.day BETWEEN ? AND ?
GROUP BY d.day ORDER BY d.day
"""

WORKSPACE_TOTALS_SQL = """
SELECT d.day, w.workspace, count(*) AS members
FROM bench_days d
JOIN bench_workspace_members w
  ON w.since < d.end_us AND (w.until IS NULL OR w.until >= d.end_us)
JOIN bench_workspaces s
  ON s.id = w.workspace AND s.created_at < d.end_us
 AND (s.deleted_at IS NULL OR s.deleted_at >= d.end_us)
WHERE d.day BETWEEN ? AND ?
GROUP BY d.day, w.workspace ORDER BY d.day, w.workspace
"""

WORKSPACE_DAILY_SQL = """
SELECT date_trunc('month', day) AS month, workspace, sum(members) AS member_days
FROM (
    SELECT day, workspace, count(DISTINCT member) AS members
    FROM events
    WHERE org = ? AND day BETWEEN ? AND ? AND type = 'workspace_activity'
    GROUP BY day, workspace
) AS per_day
GROUP BY 1, 2 ORDER BY 1, 2
"""

APPS_SQL = """
WITH page AS (
    SELECT id, created_at FROM bench_apps
    WHERE created_at < ? AND (deleted_at IS NULL OR deleted_at >= ?)
    ORDER BY created_at, id LIMIT 21 OFFSET 0
)
SELECT p.id, p.created_at,
       {resources},
       max(e.ts) FILTER (WHERE e.type = 'app_visit') AS last_visit,
       max(e.ts) FILTER (WHERE e.type = 'app_edit') AS last_edit,
       {latest_records} AS data
FROM page p
LEFT JOIN events e ON e.org = ? AND e.app = p.id AND e.ts < ?
GROUP BY p.id, p.created_at
ORDER BY p.created_at, p.id
"""
LATEST_RECORDS = {
    "duckdb": "arg_max(e.records, e.ts) FILTER (WHERE e.type = 'app_data')",
    "pg": "(array_agg(e.records ORDER BY e.ts DESC) FILTER (WHERE e.type = 'app_data'))[1]",
}

Statement = tuple[str, list[Any]]


def shape(rows: list[tuple[Any, ...]], question: Question) -> list[int]:
    """[rows, distinct values of the first column] of one statement's answer (for cross-checks:
    a department answer's first column is the day, so the second number is Tally's x-total),
    and for a per-member answer the pairs in all (its second column: Tally's x-total)."""
    found = [len(rows), len({row[0] for row in rows})]
    if question.family == "member":
        found.append(int(rows[0][1]) if rows else 0)
    return found


def _active(period: str, developers: bool, workspaces: bool = False) -> str:
    filters = ""
    if developers:
        filters = (
            "AND type = 'workspace_activity'"
            " AND member IN (SELECT id FROM bench_members WHERE developer)"
        )
    elif workspaces:
        filters = "AND type = 'workspace_activity'"
    key = "workspace," if workspaces else ""
    groups = "1, 2" if workspaces else "1"
    return ACTIVE_SQL.format(period=period, key=key, filter=filters, groups=groups)


def statements(
    question: Question,
    dialect: str,
    end_day: date,
    subtree: str,
    root: str,
    app_date_end_us: int,
    member: str = "",
) -> list[Statement]:
    """The SQL (with parameters) that answers ``question`` from raw events in ``dialect``
    (``member``: the member of the one-member questions)."""
    start, end = question.window(end_day)
    window = [ORG_ID, start, end]
    result: list[Statement]
    if question.family == "department":
        dept = subtree if question.scope == "subtree" else root
        result = [(DEPARTMENT_SQL, [dept, *window])]
    elif question.family == "member":
        sql = MEMBER_SQL.format(who=MEMBER_WHO[question.scope])
        who = [member] if question.scope == "member" else []
        result = [(sql, [subtree, *window, *who])]
    elif question.family == "environment" and question.scope in ("users", "developers"):
        developers = question.scope == "developers"
        result = [
            (_active("day", developers), window),
            (_active("date_trunc('month', day)", developers), window),
            (TOTALS_SQL.format(filter="AND m.developer" if developers else ""), [start, end]),
        ]
    elif question.family == "environment":
        result = [
            (WORKSPACE_TOTALS_SQL, [start, end]),
            (_active("date_trunc('month', day)", False, workspaces=True), window),
            (WORKSPACE_DAILY_SQL, window),
        ]
    else:
        resources = ",\n       ".join(
            f"sum(e.delta) FILTER (WHERE e.type = 'app_resource' AND e.resource = '{r}') AS {r}"
            for r in RESOURCES
        )
        sql = APPS_SQL.format(resources=resources, latest_records=LATEST_RECORDS[dialect])
        at = app_date_end_us
        result = [(sql, [at, at, ORG_ID, at])]
    if dialect == "pg":
        result = [(sql.replace("?", "%s"), params) for sql, params in result]
    return result
