"""Per-member usage: the AI assistant's usage of each member per org day (of one member, of a
department subtree at the events' times, or of the whole organization), one page of it; and
the directory listings of the same family (members with their last visit, departments)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Generic, TypeVar

from tally.engine.department_usage import subtree_spans
from tally.engine.memo import derived
from tally.errors import NotFound
from tally.model.directory import Department, Directory, Member
from tally.stores.base import EventStore, MemberDay, MemberSpan
from tally.timeutil import day_end, day_start, to_micros

T = TypeVar("T")


@dataclass(frozen=True)
class MemberUsageQuery:
    """Usage on the org days ``first_day .. last_day`` (inclusive) of ``user_id`` (wins when
    given), else of ``department_id``'s subtree, else of the whole organization; page ``page``
    (from 1) of ``per_page`` (day, member) rows."""

    first_day: date
    last_day: date
    user_id: str | None = None
    department_id: str | None = None
    page: int = 1
    per_page: int = 100


@dataclass(frozen=True)
class MemberUsageDay:
    """One (day, member) row: the store's record, the local midnight starting the day, and
    the member's totals that day."""

    usage: MemberDay
    starts_at: datetime
    chat_turns: int
    lines_accepted: int
    lines_changed: int


@dataclass(frozen=True)
class Page(Generic[T]):
    """The requested page of rows; ``total`` counts the rows of every page."""

    rows: list[T]
    total: int
    total_pages: int


def member_usage(
    store: EventStore, directory: Directory, query: MemberUsageQuery
) -> Page[MemberUsageDay]:
    """Answer ``query`` for ``directory``'s organization; ``NotFound`` for an unknown member
    or department (the department is not looked up when a member is given)."""
    tz = directory.org.timezone
    window = (to_micros(day_start(query.first_day, tz)), to_micros(day_end(query.last_day, tz)))
    spans = _spans(directory, query, *window)
    offset = (query.page - 1) * query.per_page
    found = store.member_usage(
        directory.org.id,
        spans,
        query.first_day,
        query.last_day,
        offset=offset,
        limit=query.per_page,
    )
    rows = [
        MemberUsageDay(
            usage=day,
            starts_at=day_start(day.day, tz),
            chat_turns=sum(c.turns for c in day.chatting),
            lines_accepted=sum(c.lines_accepted for c in day.coding),
            lines_changed=sum(c.lines_changed for c in day.coding),
        )
        for day in found.days
    ]
    return Page(rows, found.total, _pages(found.total, query.per_page))


def _spans(
    directory: Directory, query: MemberUsageQuery, from_us: int, to_us: int
) -> list[MemberSpan]:
    """Whose events count, and when: the member all the window long; each member while in
    the department's subtree; or every member all the window long."""
    if query.user_id is not None:
        if query.user_id not in directory.members:
            raise NotFound(f'member "{query.user_id}" does not exist')
        return [MemberSpan(query.user_id, from_us, to_us)]
    if query.department_id is not None:
        department = query.department_id
        if department not in directory.departments:
            raise NotFound(f'department "{department}" does not exist')
        return derived(
            directory,
            ("department spans", department, query.first_day, query.last_day),
            lambda: subtree_spans(directory, department, from_us, to_us),
        )
    return [MemberSpan(member, from_us, to_us) for member in sorted(directory.members)]


# -- the directory listings ------------------------------------------------------------------


@dataclass(frozen=True)
class MemberListing:
    """A member as the listing shows it: current departments and role, status, last visit."""

    member: Member
    departments: tuple[str, ...]
    developer: bool
    deleted: bool
    visited_us: int | None


def list_members(
    store: EventStore, directory: Directory, now: datetime, page: int, per_page: int
) -> Page[MemberListing]:
    """The organization's members (deleted ones too) by id in code-point order, as of ``now``;
    the last visit is the member's latest event of any type."""
    ids = sorted(directory.members)
    chosen = ids[(page - 1) * per_page : page * per_page]
    latest = store.latest_event_times(directory.org.id) if chosen else {}
    rows = []
    for member_id in chosen:
        member = directory.members[member_id]
        version = member.version_at(now)
        rows.append(
            MemberListing(
                member=member,
                departments=version.departments,
                developer=version.developer,
                deleted=member.deleted_at is not None and member.deleted_at <= now,
                visited_us=latest.get(member_id),
            )
        )
    return Page(rows, len(ids), _pages(len(ids), per_page))


@dataclass(frozen=True)
class DepartmentListing:
    department: Department
    has_children: bool


def list_departments(
    directory: Directory, parent_id: str | None, page: int, per_page: int
) -> Page[DepartmentListing]:
    """The direct children of ``parent_id`` (``None``: the roots) by id in code-point order."""
    if parent_id is not None and parent_id not in directory.departments:
        raise NotFound(f'department "{parent_id}" does not exist')
    children = derived(directory, "department children", directory.children)
    ids = sorted(
        children.get(parent_id, [])
        if parent_id is not None
        else [d.id for d in directory.departments.values() if d.parent is None]
    )
    chosen = ids[(page - 1) * per_page : page * per_page]
    rows = [DepartmentListing(directory.departments[d], bool(children.get(d))) for d in chosen]
    return Page(rows, len(ids), _pages(len(ids), per_page))


def get_department(directory: Directory, department_id: str) -> DepartmentListing:
    department = directory.departments.get(department_id)
    if department is None:
        raise NotFound(f'department "{department_id}" does not exist')
    children = derived(directory, "department children", directory.children)
    return DepartmentListing(department, bool(children.get(department_id)))


def _pages(total: int, per_page: int) -> int:
    return -(-total // per_page)
