"""The export datasets: each one's stable column list, and a generator of Arrow tables in those
columns, built from the engine functions the statistics APIs answer with (never a second
implementation of a figure). Days are org days; instants are timestamps in the org's zone.

Every generator holds one bounded piece of the window at a time (a page of events, one
department's days, a few days of member rows, one day of apps), so an export's memory does not
grow with the window or with the events it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import pyarrow as pa

from tally.engine.app_usage import AppUsageQuery, app_usage
from tally.engine.department_usage import DepartmentUsageQuery, department_usage
from tally.engine.environment_stats import MemberStats, StatsQuery, environment_statistics
from tally.engine.member_usage import MemberUsageQuery, member_usage
from tally.model.directory import Directory
from tally.model.events import RESOURCES
from tally.stores.base import ChatUsage, CodingUsage, CompletionUsage, EventStore
from tally.timeutil import day_end, day_start, local_day, to_micros

#: Rows per events page (one Parquet row group, one CSV chunk).
EVENT_BATCH_ROWS = 100_000
#: Days per member_days / activity_days chunk, and rows per member_days page.
MEMBER_DAYS_PER_CHUNK = 7
MEMBER_ROWS_PER_PAGE = 20_000
ACTIVITY_DAYS_PER_CHUNK = 31
#: Apps per app_days page (one day's apps are read a page at a time).
APPS_PER_PAGE = 1_000

STRING = pa.string()
INT = pa.int64()
BOOL = pa.bool_()
DATE = pa.date32()


@dataclass(frozen=True)
class Column:
    """One exported column: its name, its type (``None``: a timestamp in the org's zone) and
    what it holds (the documentation lists these)."""

    name: str
    type: pa.DataType | None
    doc: str

    def arrow_type(self, tz: str) -> pa.DataType:
        return pa.timestamp("us", tz=tz) if self.type is None else self.type


def _timestamp(name: str, doc: str) -> Column:
    return Column(name, None, doc)


EVENT_COLUMNS = (
    Column("id", STRING, "the event id"),
    _timestamp("time", "when it happened (microseconds, in the org's zone)"),
    Column("type", STRING, "completion, chat, code, activity, workspace_activity, app_*"),
    Column("member", STRING, "the member id"),
    Column("ide", STRING, "completion, chat"),
    Column("language", STRING, "completion, code"),
    Column("chat_type", STRING, "chat"),
    Column("source", STRING, "code: completion or chat"),
    Column("accepted", BOOL, "completion, chat"),
    Column("lines_suggested", INT, "completion"),
    Column("lines_accepted", INT, "completion, code"),
    Column("lines_changed", INT, "code"),
    Column("workspace", STRING, "workspace_activity"),
    Column("app", STRING, "app_visit, app_edit, app_resource, app_data"),
    Column("resource", STRING, "app_resource"),
    Column("delta", INT, "app_resource"),
    Column("records", INT, "app_data"),
)

#: The breakdown entry columns shared by department_days and member_days (null where the
#: entry's kind has no such field).
BREAKDOWN_COLUMNS = (
    Column("kind", STRING, "completion, chatting or coding: which breakdown list"),
    Column("ide", STRING, "completion, chatting"),
    Column("language", STRING, "completion, coding"),
    Column("chat_type", STRING, "chatting"),
    Column("count_suggested", INT, "completion: countSuggested"),
    Column("count_accepted", INT, "completion: countAccepted"),
    Column("lines_suggested", INT, "completion: linesSuggested"),
    Column("lines_accepted", INT, "completion, coding: linesAccepted"),
    Column("chat_turns", INT, "chatting: chatTurns"),
    Column("chat_turns_accepted", INT, "chatting: chatTurnsAccepted"),
    Column("lines_changed", INT, "coding: linesChanged"),
    Column("accept_assistant_newline_count", INT, "coding: acceptAssistantNewlineCount"),
)

DEPARTMENT_DAY_COLUMNS = (
    Column("department_id", STRING, "the department (its usage includes its sub-departments)"),
    Column("department_name", STRING, "its current name"),
    Column("day", DATE, "the org day"),
    *BREAKDOWN_COLUMNS,
    Column("active_developer", INT, "the entry's activeDeveloper"),
    Column("day_active_developer", INT, "the day's activeDeveloper (repeated on its rows)"),
    Column("day_active_developer_chat", INT, "the day's activeDeveloperChat"),
    Column("day_active_developer_completion", INT, "the day's activeDeveloperCompletion"),
)

MEMBER_DAY_COLUMNS = (
    Column("day", DATE, "the org day"),
    Column("member_id", STRING, "developerUsage userId"),
    Column("member_name", STRING, "the member's current name"),
    *BREAKDOWN_COLUMNS,
    Column("status_active_chat", BOOL, "statusActiveChat (repeated on the member-day's rows)"),
    Column("status_active_completion", BOOL, "statusActiveCompletion"),
    _timestamp("status_active_lasted_time", "statusActiveLastedTime: the latest counted event"),
)

ACTIVITY_DAY_COLUMNS = (
    Column("day", DATE, "the org day"),
    Column("total_users", INT, "members existing at the end of the day"),
    Column("active_users", INT, "members with an event of any type that day"),
    Column("total_developers", INT, "developers existing at the end of the day"),
    Column("active_developers", INT, "developers with a workspace_activity event that day"),
)

APP_DAY_COLUMNS = (
    Column("day", DATE, "the org day (up to yesterday, T-1: the metrics of a whole day)"),
    Column("app_id", STRING, "the app (each app existing at the end of the day)"),
    Column("app_name", STRING, "its current name"),
    Column("creator_id", STRING, "creator.member_id"),
    Column("creator_name", STRING, "creator.name (current)"),
    *(Column(r, INT, f"metrics.{r} at the end of the day") for r in RESOURCES),
    Column("data", INT, "metrics.data: records of the latest app_data event"),
    _timestamp("last_visit_at", "the latest app_visit up to the end of the day"),
    _timestamp("last_edit_at", "the latest app_edit up to the end of the day"),
)


def schema_of(columns: Sequence[Column], tz: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow_type(tz)) for c in columns])


@dataclass(frozen=True)
class Window:
    """What every dataset generator gets: the stores' view of one org and the org days."""

    store: EventStore
    directory: Directory
    first_day: date
    last_day: date
    now: datetime
    max_days: int

    @property
    def tz(self) -> str:
        return self.directory.org.timezone

    def chunks(self, size: int) -> Iterator[tuple[date, date]]:
        """The window's days in runs of at most ``size`` days."""
        first = self.first_day
        while first <= self.last_day:
            last = min(self.last_day, first + timedelta(days=size - 1))
            yield first, last
            first = last + timedelta(days=1)


Rows = list[dict[str, Any]]


def _table(rows: Rows, columns: Sequence[Column], tz: str) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema_of(columns, tz))


