"""Environment statistics: users, developers and workspaces per day, ISO week and month.

Totals come from the directory history (in memory); activity is counted by the store.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import groupby
from typing import Literal, NamedTuple, TypeVar

from tally.engine.memo import derived
from tally.errors import BadRequest
from tally.model.directory import Directory, Member, Workspace
from tally.stores.base import ActiveMembers, EventStore, MemberSpan
from tally.timeutil import day_end, day_start, days, local_day, localize, to_micros

StatsType = Literal["users", "developers", "workspaces"]
STATS_TYPES: tuple[StatsType, ...] = ("users", "developers", "workspaces")
WORKSPACE_ACTIVITY = "workspace_activity"
P = TypeVar("P")


class Month(NamedTuple):
    year: int
    month: int


class Week(NamedTuple):
    """An ISO 8601 week; ``year`` is the ISO week-year."""

    year: int
    week: int


@dataclass(frozen=True)
class StatsQuery:
    stats_type: StatsType
    #: Naive values are wall-clock times, read in each organization's own zone.
    start: datetime
    end: datetime
    #: Without ``org_domain``: workspace keys are then ``<org id>/<workspace id>``.
    environment_wide: bool


@dataclass(frozen=True)
class MemberStats:
    """The ``users`` or ``developers`` figures, rows ascending in time."""

    total: list[tuple[date, int]]
    monthly_active: list[tuple[Month, int]]
    per_day: list[tuple[date, int]]
    per_week: list[tuple[Week, int]]
    per_month: list[tuple[Month, int]]


@dataclass(frozen=True)
class WorkspaceStats:
    """The ``workspaces`` figures: every row holds one figure per key of ``keys`` (sorted), in
    that order (rows of figures rather than dictionaries: the facade builds each answer row
    once, with its date keys)."""

    keys: list[str]
    total: list[tuple[date, Sequence[int]]]
    monthly_active: list[tuple[Month, Sequence[int]]]
    daily_active_per_month: list[tuple[Month, Sequence[int]]]


def environment_statistics(
    store: EventStore, directories: Sequence[Directory], query: StatsQuery, *, max_days: int
) -> MemberStats | WorkspaceStats:
    """The figures of ``query`` over the organizations of ``directories``, summed.

    Raises ``BadRequest`` when ``end`` lies before ``start`` or the window is longer than
    ``max_days`` days, in any organization's zone.
    """
    windows = [
        OrgWindow.between(d, *window_days(query.start, query.end, d.org.timezone, max_days))
        for d in directories
    ]
    if not windows:  # an empty environment still checks its parameters
        window_days(query.start, query.end, "UTC", max_days)
    if query.stats_type == "workspaces":
        return _workspace_stats(store, windows, query.environment_wide)
    return _member_stats(store, windows, developers=query.stats_type == "developers")


def window_days(start: datetime, end: datetime, tz: str, max_days: int) -> tuple[date, date]:
    """The first and last day of the window from ``start`` to ``end`` in zone ``tz``."""
    start, end = localize(start, tz), localize(end, tz)
    if end < start:
        raise BadRequest("end must not be before start.")
    first, last = local_day(start, tz), local_day(end, tz)
    if (last - first).days >= max_days:
        raise BadRequest(f"The window from start to end may span at most {max_days} days.")
    return first, last


# -- one organization's window -------------------------------------------------------------


@dataclass(frozen=True)
class OrgWindow:
    """One organization's days of the window, and each day's end M (as ``timeutil.day_end``)."""

    directory: Directory
    days: list[date]
    ends: list[datetime]

    @classmethod
    def between(cls, directory: Directory, first: date, last: date) -> OrgWindow:
        tz = directory.org.timezone
        window = days(first, last)
        return cls(directory, window, [day_end(d, tz) for d in window])

    @property
    def start(self) -> datetime:
        return day_start(self.days[0], self.directory.org.timezone)

    @property
    def end(self) -> datetime:
        return self.ends[-1]

    def run(self, after: datetime | None, through: datetime | None) -> range:
        """Indexes of the days whose M satisfies ``after < M <= through`` (``None``: open).

        Every "at the end of day D" rule of the directory is one such run: a thing exists at M
        when ``created_at < M <= deleted_at``, a membership is active when ``since < M <=
        until``, a member version is the one in effect just before M when ``effective_at < M <=
        next effective_at``.
        """
        low = 0 if after is None else bisect_right(self.ends, after)
        high = len(self.ends) if through is None else bisect_right(self.ends, through)
        return range(low, max(low, high))

    @property
    def key(self) -> tuple[date, date]:
        """What distinguishes this window's derived facts within one directory snapshot."""
        return self.days[0], self.days[-1]

    def member_totals(self, *, developers: bool) -> list[int]:
        """Members that exist (and, for ``developers``, are developers) at each day's end."""
        counts = _DayCounts(len(self.days))
        for member in self.directory.members.values():
            exists = self.run(member.created_at, member.deleted_at)
            if not developers:
                counts.add(exists)
                continue
            for since, until in _developer_periods(member):  # disjoint: no double count
                counts.add(_intersect(exists, self.run(since, until)))
        return counts.values()

    def workspace_totals(self, workspace: Workspace) -> list[int]:
        """Members of ``workspace`` at each day's end (0 while it does not exist)."""
        exists = self.run(workspace.created_at, workspace.deleted_at)
        by_member: dict[str, list[range]] = {}
        for membership in workspace.members:
            run = _intersect(exists, self.run(membership.since, membership.until))
            by_member.setdefault(membership.member, []).append(run)
        counts = _DayCounts(len(self.days))
        for runs in by_member.values():  # a member listed twice is still one member
            for run in _merge(runs):
                counts.add(run)
        return counts.values()

    def workspace_columns(self) -> dict[str, tuple[bool, list[int]]]:
        """Per workspace: whether it existed at some moment of the window, and its members at
        each day's end (``workspace_totals``), derived once per snapshot and window."""

        def columns() -> dict[str, tuple[bool, list[int]]]:
            return {
                workspace.id: (_existed_during(workspace, self), self.workspace_totals(workspace))
                for workspace in self.directory.workspaces.values()
            }

        return derived(self.directory, ("workspace columns", *self.key), columns)

    def active(
        self,
        store: EventStore,
        *,
        developers: bool = False,
        per_workspace: bool = False,
        daily: bool = True,
    ) -> ActiveMembers:
        spans = (
            derived(self.directory, ("developer spans", *self.key), lambda: _developer_spans(self))
            if developers
            else None
        )
        return store.active_members(
            self.directory.org.id,
            self.days[0],
            self.days[-1],
            event_types=(WORKSPACE_ACTIVITY,) if developers or per_workspace else None,
            during=spans,
            per_workspace=per_workspace,
            cohort="developers" if developers else None,
            daily=daily,
        )


