"""The dashboard's views: each reads its parameters, calls the engine functions the APIs call,
and shapes one JSON answer (figures, chart series, and tables that the CSV download writes)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from tally.engine.app_usage import AppUsageQuery, app_usage
from tally.engine.dashboard import (
    Figures,
    department_members,
    department_tree,
    inactive_members,
    member_detail,
    org_overview,
)
from tally.engine.environment_stats import (
    MemberStats,
    StatsQuery,
    WorkspaceStats,
    environment_statistics,
)
from tally.errors import BadRequest, NotFound
from tally.model.directory import Directory
from tally.service import Tally
from tally.timeutil import day_start, format_instant, from_micros, local_day, parse_date

#: The default window: the last 28 days, today included.
DEFAULT_DAYS = 28
#: The default of the "not active for N days" list.
DEFAULT_IDLE_DAYS = 30


@dataclass(frozen=True)
class Context:
    """One view call: the service, the organization's directory, the query parameters."""

    tally: Tally
    directory: Directory
    params: Mapping[str, str]
    now: datetime

    @property
    def tz(self) -> str:
        return self.directory.org.timezone

    @property
    def today(self) -> date:
        return local_day(self.now, self.tz)

    def window(self) -> tuple[date, date]:
        """``from`` and ``to`` (org days, inclusive); default the last 28 days."""
        last = self._date("to") or self.today
        first = self._date("from") or last - timedelta(days=DEFAULT_DAYS - 1)
        if last < first:
            raise BadRequest("the window's end (to) must not be before its start (from)")
        longest = self.tally.settings.lingma_max_days
        if (last - first).days >= longest:
            raise BadRequest(f"the window may span at most {longest} days")
        return first, last

    def _date(self, name: str) -> date | None:
        text = self.params.get(name, "")
        if not text:
            return None
        try:
            return parse_date(text)
        except ValueError as exc:
            raise BadRequest(f"{name}: {exc}") from exc

    def time(self, micros: int | None) -> str | None:
        """An instant in the org's zone, whole seconds (as the vendor APIs write them)."""
        return None if micros is None else format_instant(from_micros(micros), self.tz)

    def head(self) -> dict[str, Any]:
        org = self.directory.org
        return {"org": {"id": org.id, "name": org.name, "timezone": org.timezone}}


# -- tables ---------------------------------------------------------------------------------


def table(columns: Sequence[tuple[str, str]], rows: list[list[Any]]) -> dict[str, Any]:
    """A table: ``columns`` as (kind, label), kinds ``text``, ``int``, ``rate``, ``date``,
    ``time``, ``link`` (a cell ``{"text", "href"}``), ``spark`` (a list of ints)."""
    return {"columns": [{"kind": k, "label": label} for k, label in columns], "rows": rows}


FIGURE_COLUMNS = [
    ("int", "Chat turns"),
    ("int", "Completions suggested"),
    ("int", "Completions accepted"),
    ("rate", "Acceptance rate"),
    ("int", "Lines suggested"),
    ("int", "Lines accepted"),
]


def figure_cells(f: Figures) -> list[Any]:
    rate = None if f.acceptance_rate is None else round(f.acceptance_rate, 6)
    return [f.chat_turns, f.suggested, f.accepted, rate, f.lines_suggested, f.lines_accepted]


def figures_json(f: Figures) -> dict[str, Any]:
    return {
        "chat_turns": f.chat_turns,
        "suggested": f.suggested,
        "accepted": f.accepted,
        "acceptance_rate": f.acceptance_rate,
        "lines_suggested": f.lines_suggested,
        "lines_accepted": f.lines_accepted,
    }


def _link(text: str, path: str, ctx: Context, **params: str) -> dict[str, str]:
    keep = {k: ctx.params[k] for k in ("org", "from", "to") if ctx.params.get(k)}
    query = "&".join(f"{k}={_quote(v)}" for k, v in {**keep, **params}.items())
    return {"text": text, "href": f"/ui/{path}" + (f"?{query}" if query else "")}


def _quote(value: str) -> str:
    return quote(value, safe="")


# -- the views ------------------------------------------------------------------------------


