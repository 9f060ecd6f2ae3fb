"""The dashboard's figures: an organization's overview, its department tree with subtree figures,
one member's usage, the members not active for N days. Built on the same engine functions and
store reads as the vendor APIs (department usage, per-member usage, the members listing)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from tally.engine.department_usage import DepartmentUsageQuery, department_usage
from tally.engine.member_usage import MemberUsageQuery, list_members, member_usage
from tally.errors import NotFound
from tally.model.directory import Directory
from tally.stores.base import (
    ChatUsage,
    CompletionUsage,
    EventStore,
    MemberDay,
    MemberSpan,
)
from tally.timeutil import day_end, day_start, days, to_micros

#: The trailing windows of the overview's "N-day actives".
TRAILING_DAYS = (7, 28)
#: A day without any event is flagged as possibly missing data when at least this share of the
#: window's days (before today) has events: the window is "otherwise busy".
BUSY_SHARE = 0.5


@dataclass(frozen=True)
class Figures:
    """The AI assistant's sums over some days (of an org, a subtree, a member)."""

    chat_turns: int = 0
    suggested: int = 0
    accepted: int = 0
    lines_suggested: int = 0
    lines_accepted: int = 0

    @property
    def acceptance_rate(self) -> float | None:
        """Accepted over suggested completions: a ratio of totals, never a mean of rates."""
        return self.accepted / self.suggested if self.suggested else None

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            self.chat_turns + other.chat_turns,
            self.suggested + other.suggested,
            self.accepted + other.accepted,
            self.lines_suggested + other.lines_suggested,
            self.lines_accepted + other.lines_accepted,
        )


def figures_of(completion: Iterable[CompletionUsage], chatting: Iterable[ChatUsage]) -> Figures:
    """The sums of one day's (or one member-day's) breakdowns."""
    turns = sum(c.turns for c in chatting)
    suggested = accepted = lines_suggested = lines_accepted = 0
    for c in completion:
        suggested += c.count_suggested
        accepted += c.count_accepted
        lines_suggested += c.lines_suggested
        lines_accepted += c.lines_accepted
    return Figures(turns, suggested, accepted, lines_suggested, lines_accepted)


@dataclass(frozen=True)
class OverviewDay:
    day: date
    starts_at: datetime
    active: int
    active_7d: int
    active_28d: int
    figures: Figures
    #: Members with an event of any type that day (the missing-data rule reads it).
    any_activity: int
    possibly_missing: bool


@dataclass(frozen=True)
class Overview:
    first_day: date
    last_day: date
    days: list[OverviewDay]
    totals: Figures
    #: Distinct active developers over the whole window.
    active_in_window: int

    @property
    def has_data(self) -> bool:
        return any(d.active for d in self.days)


def org_overview(
    store: EventStore, directory: Directory, first_day: date, last_day: date, today: date
) -> Overview:
    """Every day of the window: active developers (that day, the trailing 7 and 28 days), the
    assistant's figures, and whether the day may be missing data (see :func:`missing_days`).

    The whole organization: every member's events all the window long, as the per-member usage
    API counts them without ``userId`` or ``departmentId``; the day totals are the department
    usage API's totals (``EventStore.assistant_day_totals``)."""
    tz = directory.org.timezone
    window = len(days(first_day, last_day))
    lengths = sorted({*TRAILING_DAYS, window})
    earliest = first_day - timedelta(days=max(lengths) - 1)
    members = sorted(directory.members)
    span_from, span_to = to_micros(day_start(earliest, tz)), to_micros(day_end(last_day, tz))
    spans = [MemberSpan(m, span_from, span_to) for m in members]
    window_from = to_micros(day_start(first_day, tz))
    usage = {
        d.day: d
        for d in store.assistant_day_totals(
            directory.org.id,
            [MemberSpan(m, window_from, span_to) for m in members],
            first_day,
            last_day,
        )
    }
    trailing = store.trailing_active_members(directory.org.id, spans, first_day, last_day, lengths)
    anyone = store.active_members(directory.org.id, first_day, last_day).per_day
    any_counts = [anyone.get(("", d), 0) for d in days(first_day, last_day)]
    missing = missing_days(days(first_day, last_day), any_counts, today)
    rows = []
    for i, day in enumerate(days(first_day, last_day)):
        found = usage.get(day)
        rows.append(
            OverviewDay(
                day=day,
                starts_at=day_start(day, tz),
                active=found.active_developers if found else 0,
                active_7d=trailing[7][i],
                active_28d=trailing[28][i],
                figures=Figures(
                    found.chat_turns,
                    found.suggested,
                    found.accepted,
                    found.lines_suggested,
                    found.lines_accepted,
                )
                if found
                else Figures(),
                any_activity=any_counts[i],
                possibly_missing=day in missing,
            )
        )
    total = sum((r.figures for r in rows), Figures())
    return Overview(first_day, last_day, rows, total, trailing[window][-1])