def _developer_periods(member: Member) -> Iterator[tuple[datetime | None, datetime | None]]:
    """From when until when each of the member's developer versions holds (``None``: open).

    The first version also holds before its ``effective_at``. An event at t reads the version
    with ``since <= t < until``; the end M of a day the one with ``since < M <= until``.
    """
    versions = member.versions
    for i, version in enumerate(versions):
        if version.developer:
            since = None if i == 0 else version.effective_at
            until = versions[i + 1].effective_at if i + 1 < len(versions) else None
            yield since, until


def _developer_spans(window: OrgWindow) -> list[MemberSpan]:
    """When, inside the window, each member is a developer."""
    return developer_spans(window.directory, to_micros(window.start), to_micros(window.end))


def developer_spans(directory: Directory, start_us: int, end_us: int) -> list[MemberSpan]:
    """When, between ``start_us`` and ``end_us``, each member is a developer."""
    spans = []
    for member in directory.members.values():
        for since, until in _developer_periods(member):
            low = start_us if since is None else max(start_us, to_micros(since))
            high = end_us if until is None else min(end_us, to_micros(until))
            if low < high:
                spans.append(MemberSpan(member.id, low, high))
    return spans


# -- users and developers ------------------------------------------------------------------


def _member_stats(store: EventStore, windows: list[OrgWindow], *, developers: bool) -> MemberStats:
    total: Counter[date] = Counter()
    per_day: Counter[date] = Counter()
    monthly: Counter[Month] = Counter()
    for window in windows:
        totals = derived(
            window.directory,
            ("member totals", *window.key, developers),
            lambda: window.member_totals(developers=developers),  # noqa: B023  (called at once)
        )
        total.update(dict(zip(window.days, totals, strict=True)))
        active = window.active(store, developers=developers)
        per_day.update({day: n for (_, day), n in active.per_day.items()})
        monthly.update({Month(y, m): n for (_, y, m), n in active.per_month.items()})
    all_days = _union_days(windows)
    daily = [(d, per_day[d]) for d in all_days]
    return MemberStats(
        total=[(d, total[d]) for d in all_days],
        monthly_active=[(m, monthly[m]) for m in _months(all_days)],
        per_day=daily,
        per_week=_means(daily, _week_of),
        per_month=_means(daily, _month_of),
    )


# -- workspaces ----------------------------------------------------------------------------