def overview(ctx: Context) -> dict[str, Any]:
    first, last = ctx.window()
    found = org_overview(ctx.tally.event_store, ctx.directory, first, last, ctx.today)
    rows = [
        [
            d.day.isoformat(),
            d.active,
            d.active_7d,
            d.active_28d,
            *figure_cells(d.figures),
            "possibly missing" if d.possibly_missing else "",
        ]
        for d in found.days
    ]
    return {
        **ctx.head(),
        "from": first.isoformat(),
        "to": last.isoformat(),
        "has_data": found.has_data,
        "totals": {**figures_json(found.totals), "active_developers": found.active_in_window},
        "missing": [d.day.isoformat() for d in found.days if d.possibly_missing],
        "series": {
            "x": [int(d.starts_at.timestamp()) for d in found.days],
            "active": [d.active for d in found.days],
            "active_7d": [d.active_7d for d in found.days],
            "active_28d": [d.active_28d for d in found.days],
            "suggested": [d.figures.suggested for d in found.days],
            "accepted": [d.figures.accepted for d in found.days],
            "chat_turns": [d.figures.chat_turns for d in found.days],
            "lines_accepted": [d.figures.lines_accepted for d in found.days],
        },
        "tables": {
            "days": table(
                [
                    ("date", "Day"),
                    ("int", "Active developers"),
                    ("int", "7-day actives"),
                    ("int", "28-day actives"),
                    *FIGURE_COLUMNS,
                    ("text", "Data"),
                ],
                rows,
            )
        },
    }


def departments(ctx: Context) -> dict[str, Any]:
    """One level of the department tree: the roots, or the children of ``parent``."""
    first, last = ctx.window()
    parent = ctx.params.get("parent") or None
    tree = department_tree(
        ctx.tally.event_store, ctx.directory, first, last, ctx.now, parent=parent
    )
    rows = [
        [
            _link(d.name, "departments", ctx, parent=d.id)
            if d.children
            else {"text": d.name, "href": ""},
            d.id,
            d.children,
            d.members,
            max(d.daily_active, default=0),
            d.daily_active,
            *figure_cells(d.figures),
            _link("members", "department", ctx, id=d.id),
        ]
        for d in tree
    ]
    trail = []
    if parent is not None:
        chain = [parent, *ctx.directory.ancestors(parent)]
        trail = [
            {**_link(ctx.directory.departments[d].name, "departments", ctx, parent=d), "id": d}
            for d in reversed(chain)
        ]
    return {
        **ctx.head(),
        "from": first.isoformat(),
        "to": last.isoformat(),
        "parent": parent,
        "trail": [_link("All departments", "departments", ctx), *trail],
        "has_data": any(any(d.daily_active) for d in tree),
        "tables": {
            "departments": table(
                [
                    ("link", "Department"),
                    ("text", "Id"),
                    ("int", "Sub-departments"),
                    ("int", "Members"),
                    ("int", "Peak daily actives"),
                    ("spark", "Daily active developers"),
                    *FIGURE_COLUMNS,
                    ("link", "Members"),
                ],
                rows,
            )
        },
    }


def department(ctx: Context) -> dict[str, Any]:
    first, last = ctx.window()
    department_id = ctx.params.get("id", "")
    found = ctx.directory.departments.get(department_id)
    if found is None:
        raise NotFound(f'department "{department_id}" does not exist')
    members = department_members(
        ctx.tally.event_store, ctx.directory, department_id, first, last, ctx.now
    )
    rows = [
        [
            _link(m.name, "member", ctx, id=m.id),
            m.id,
            "yes" if m.developer else "no",
            m.active_days,
            *figure_cells(m.figures),
            ctx.time(m.last_active_us),
        ]
        for m in members
    ]
    parent = found.parent
    return {
        **ctx.head(),
        "from": first.isoformat(),
        "to": last.isoformat(),
        "department": {"id": found.id, "name": found.name, "parent": parent},
        "has_data": any(m.active_days for m in members),
        "tables": {
            "members": table(
                [
                    ("link", "Member"),
                    ("text", "Id"),
                    ("text", "Developer"),
                    ("int", "Active days"),
                    *FIGURE_COLUMNS,
                    ("time", "Last active"),
                ],
                rows,
            )
        },
    }