# -- events ----------------------------------------------------------------------------------


def event_tables(window: Window) -> Iterator[pa.Table]:
    """The raw events of the window, by time then id, as ``tally import`` reads them."""
    tz = window.tz
    schema = schema_of(EVENT_COLUMNS, tz)
    batches = window.store.event_batches(
        window.directory.org.id,
        start_us=to_micros(day_start(window.first_day, tz)),
        end_us=to_micros(day_end(window.last_day, tz)),
        batch_rows=EVENT_BATCH_ROWS,
    )
    for batch in batches:
        time_column = batch["ts"].cast(pa.timestamp("us", tz="UTC")).cast(schema.field("time").type)
        columns = [time_column if c.name == "time" else batch[c.name] for c in EVENT_COLUMNS]
        yield pa.table([col.cast(f.type) for col, f in zip(columns, schema, strict=True)], schema)


# -- the assistant's breakdowns, flattened ---------------------------------------------------


def _breakdown_rows(
    completion: Sequence[CompletionUsage],
    chatting: Sequence[ChatUsage],
    coding: Sequence[CodingUsage],
    *,
    with_active: bool,
) -> Rows:
    """One row per breakdown entry, in the API's order (completion, chatting, coding; each
    list already sorted by its key fields)."""
    rows: Rows = []
    for c in completion:
        row: dict[str, Any] = {
            "kind": "completion",
            "ide": c.ide,
            "language": c.language,
            "count_suggested": c.count_suggested,
            "count_accepted": c.count_accepted,
            "lines_suggested": c.lines_suggested,
            "lines_accepted": c.lines_accepted,
        }
        if with_active:
            row["active_developer"] = c.active_developers
        rows.append(row)
    for t in chatting:
        row = {
            "kind": "chatting",
            "ide": t.ide,
            "chat_type": t.chat_type,
            "chat_turns": t.turns,
            "chat_turns_accepted": t.turns_accepted,
        }
        if with_active:
            row["active_developer"] = t.active_developers
        rows.append(row)
    for k in coding:
        row = {
            "kind": "coding",
            "language": k.language,
            "lines_accepted": k.lines_accepted,
            "lines_changed": k.lines_changed,
            "accept_assistant_newline_count": k.lines_accepted_chat,
        }
        if with_active:
            row["active_developer"] = k.active_developers
        rows.append(row)
    return rows


