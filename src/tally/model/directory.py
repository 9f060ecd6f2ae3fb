"""The directory: small, slow-changing, and versioned where the contract says so.

A :class:`Directory` is an immutable snapshot of one organization that answers every
"as of time t" question in memory; stores load it, the engine asks it.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

import msgspec

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
#: Control characters (C0, DEL, C1) are never part of an id or a name: PostgreSQL text cannot
#: hold a NUL, and none of them can be shown or typed back by an admin.
CONTROL = "\x00-\x1f\x7f-\x9f"
IDENTIFIER_PATTERN = f"^[^/\\s{CONTROL}][^/{CONTROL}]*$"
IDENTIFIER_RULE = (
    "1 to 200 characters, without a slash or control characters, not starting with white space"
)
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=IDENTIFIER_PATTERN)]
Name = Annotated[str, msgspec.Meta(max_length=500, pattern=f"^[^{CONTROL}]*$")]


def is_identifier(value: str) -> bool:
    """Whether ``value`` may name a directory object (an org, department, member, ...)."""
    return 1 <= len(value) <= 200 and re.match(IDENTIFIER_PATTERN, value) is not None


DEFAULT_TIMEZONE = "Asia/Shanghai"
#: The range of instants Tally accepts anywhere (directory times and event times): far-off
#: years would overflow the calendar arithmetic of a day in some time zone.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class Organization(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    domain: str
    timezone: str = DEFAULT_TIMEZONE


class Department(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    parent: str | None = None


class MemberVersion(msgspec.Struct, frozen=True, kw_only=True):
    """The versioned part of a member: in effect from ``effective_at`` until the next version."""

    effective_at: datetime
    developer: bool
    departments: tuple[str, ...]


class Member(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    email: str
    created_at: datetime
    deleted_at: datetime | None
    #: Ordered by ``effective_at``, never empty.
    versions: tuple[MemberVersion, ...]

    def version_at(self, instant: datetime) -> MemberVersion:
        """The version in effect at ``instant`` (``effective_at <= instant``), else the first."""
        times = [v.effective_at for v in self.versions]
        i = bisect.bisect_right(times, instant) - 1
        return self.versions[max(i, 0)]

    def version_before(self, instant: datetime) -> MemberVersion:
        """The version in effect just before ``instant`` (used for "at the end of day D")."""
        times = [v.effective_at for v in self.versions]
        i = bisect.bisect_left(times, instant) - 1
        return self.versions[max(i, 0)]

    def exists_at(self, instant: datetime) -> bool:
        return exists_at(self.created_at, self.deleted_at, instant)


def first_divergence(
    old: Sequence[MemberVersion],
    new: Sequence[MemberVersion],
    fact: Callable[[MemberVersion], object],
) -> datetime | None:
    """The earliest instant from which ``fact`` of the version in effect differs between two
    histories of one member: ``EARLIEST`` when they differ from the start, ``None`` when never.

    A history's first version also holds before its own ``effective_at``, so two histories
    agree until their first versions' facts differ or one of them changes.
    """
    if not old or not new:
        return None if not old and not new else EARLIEST
    if fact(old[0]) != fact(new[0]):
        return EARLIEST
    changes = sorted({v.effective_at for v in (*old[1:], *new[1:])})
    old_times = [v.effective_at for v in old]
    new_times = [v.effective_at for v in new]
    for instant in changes:
        before = old[max(bisect.bisect_right(old_times, instant) - 1, 0)]
        after = new[max(bisect.bisect_right(new_times, instant) - 1, 0)]
        if fact(before) != fact(after):
            return instant
    return None


class WorkspaceMembership(msgspec.Struct, frozen=True, kw_only=True):
    member: str
    since: datetime
    until: datetime | None = None

    def active_at(self, instant: datetime) -> bool:
        return self.since < instant and (self.until is None or self.until >= instant)


class Workspace(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    created_at: datetime
    deleted_at: datetime | None
    members: tuple[WorkspaceMembership, ...] = ()

    def exists_at(self, instant: datetime) -> bool:
        return exists_at(self.created_at, self.deleted_at, instant)


class App(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    creator: str
    created_at: datetime
    deleted_at: datetime | None

    def exists_at(self, instant: datetime) -> bool:
        return exists_at(self.created_at, self.deleted_at, instant)


def exists_at(created_at: datetime, deleted_at: datetime | None, instant: datetime) -> bool:
    """The contract's existence rule at instant M: ``created_at < M`` and not deleted before M."""
    return created_at < instant and (deleted_at is None or deleted_at >= instant)


@dataclass(frozen=True, eq=False)
class Directory:
    """Everything the directory holds for one organization, as one immutable snapshot.

    Compared and hashed by identity, so facts derived from a snapshot can be kept beside it
    (``tally.engine.memo``)."""

    org: Organization
    departments: Mapping[str, Department] = field(default_factory=dict)
    members: Mapping[str, Member] = field(default_factory=dict)
    workspaces: Mapping[str, Workspace] = field(default_factory=dict)
    apps: Mapping[str, App] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        org: Organization,
        departments: Iterable[Department] = (),
        members: Iterable[Member] = (),
        workspaces: Iterable[Workspace] = (),
        apps: Iterable[App] = (),
    ) -> Directory:
        return cls(
            org=org,
            departments={d.id: d for d in departments},
            members={m.id: m for m in members},
            workspaces={w.id: w for w in workspaces},
            apps={a.id: a for a in apps},
        )

    def children(self) -> dict[str, list[str]]:
        tree: dict[str, list[str]] = {}
        for dept in self.departments.values():
            if dept.parent is not None:
                tree.setdefault(dept.parent, []).append(dept.id)
        return tree

    def subtree(self, department_id: str) -> frozenset[str]:
        """``department_id`` and every department below it."""
        tree = self.children()
        found: set[str] = set()
        stack = [department_id]
        while stack:
            current = stack.pop()
            if current in found:
                continue
            found.add(current)
            stack.extend(tree.get(current, ()))
        return frozenset(found)

    def ancestors(self, department_id: str) -> list[str]:
        """The chain of parents above ``department_id`` (nearest first)."""
        chain: list[str] = []
        current = self.departments.get(department_id)
        while current is not None and current.parent is not None and current.parent not in chain:
            chain.append(current.parent)
            current = self.departments.get(current.parent)
        return chain


# -- what clients send (the bodies of the directory PUTs) ----------------------------------


class OrgInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    domain: Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
    timezone: str = DEFAULT_TIMEZONE


class DepartmentInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    parent: Identifier | None = None


class MemberInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    email: Name = ""
    developer: bool = False
    departments: list[Identifier] = msgspec.field(default_factory=list)
    created_at: AwareDatetime | None = None
    deleted_at: AwareDatetime | None = None
    #: From when ``developer`` and ``departments`` hold; default: the time of the request.
    effective_at: AwareDatetime | None = None


class WorkspaceMemberInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    member: Identifier
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None


class WorkspaceInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    created_at: AwareDatetime | None = None
    deleted_at: AwareDatetime | None = None
    members: list[WorkspaceMemberInput] = msgspec.field(default_factory=list)


class AppInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    creator: Identifier
    created_at: AwareDatetime | None = None
    deleted_at: AwareDatetime | None = None