def missing_days(window: Sequence[date], any_counts: Sequence[int], today: date) -> set[date]:
    """The days of ``window`` before ``today`` (today is still under way) without any event,
    when at least :data:`BUSY_SHARE` of those days have events; none otherwise (a quiet window
    is not a gap)."""
    past = [(d, n) for d, n in zip(window, any_counts, strict=True) if d < today]
    if not past:
        return set()
    busy = sum(1 for _, n in past if n)
    if busy < BUSY_SHARE * len(past):
        return set()
    return {d for d, n in past if n == 0}


# -- the department tree --------------------------------------------------------------------


@dataclass(frozen=True)
class DepartmentFigures:
    id: str
    name: str
    parent: str | None
    #: Direct sub-departments.
    children: int
    #: Members whose current version is in the subtree.
    members: int
    #: Daily active developers on each day of the window (the sparkline), subtree included.
    daily_active: list[int]
    figures: Figures


def department_tree(
    store: EventStore,
    directory: Directory,
    first_day: date,
    last_day: date,
    now: datetime,
    parent: str | None = None,
) -> list[DepartmentFigures]:
    """One level of the tree: the children of ``parent`` (``None``: the roots) by id, each with
    the department usage of its whole subtree over the window (the department usage API's
    function). One level at a time: a page over a 500-department tree would otherwise run 500
    subtree queries. ``NotFound`` for an unknown ``parent``."""
    if parent is not None and parent not in directory.departments:
        raise NotFound(f'department "{parent}" does not exist')
    window = days(first_day, last_day)
    children = directory.children()
    current = [set(m.version_at(now).departments) for m in directory.members.values()]
    if parent is None:
        level = sorted(
            d.id
            for d in directory.departments.values()
            if d.parent is None or d.parent not in directory.departments
        )
    else:
        level = sorted(children.get(parent, []))
    out: list[DepartmentFigures] = []
    for department_id in level:
        department = directory.departments[department_id]
        page = department_usage(
            store,
            directory,
            DepartmentUsageQuery(department_id, first_day, last_day, 1, len(window)),
        )
        by_day = {d.usage.day: d for d in page.days}
        figures = Figures()
        for d in page.days:
            t = d.totals
            figures += Figures(
                t.chat_turns,
                t.count_suggested_completion,
                t.count_accepted_completion,
                t.lines_suggested_completion,
                t.lines_accepted_completion,
            )
        subtree = directory.subtree(department_id)
        out.append(
            DepartmentFigures(
                id=department_id,
                name=department.name,
                parent=department.parent,
                children=len(children.get(department_id, [])),
                members=sum(1 for ds in current if not subtree.isdisjoint(ds)),
                daily_active=[
                    by_day[d].usage.active_developers if d in by_day else 0 for d in window
                ],
                figures=figures,
            )
        )
    return out


# -- members --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberFigures:
    id: str
    name: str
    email: str
    developer: bool
    active_days: int
    figures: Figures
    last_active_us: int | None


def department_members(
    store: EventStore,
    directory: Directory,
    department_id: str,
    first_day: date,
    last_day: date,
    now: datetime,
) -> list[MemberFigures]:
    """The members now in ``department_id``'s subtree, each with its usage over the window
    while in that subtree (the per-member usage API's function), by id."""
    subtree = directory.subtree(department_id)
    rows = _all_member_days(
        store, directory, MemberUsageQuery(first_day, last_day, department_id=department_id)
    )
    latest = store.latest_event_times(directory.org.id)
    per_member: dict[str, Figures] = {}
    active_days: Counter[str] = Counter()
    for row in rows:
        per_member[row.member] = per_member.get(row.member, Figures()) + figures_of(
            row.completion, row.chatting
        )
        active_days[row.member] += 1
    out = []
    for member_id in sorted(directory.members):
        member = directory.members[member_id]
        version = member.version_at(now)
        if subtree.isdisjoint(version.departments):
            continue
        out.append(
            MemberFigures(
                id=member_id,
                name=member.name,
                email=member.email,
                developer=version.developer,
                active_days=active_days[member_id],
                figures=per_member.get(member_id, Figures()),
                last_active_us=latest.get(member_id),
            )
        )
    return out