def _workspace_stats(
    store: EventStore, windows: list[OrgWindow], environment_wide: bool
) -> WorkspaceStats:
    """Column-wise: one list of totals per workspace, aligned to the days (a year of 300
    workspaces is 100,000 figures; building them as per-day lookups dominated the answer's
    time). The daily actives are only wanted as monthly means, so they come summed by month."""
    all_days = _union_days(windows)
    position = {d: i for i, d in enumerate(all_days)}
    totals: dict[str, list[int]] = {}
    monthly: dict[tuple[str, int, int], int] = {}
    day_sums: dict[tuple[str, int, int], int] = {}
    keys: set[str] = set()
    for window in windows:
        prefix = f"{window.directory.org.id}/" if environment_wide else ""
        offset = position[window.days[0]]  # a window's days are consecutive
        for workspace_id, (existed, counts) in window.workspace_columns().items():
            key = prefix + workspace_id
            if existed:
                keys.add(key)
            column = totals.setdefault(key, [0] * len(all_days))
            column[offset : offset + len(counts)] = counts
        active = window.active(store, per_workspace=True, daily=False)
        if prefix:
            monthly.update(((prefix + ws, y, m), n) for (ws, y, m), n in active.per_month.items())
            day_sums.update(((prefix + ws, y, m), n) for (ws, y, m), n in active.day_sums.items())
        else:
            monthly.update(active.per_month)
            day_sums.update(active.day_sums)
        keys.update(prefix + ws for ws, _, _ in active.per_month)
    ordered = sorted(keys)
    zeros = [0] * len(all_days)
    columns = [totals.get(k, zeros) for k in ordered]
    months = _month_runs(all_days)
    active_rows, sum_rows = (
        _month_grid(months, ordered, monthly),
        _month_grid(months, ordered, day_sums),
    )
    return WorkspaceStats(
        keys=ordered,
        total=list(zip(all_days, zip(*columns, strict=True), strict=True))
        if ordered
        else [(d, ()) for d in all_days],
        monthly_active=[(m, row) for (m, _), row in zip(months, active_rows, strict=True)],
        daily_active_per_month=[
            (m, [_rounded_mean(total, n) for total in row])
            for (m, n), row in zip(months, sum_rows, strict=True)
        ],
    )


def _month_grid(
    months: list[tuple[Month, int]], keys: list[str], figures: dict[tuple[str, int, int], int]
) -> list[list[int]]:
    """One row per month, one figure per key (0 where ``figures`` has none)."""
    column = {key: i for i, key in enumerate(keys)}
    rows = {(month.year, month.month): [0] * len(keys) for month, _ in months}
    for (key, year, month), n in figures.items():  # ~4,000 figures a year: no Month() each
        rows[year, month][column[key]] = n
    return list(rows.values())


def _month_runs(all_days: list[date]) -> list[tuple[Month, int]]:
    """Each month of the (ascending) days, with how many of the days it holds."""
    return [(month, len(list(group))) for month, group in groupby(all_days, key=_month_of)]


def _mean(counts: Sequence[int]) -> int:
    """The mean of the daily counts, rounded half up (exactly)."""
    return _rounded_mean(sum(counts), len(counts))


def _rounded_mean(total: int, n: int) -> int:
    """``total / n`` rounded half up, in integers."""
    return (2 * total + n) // (2 * n)


def _existed_during(workspace: Workspace, window: OrgWindow) -> bool:
    """The workspace existed at some moment of the window (not only at a day's end)."""
    return workspace.created_at < window.end and (
        workspace.deleted_at is None or workspace.deleted_at >= window.start
    )


# -- day runs, periods and means -----------------------------------------------------------


class _DayCounts:
    """Counts per day index, added a run of days at a time."""

    def __init__(self, size: int) -> None:
        self._steps = [0] * (size + 1)

    def add(self, run: range) -> None:
        if run:
            self._steps[run.start] += 1
            self._steps[run.stop] -= 1

    def values(self) -> list[int]:
        out, current = [], 0
        for step in self._steps[:-1]:
            current += step
            out.append(current)
        return out


def _intersect(a: range, b: range) -> range:
    low = max(a.start, b.start)
    return range(low, max(low, min(a.stop, b.stop)))


def _merge(runs: Iterable[range]) -> list[range]:
    merged: list[range] = []
    for run in sorted((r for r in runs if r), key=lambda r: r.start):
        if merged and run.start <= merged[-1].stop:
            last = merged.pop()
            run = range(last.start, max(last.stop, run.stop))
        merged.append(run)
    return merged


def _union_days(windows: list[OrgWindow]) -> list[date]:
    return sorted({d for w in windows for d in w.days})


def _month_of(day: date) -> Month:
    return Month(day.year, day.month)


def _week_of(day: date) -> Week:
    iso = day.isocalendar()
    return Week(iso.year, iso.week)


def _months(all_days: list[date]) -> list[Month]:
    return list(dict.fromkeys(_month_of(d) for d in all_days))


def _means(daily: list[tuple[date, int]], period_of: Callable[[date], P]) -> list[tuple[P, int]]:
    """The mean of the daily counts over each period's days, rounded half up (exactly)."""
    return [
        (period, _mean([n for _, n in rows]))
        for period, rows in groupby(daily, key=lambda row: period_of(row[0]))
    ]