def member(ctx: Context) -> dict[str, Any]:
    first, last = ctx.window()
    member_id = ctx.params.get("id", "")
    if member_id not in ctx.directory.members:
        raise NotFound(f'member "{member_id}" does not exist')
    detail = member_detail(ctx.tally.event_store, ctx.directory, member_id, first, last, ctx.now)
    breakdown_columns = [
        ("int", "Chat turns"),
        ("int", "Completions suggested"),
        ("int", "Completions accepted"),
        ("rate", "Acceptance rate"),
        ("int", "Lines suggested"),
        ("int", "Lines accepted"),
    ]
    return {
        **ctx.head(),
        "from": first.isoformat(),
        "to": last.isoformat(),
        "member": {
            "id": detail.id,
            "name": detail.name,
            "email": detail.email,
            "developer": detail.developer,
            "departments": list(detail.departments),
            "last_active": ctx.time(detail.last_active_us),
        },
        "totals": figures_json(detail.totals),
        "has_data": any(f.suggested or f.chat_turns for _, _, f in detail.days),
        "series": {
            "x": [int(s.timestamp()) for _, s, _ in detail.days],
            "suggested": [f.suggested for _, _, f in detail.days],
            "accepted": [f.accepted for _, _, f in detail.days],
            "chat_turns": [f.chat_turns for _, _, f in detail.days],
        },
        "tables": {
            "days": table(
                [("date", "Day"), *FIGURE_COLUMNS],
                [[d.isoformat(), *figure_cells(f)] for d, _, f in detail.days],
            ),
            "ides": table(
                [("text", "IDE"), *breakdown_columns],
                [[b.key, *figure_cells(b.figures)] for b in detail.by_ide],
            ),
            "languages": table(
                [("text", "Language"), *breakdown_columns, ("int", "Lines changed")],
                [[b.key, *figure_cells(b.figures), b.lines_changed] for b in detail.by_language],
            ),
        },
    }


def inactive(ctx: Context) -> dict[str, Any]:
    text = ctx.params.get("days", "") or str(DEFAULT_IDLE_DAYS)
    if not text.isdigit() or not 1 <= int(text) <= 3660:
        raise BadRequest("days must be a whole number of days from 1 to 3660")
    idle = int(text)
    found = inactive_members(ctx.tally.event_store, ctx.directory, ctx.now, idle)
    rows = [
        [
            _link(m.name, "member", ctx, id=m.id),
            m.id,
            m.email,
            "yes" if m.developer else "no",
            ", ".join(m.departments),
            ctx.time(m.last_active_us),
            None
            if m.last_active_us is None
            else (ctx.today - local_day(from_micros(m.last_active_us), ctx.tz)).days,
        ]
        for m in found
    ]
    return {
        **ctx.head(),
        "days": idle,
        "members": len(ctx.directory.members),
        "has_data": True,
        "tables": {
            "inactive": table(
                [
                    ("link", "Member"),
                    ("text", "Id"),
                    ("text", "Email"),
                    ("text", "Developer"),
                    ("text", "Departments"),
                    ("time", "Last active"),
                    ("int", "Days since"),
                ],
                rows,
            )
        },
    }


