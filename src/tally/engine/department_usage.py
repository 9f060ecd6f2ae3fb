"""Department usage: which members count for a department subtree, and when, as store spans;
then the day rows of the AI assistant's usage, their totals, and one page of them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

import msgspec

from tally.engine.memo import derived
from tally.errors import NotFound
from tally.model.directory import Directory, Member, MemberVersion
from tally.stores.base import AssistantDay, EventStore, MemberSpan
from tally.timeutil import day_end, day_start, to_micros


@dataclass(frozen=True)
class DepartmentUsageQuery:
    """Usage of ``department_id`` and its sub-departments on the org days ``first_day ..
    last_day`` (inclusive), page ``page`` (from 1) of ``per_page`` day rows."""

    department_id: str
    first_day: date
    last_day: date
    page: int = 1
    per_page: int = 100


class UsageTotals(msgspec.Struct, frozen=True):
    """The day's totals: sums over the breakdowns."""

    chat_turns: int
    chat_turns_accepted: int
    count_suggested_completion: int
    count_accepted_completion: int
    lines_suggested_completion: int
    lines_accepted_completion: int
    lines_accepted: int
    lines_changed: int
    lines_accepted_chat: int


class DepartmentDay(msgspec.Struct, frozen=True):
    """One day row: the store's usage, the local midnight starting the day, and the totals."""

    usage: AssistantDay
    starts_at: datetime
    totals: UsageTotals


@dataclass(frozen=True)
class DepartmentUsagePage:
    """The requested page of day rows; ``total`` counts every active day of the window."""

    days: list[DepartmentDay]
    total: int
    total_pages: int


def department_usage(
    store: EventStore, directory: Directory, query: DepartmentUsageQuery
) -> DepartmentUsagePage:
    """Answer ``query`` for ``directory``'s organization; ``NotFound`` for an unknown department."""
    if query.department_id not in directory.departments:
        raise NotFound(f'department "{query.department_id}" does not exist')
    tz = directory.org.timezone
    window = (to_micros(day_start(query.first_day, tz)), to_micros(day_end(query.last_day, tz)))
    spans = derived(
        directory,
        ("department spans", query.department_id, query.first_day, query.last_day),
        lambda: subtree_spans(directory, query.department_id, *window),
    )
    active = store.assistant_usage(
        directory.org.id, spans, query.first_day, query.last_day, department=query.department_id
    )
    offset = (query.page - 1) * query.per_page
    days = [
        DepartmentDay(usage=day, starts_at=day_start(day.day, tz), totals=totals(day))
        for day in active[offset : offset + query.per_page]
    ]
    total_pages = -(-len(active) // query.per_page)
    return DepartmentUsagePage(days=days, total=len(active), total_pages=total_pages)


def subtree_spans(
    directory: Directory, department_id: str, from_us: int, to_us: int
) -> list[MemberSpan]:
    """The spans of every member while in ``department_id``'s subtree."""
    subtree = directory.subtree(department_id)
    index = derived(directory, "members by department", lambda: _members_by_department(directory))
    candidates = {m.id: m for d in subtree for m in index.get(d, ())}
    return [
        span
        for member in candidates.values()
        for span in member_spans(member, subtree, from_us, to_us)
    ]


def _members_by_department(directory: Directory) -> dict[str, list[Member]]:
    """Each department's members, counting every version (a member who ever was there)."""
    index: dict[str, list[Member]] = {}
    for member in directory.members.values():
        for department in {d for v in member.versions for d in v.departments}:
            index.setdefault(department, []).append(member)
    return index


def member_spans(
    member: Member, subtree: frozenset[str], from_us: int, to_us: int
) -> list[MemberSpan]:
    """The spans of ``from_us .. to_us`` during which ``member`` belongs to ``subtree``.

    A version counts when one of its departments lies in the subtree. Adjacent spans are
    merged; spans never overlap.
    """
    spans: list[MemberSpan] = []
    for lo, hi, version in version_intervals(member, from_us, to_us):
        if not subtree.isdisjoint(version.departments):
            _extend(spans, MemberSpan(member.id, lo, hi))
    return spans


def department_spans(directory: Directory, from_us: int, to_us: int) -> dict[str, list[MemberSpan]]:
    """:func:`subtree_spans` of every department at once, keyed by department.

    A member belongs to the subtree of each of its departments and of each department above
    them; one pass over the members yields every subtree (what a per-department rollup needs).
    """
    above = derived(directory, "departments above", lambda: _departments_above(directory))
    spans: dict[str, list[MemberSpan]] = {}
    for member in directory.members.values():
        for lo, hi, version in version_intervals(member, from_us, to_us):
            roots = {r for d in version.departments for r in above.get(d, (d,))}
            for root in roots:
                _extend(spans.setdefault(root, []), MemberSpan(member.id, lo, hi))
    return spans


def version_intervals(
    member: Member, from_us: int, to_us: int
) -> Iterator[tuple[int, int, MemberVersion]]:
    """Each version's time in effect, clipped to ``from_us .. to_us`` (empty ones left out).

    Version ``i`` is in effect from its ``effective_at`` until the next version's (the first
    one also before its own, as ``Member.version_at`` reads it).
    """
    versions = member.versions
    starts = [from_us, *(to_micros(v.effective_at) for v in versions[1:])]
    ends = [*starts[1:], to_us]
    for version, start, end in zip(versions, starts, ends, strict=True):
        lo, hi = max(start, from_us), min(end, to_us)
        if lo < hi:
            yield lo, hi, version


def _extend(spans: list[MemberSpan], span: MemberSpan) -> None:
    """Append ``span``, merged with the last span when it is the same member's and adjacent."""
    if spans and spans[-1].member == span.member and spans[-1].to_us == span.from_us:
        span = MemberSpan(span.member, spans.pop().from_us, span.to_us)
    spans.append(span)


def _departments_above(directory: Directory) -> dict[str, tuple[str, ...]]:
    """Each department with the chain of departments above it: the subtrees it lies in."""
    return {d: (d, *directory.ancestors(d)) for d in directory.departments}


def totals(day: AssistantDay) -> UsageTotals:
    """Sum the breakdowns (one pass over each list: this runs for every row of every page)."""
    turns = turns_accepted = 0
    for chat in day.chatting:
        turns += chat.turns
        turns_accepted += chat.turns_accepted
    suggested = accepted = lines_suggested = lines_accepted_completion = 0
    for c in day.completion:
        suggested += c.count_suggested
        accepted += c.count_accepted
        lines_suggested += c.lines_suggested
        lines_accepted_completion += c.lines_accepted
    lines_accepted = lines_changed = lines_accepted_chat = 0
    for code in day.coding:
        lines_accepted += code.lines_accepted
        lines_changed += code.lines_changed
        lines_accepted_chat += code.lines_accepted_chat
    return UsageTotals(
        chat_turns=turns,
        chat_turns_accepted=turns_accepted,
        count_suggested_completion=suggested,
        count_accepted_completion=accepted,
        lines_suggested_completion=lines_suggested,
        lines_accepted_completion=lines_accepted_completion,
        lines_accepted=lines_accepted,
        lines_changed=lines_changed,
        lines_accepted_chat=lines_accepted_chat,
    )