def department_day_tables(window: Window) -> Iterator[pa.Table]:
    """Every department (by id), its active days of the window, one row per breakdown entry:
    the department usage API's rows, one department at a time."""
    directory = window.directory
    days = (window.last_day - window.first_day).days + 1
    for department_id in sorted(directory.departments):
        found = department_usage(
            window.store,
            directory,
            DepartmentUsageQuery(department_id, window.first_day, window.last_day, 1, days),
        )
        rows: Rows = []
        head = {
            "department_id": department_id,
            "department_name": directory.departments[department_id].name,
        }
        for day in found.days:
            usage = day.usage
            fixed = {
                **head,
                "day": usage.day,
                "day_active_developer": usage.active_developers,
                "day_active_developer_chat": usage.active_chat,
                "day_active_developer_completion": usage.active_completion,
            }
            entries = _breakdown_rows(
                usage.completion, usage.chatting, usage.coding, with_active=True
            )
            rows.extend({**fixed, **entry} for entry in entries)
        if rows:
            yield _table(rows, DEPARTMENT_DAY_COLUMNS, window.tz)


def member_day_tables(window: Window) -> Iterator[pa.Table]:
    """The developerUsage rows of the whole organization (by day, then member), one row per
    breakdown entry, a few days and one page at a time."""
    directory = window.directory
    for first, last in window.chunks(MEMBER_DAYS_PER_CHUNK):
        page = 1
        while True:
            found = member_usage(
                window.store,
                directory,
                MemberUsageQuery(first, last, page=page, per_page=MEMBER_ROWS_PER_PAGE),
            )
            rows: Rows = []
            for member_day in found.rows:
                usage = member_day.usage
                member = directory.members.get(usage.member)
                fixed = {
                    "day": usage.day,
                    "member_id": usage.member,
                    "member_name": member.name if member is not None else None,
                    "status_active_chat": bool(usage.chatting),
                    "status_active_completion": bool(usage.completion),
                    "status_active_lasted_time": usage.last_us,
                }
                entries = _breakdown_rows(
                    usage.completion, usage.chatting, usage.coding, with_active=False
                )
                rows.extend({**fixed, **entry} for entry in entries)
            if rows:
                yield _with_instants(rows, MEMBER_DAY_COLUMNS, window.tz)
            if page >= found.total_pages:
                break
            page += 1