def environment(ctx: Context) -> dict[str, Any]:
    first, last = ctx.window()
    start = datetime(first.year, first.month, first.day)
    end = datetime(last.year, last.month, last.day)

    def stats(kind: Any) -> MemberStats | WorkspaceStats:
        return environment_statistics(
            ctx.tally.event_store,
            [ctx.directory],
            StatsQuery(kind, start, end, environment_wide=False),
            max_days=ctx.tally.settings.environment_max_days,
        )

    users, developers, workspaces = stats("users"), stats("developers"), stats("workspaces")
    assert isinstance(users, MemberStats)
    assert isinstance(developers, MemberStats)
    assert isinstance(workspaces, WorkspaceStats)
    day_rows = [
        [d.isoformat(), tu, au, td, ad]
        for (d, tu), (_, au), (_, td), (_, ad) in zip(
            users.total, users.per_day, developers.total, developers.per_day, strict=True
        )
    ]
    month_rows = [
        [f"{m.year:04d}-{m.month:02d}", mu, du, md, dd]
        for (m, mu), (_, du), (_, md), (_, dd) in zip(
            users.monthly_active,
            users.per_month,
            developers.monthly_active,
            developers.per_month,
            strict=True,
        )
    ]
    names = {w.id: w.name for w in ctx.directory.workspaces.values()}
    # each month's last day in the window: the members the workspace had at its end
    month_end = {(d.year, d.month): figures for d, figures in workspaces.total}
    workspace_rows = []
    for (month, active), (_, mean) in zip(
        workspaces.monthly_active, workspaces.daily_active_per_month, strict=True
    ):
        for i, key in enumerate(workspaces.keys):
            workspace_rows.append(
                [
                    f"{month.year:04d}-{month.month:02d}",
                    key,
                    names.get(key, key),
                    month_end[month.year, month.month][i],
                    active[i],
                    mean[i],
                ]
            )
    return {
        **ctx.head(),
        "from": first.isoformat(),
        "to": last.isoformat(),
        "has_data": any(n for _, n in users.per_day),
        "totals": {
            "users": users.total[-1][1] if users.total else 0,
            "developers": developers.total[-1][1] if developers.total else 0,
            "workspaces": len(workspaces.keys),
        },
        "series": {
            "x": [int(_midnight(ctx, d)) for d, _ in users.total],
            "total_users": [n for _, n in users.total],
            "active_users": [n for _, n in users.per_day],
            "total_developers": [n for _, n in developers.total],
            "active_developers": [n for _, n in developers.per_day],
        },
        "tables": {
            "days": table(
                [
                    ("date", "Day"),
                    ("int", "Users"),
                    ("int", "Daily active users"),
                    ("int", "Developers"),
                    ("int", "Daily active developers"),
                ],
                day_rows,
            ),
            "months": table(
                [
                    ("text", "Month"),
                    ("int", "Monthly active users"),
                    ("int", "Mean daily active users"),
                    ("int", "Monthly active developers"),
                    ("int", "Mean daily active developers"),
                ],
                month_rows,
            ),
            "workspaces": table(
                [
                    ("text", "Month"),
                    ("text", "Workspace"),
                    ("text", "Name"),
                    ("int", "Members at the month's end (in the window)"),
                    ("int", "Monthly active users"),
                    ("int", "Mean daily active users"),
                ],
                workspace_rows,
            ),
        },
    }


def _midnight(ctx: Context, day: date) -> float:
    return day_start(day, ctx.tz).timestamp()


def apps(ctx: Context) -> dict[str, Any]:
    text = ctx.params.get("date", "")
    try:
        day = parse_date(text) if text else None
    except ValueError as exc:
        raise BadRequest(f"date: {exc}") from exc
    query = AppUsageQuery(day=day, app_ids=(), skip=0, limit=max(1, len(ctx.directory.apps)))
    page = app_usage(
        ctx.tally.event_store,
        ctx.directory,
        query,
        now=ctx.now,
        max_days_back=ctx.tally.settings.apps_max_days_back,
    )
    metric_names = [
        "form_coop", "form_workflow", "dash", "etl", "aggregate", "public_link",
        "data_trigger", "automation", "bpa", "data",
    ]  # fmt: skip
    rows = [
        [
            item.app.id,
            item.app.name,
            item.creator_name,
            format_instant(item.app.created_at, ctx.tz),
            None if item.last_visit_at is None else format_instant(item.last_visit_at, ctx.tz),
            None if item.last_edit_at is None else format_instant(item.last_edit_at, ctx.tz),
            *(getattr(item.metrics, name) for name in metric_names),
        ]
        for item in page.items
    ]
    return {
        **ctx.head(),
        "date": page.day.isoformat(),
        "has_data": bool(rows),
        "tables": {
            "apps": table(
                [
                    ("text", "App"),
                    ("text", "Name"),
                    ("text", "Creator"),
                    ("time", "Created"),
                    ("time", "Last visit"),
                    ("time", "Last edit"),
                    *(("int", name) for name in metric_names),
                ],
                rows,
            )
        },
    }


View = Callable[[Context], dict[str, Any]]

#: The views by name: the JSON route ``/ui/api/<name>`` and the CSV route
#: ``/ui/csv/<name>/<table>`` answer them.
VIEWS: dict[str, View] = {
    "overview": overview,
    "departments": departments,
    "department": department,
    "member": member,
    "inactive": inactive,
    "environment": environment,
    "apps": apps,
}