def _all_member_days(
    store: EventStore, directory: Directory, query: MemberUsageQuery
) -> list[MemberDay]:
    """Every (day, member) row of ``query`` (all pages)."""
    rows: list[MemberDay] = []
    page = 1
    while True:
        found = member_usage(
            store,
            directory,
            MemberUsageQuery(
                query.first_day, query.last_day, query.user_id, query.department_id, page, 1000
            ),
        )
        rows.extend(r.usage for r in found.rows)
        if page >= found.total_pages:
            return rows
        page += 1


@dataclass(frozen=True)
class Breakdown:
    """One IDE's or language's sums over the window."""

    key: str
    figures: Figures
    lines_changed: int = 0


@dataclass(frozen=True)
class MemberDetail:
    id: str
    name: str
    email: str
    developer: bool
    departments: tuple[str, ...]
    last_active_us: int | None
    days: list[tuple[date, datetime, Figures]]
    by_ide: list[Breakdown]
    by_language: list[Breakdown]

    @property
    def totals(self) -> Figures:
        return sum((f for _, _, f in self.days), Figures())


def member_detail(
    store: EventStore,
    directory: Directory,
    member_id: str,
    first_day: date,
    last_day: date,
    now: datetime,
) -> MemberDetail:
    """One member's usage per day of the window (zeros included), by IDE and by language,
    and the time of its latest event of any type. ``NotFound`` for an unknown member."""
    tz = directory.org.timezone
    rows = {
        r.day: r
        for r in _all_member_days(
            store, directory, MemberUsageQuery(first_day, last_day, user_id=member_id)
        )
    }
    per_day = []
    ide: dict[str, Figures] = {}
    language: dict[str, Figures] = {}
    changed: Counter[str] = Counter()
    for day in days(first_day, last_day):
        row = rows.get(day)
        per_day.append(
            (
                day,
                day_start(day, tz),
                figures_of(row.completion, row.chatting) if row else Figures(),
            )
        )
        if row is None:
            continue
        for c in row.completion:
            f = figures_of([c], [])
            ide[c.ide] = ide.get(c.ide, Figures()) + f
            language[c.language] = language.get(c.language, Figures()) + f
        for chat in row.chatting:
            ide[chat.ide] = ide.get(chat.ide, Figures()) + Figures(chat_turns=chat.turns)
        for code in row.coding:
            language.setdefault(code.language, Figures())
            changed[code.language] += code.lines_changed
    member = directory.members[member_id]
    version = member.version_at(now)
    return MemberDetail(
        id=member_id,
        name=member.name,
        email=member.email,
        developer=version.developer,
        departments=version.departments,
        last_active_us=store.latest_event_times(directory.org.id).get(member_id),
        days=per_day,
        by_ide=[Breakdown(k, ide[k]) for k in sorted(ide)],
        by_language=[Breakdown(k, language[k], changed[k]) for k in sorted(language)],
    )


# -- seat use -------------------------------------------------------------------------------


@dataclass(frozen=True)
class InactiveMember:
    id: str
    name: str
    email: str
    developer: bool
    departments: tuple[str, ...]
    last_active_us: int | None


def inactive_members(
    store: EventStore, directory: Directory, now: datetime, idle_days: int
) -> list[InactiveMember]:
    """The members not deleted at ``now`` whose latest event of any type (the members listing's
    ``visited``) lies more than ``idle_days`` days before ``now``, or who have none; by id."""
    listing = list_members(store, directory, now, 1, max(1, len(directory.members)))
    cutoff = to_micros(now - timedelta(days=idle_days))
    return [
        InactiveMember(
            id=row.member.id,
            name=row.member.name,
            email=row.member.email,
            developer=row.developer,
            departments=row.departments,
            last_active_us=row.visited_us,
        )
        for row in listing.rows
        if not row.deleted and (row.visited_us is None or row.visited_us < cutoff)
    ]