def _with_instants(rows: Rows, columns: Sequence[Column], tz: str) -> pa.Table:
    """A table whose timestamp columns were given as epoch microseconds (or ``None``)."""
    stamped = [c.name for c in columns if c.type is None]
    plain = [Column(c.name, INT, c.doc) if c.type is None else c for c in columns]
    table = _table(rows, plain, tz)
    for name in stamped:
        i = table.schema.get_field_index(name)
        column = table[name].cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us", tz=tz))
        table = table.set_column(i, name, column)
    return table


# -- environment figures per day -------------------------------------------------------------


def activity_day_tables(window: Window) -> Iterator[pa.Table]:
    """Users and developers per day: the environment statistics API's ``total_*`` and
    ``daily_active_*.per_day`` rows of this one organization."""
    for first, last in window.chunks(ACTIVITY_DAYS_PER_CHUNK):
        figures = {
            kind: _member_stats(window, kind, first, last) for kind in ("users", "developers")
        }
        users, developers = figures["users"], figures["developers"]
        rows = [
            {
                "day": day,
                "total_users": total_users,
                "active_users": users.per_day[i][1],
                "total_developers": developers.total[i][1],
                "active_developers": developers.per_day[i][1],
            }
            for i, (day, total_users) in enumerate(users.total)
        ]
        yield _table(rows, ACTIVITY_DAY_COLUMNS, window.tz)


def _member_stats(window: Window, kind: str, first: date, last: date) -> MemberStats:
    query = StatsQuery(
        stats_type="users" if kind == "users" else "developers",
        start=datetime.combine(first, time()),  # naive: read in the org's zone
        end=datetime.combine(last, time()),
        environment_wide=False,
    )
    stats = environment_statistics(
        window.store, [window.directory], query, max_days=window.max_days
    )
    assert isinstance(stats, MemberStats)
    return stats


# -- app metrics per app and day -------------------------------------------------------------


def app_day_tables(window: Window) -> Iterator[pa.Table]:
    """Each day of the window up to T-1 and each app existing at its end (the app usage API's
    order: creation time, then id), with its metrics as of that end."""
    tz = window.tz
    today = local_day(window.now, tz)
    last = min(window.last_day, today - timedelta(days=1))
    day = window.first_day
    while day <= last:
        skip = 0
        while True:
            page = app_usage(
                window.store,
                window.directory,
                AppUsageQuery(day=day, app_ids=(), skip=skip, limit=APPS_PER_PAGE),
                now=window.now,
                max_days_back=(today - day).days,
            )
            rows = [
                {
                    "day": day,
                    "app_id": item.app.id,
                    "app_name": item.app.name,
                    "creator_id": item.app.creator,
                    "creator_name": item.creator_name,
                    **{r: getattr(item.metrics, r) for r in RESOURCES},
                    "data": item.metrics.data,
                    "last_visit_at": _micros(item.last_visit_at),
                    "last_edit_at": _micros(item.last_edit_at),
                }
                for item in page.items
            ]
            if rows:
                yield _with_instants(rows, APP_DAY_COLUMNS, tz)
            if not page.has_next:
                break
            skip += APPS_PER_PAGE
        day += timedelta(days=1)


def _micros(instant: datetime | None) -> int | None:
    return None if instant is None else to_micros(instant)


@dataclass(frozen=True)
class Dataset:
    name: str
    columns: tuple[Column, ...]
    tables: Callable[[Window], Iterator[pa.Table]]
    summary: str


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("events", EVENT_COLUMNS, event_tables, "the raw events, every field"),
        Dataset(
            "department_days",
            DEPARTMENT_DAY_COLUMNS,
            department_day_tables,
            "department usage: one row per department, day and breakdown entry",
        ),
        Dataset(
            "member_days",
            MEMBER_DAY_COLUMNS,
            member_day_tables,
            "developerUsage: one row per member, day and breakdown entry",
        ),
        Dataset(
            "activity_days",
            ACTIVITY_DAY_COLUMNS,
            activity_day_tables,
            "users and developers: totals and actives per day",
        ),
        Dataset(
            "app_days",
            APP_DAY_COLUMNS,
            app_day_tables,
            "app metrics per app and day",
        ),
    )
}
