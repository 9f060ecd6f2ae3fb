"""Directory writes with their rules (references exist, no cycles, versions by ``effective_at``)
and a per-organization snapshot cache that every reader shares."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from tally.errors import BadRequest, Conflict, NotFound
from tally.model.directory import (
    EARLIEST,
    IDENTIFIER_RULE,
    LATEST,
    App,
    AppInput,
    Department,
    DepartmentInput,
    Directory,
    Member,
    MemberInput,
    MemberVersion,
    Organization,
    OrgInput,
    Workspace,
    WorkspaceInput,
    WorkspaceMembership,
    first_divergence,
    is_identifier,
)
from tally.settings import Clock
from tally.stores.base import DirectoryStore, EventStore
from tally.timeutil import is_valid_zone, local_day


class DirectoryService:
    """Reads and writes the directory; writes are serialised, reads come from a snapshot."""

    def __init__(self, store: DirectoryStore, events: EventStore, clock: Clock) -> None:
        self._store = store
        self._events = events
        self._clock = clock
        self._lock = threading.RLock()
        self._snapshots: dict[str, Directory] = {}

    # -- reading ---------------------------------------------------------------------------
    def get(self, org_id: str) -> Directory | None:
        """The organization's directory snapshot (cached until the next write), or ``None``."""
        snapshot = self._snapshots.get(org_id)
        if snapshot is None:
            with self._lock:
                snapshot = self._store.load_directory(org_id)
                if snapshot is not None:
                    self._snapshots[org_id] = snapshot
        return snapshot

    def forget(self) -> None:
        """Drop every cached snapshot (another process sharing the store wrote the directory)."""
        with self._lock:
            self._snapshots = {}

    @contextmanager
    def held(self, org_id: str) -> Iterator[Directory]:
        """The organization's snapshot, with directory writes held off until the block ends
        (for work whose result must match the directory it was computed from)."""
        with self._lock:
            yield self.require(org_id)

    def require(self, org_id: str) -> Directory:
        snapshot = self.get(org_id)
        if snapshot is None:
            raise NotFound(f'organization "{org_id}" does not exist')
        return snapshot

    def orgs(self) -> list[Organization]:
        return self._store.list_orgs()

    def org_by_domain(self, domain: str) -> Organization | None:
        return next((o for o in self._store.list_orgs() if o.domain == domain), None)

    def _changed(self, org_id: str, **changes: Any) -> None:
        """Swap in a new snapshot with ``changes`` (a new org, or one object of a kind).

        Copying the cached snapshot's mappings keeps a bulk sync of N members linear in reads
        (reloading the whole directory after each write made it quadratic).
        """
        current = self._snapshots.get(org_id)
        if current is None:
            return
        updates: dict[str, Any] = {}
        for kind, obj in changes.items():
            if kind == "org":
                updates["org"] = obj
            else:
                updates[kind] = {**getattr(current, kind), obj.id: obj}
        self._snapshots[org_id] = dataclasses.replace(current, **updates)

    # -- writing ---------------------------------------------------------------------------
    def put_org(self, org_id: str, body: OrgInput, *, has_events: bool) -> Organization:
        _require_identifier("organization", org_id)
        if not is_valid_zone(body.timezone):
            raise BadRequest(
                f'timezone "{body.timezone}" is not an IANA time zone name', field="timezone"
            )
        with self._lock:
            holder = self.org_by_domain(body.domain)
            if holder is not None and holder.id != org_id:
                raise Conflict(f'domain "{body.domain}" belongs to another organization')
            current = self._store.get_org(org_id)
            if current and current.timezone != body.timezone and has_events:
                raise Conflict(
                    "the time zone of an organization that already has events cannot change:"
                    " its days would move under the stored statistics"
                )
            org = Organization(
                id=org_id, name=body.name, domain=body.domain, timezone=body.timezone
            )
            self._store.put_org(org)
            self._changed(org_id, org=org)
        return org

    def put_department(self, org_id: str, dept_id: str, body: DepartmentInput) -> Department:
        _require_identifier("department", dept_id)
        with self._lock:
            directory = self.require(org_id)
            if body.parent is not None:
                if body.parent not in directory.departments:
                    raise BadRequest(f'unknown parent department "{body.parent}"', field="parent")
                if body.parent == dept_id or dept_id in directory.ancestors(body.parent):
                    raise BadRequest(
                        f'department "{dept_id}" cannot be placed under its own descendant'
                        f' "{body.parent}"',
                        field="parent",
                    )
            department = Department(id=dept_id, name=body.name, parent=body.parent)
            current = directory.departments.get(dept_id)
            if current is not None and current.parent != body.parent:
                # The subtrees above it, old and new, change (on every day); those above both
                # keep it, and its own subtree and the others are as they were.
                before = set(directory.ancestors(dept_id))
                after = set() if body.parent is None else {body.parent}
                after |= set(directory.ancestors(body.parent)) if body.parent else set()
                self._events.invalidate_departments(org_id, before ^ after)
            self._store.put_department(org_id, department)
            self._changed(org_id, departments=department)
        return department

    def put_member(self, org_id: str, member_id: str, body: MemberInput) -> Member:
        _require_identifier("member", member_id)
        now = self._clock()
        with self._lock:
            directory = self.require(org_id)
            unknown = [d for d in body.departments if d not in directory.departments]
            if unknown:
                raise BadRequest(f'unknown department "{unknown[0]}"', field="departments")
            departments = tuple(dict.fromkeys(body.departments))
            current = directory.members.get(member_id)
            created_at = body.created_at or (current.created_at if current else now)
            _check_order(created_at, body.deleted_at, "created_at", "deleted_at")
            # A new member's first version holds from its creation; later PUTs from their time.
            default_effective = now if current else created_at
            if body.effective_at is not None:
                _check_order(body.effective_at, None, "effective_at", "effective_at")
            version = MemberVersion(
                effective_at=body.effective_at or default_effective,
                developer=body.developer,
                departments=departments,
            )
            member = Member(
                id=member_id,
                name=body.name,
                email=body.email,
                created_at=created_at,
                deleted_at=body.deleted_at,
                versions=merge_version(current.versions if current else (), version),
            )
            if current is not None:
                self._invalidate_moves(directory, current, member)
            self._store.put_member(org_id, member)
            self._changed(org_id, members=member)
        return member

    def _invalidate_moves(self, directory: Directory, old: Member, new: Member) -> None:
        """Mark stale the days on which ``new`` is in other departments, or a developer or not,
        unlike ``old`` (before the member is stored: a crash in between leaves days stale,
        never wrong)."""
        org, tz = directory.org.id, directory.org.timezone
        moved = first_divergence(old.versions, new.versions, lambda v: frozenset(v.departments))
        if moved is not None:
            self._events.invalidate_department_days(org, _first_day(moved, tz))
        developer = first_divergence(old.versions, new.versions, lambda v: v.developer)
        if developer is not None:
            self._events.invalidate_activity_days(org, _first_day(developer, tz))

    def put_workspace(self, org_id: str, workspace_id: str, body: WorkspaceInput) -> Workspace:
        _require_identifier("workspace", workspace_id)
        now = self._clock()
        with self._lock:
            directory = self.require(org_id)
            current = directory.workspaces.get(workspace_id)
            created_at = body.created_at or (current.created_at if current else now)
            _check_order(created_at, body.deleted_at, "created_at", "deleted_at")
            members = []
            for entry in body.members:
                if entry.member not in directory.members:
                    raise BadRequest(f'unknown member "{entry.member}"', field="members")
                since = entry.since or created_at
                _check_order(since, entry.until, "since", "until")
                members.append(
                    WorkspaceMembership(member=entry.member, since=since, until=entry.until)
                )
            workspace = Workspace(
                id=workspace_id,
                name=body.name,
                created_at=created_at,
                deleted_at=body.deleted_at,
                members=tuple(members),
            )
            self._store.put_workspace(org_id, workspace)
            self._changed(org_id, workspaces=workspace)
        return workspace

    def put_app(self, org_id: str, app_id: str, body: AppInput) -> App:
        _require_identifier("app", app_id)
        now = self._clock()
        with self._lock:
            directory = self.require(org_id)
            if body.creator not in directory.members:
                raise BadRequest(f'unknown member "{body.creator}"', field="creator")
            current = directory.apps.get(app_id)
            created_at = body.created_at or (current.created_at if current else now)
            _check_order(created_at, body.deleted_at, "created_at", "deleted_at")
            app = App(
                id=app_id,
                name=body.name,
                creator=body.creator,
                created_at=created_at,
                deleted_at=body.deleted_at,
            )
            self._store.put_app(org_id, app)
            self._changed(org_id, apps=app)
        return app


def merge_version(
    versions: tuple[MemberVersion, ...], new: MemberVersion
) -> tuple[MemberVersion, ...]:
    """Insert ``new`` by ``effective_at``, replacing a version with the same ``effective_at``.

    A PUT that changes nothing (same values as the version in effect then) adds no version, so
    repeating an idempotent PUT does not grow the history.
    """
    same_time = [v for v in versions if v.effective_at == new.effective_at]
    if not same_time and versions:
        in_effect = Member(
            id="",
            name="",
            email="",
            created_at=new.effective_at,
            deleted_at=None,
            versions=versions,
        ).version_at(new.effective_at)
        if (
            in_effect.effective_at <= new.effective_at
            and in_effect.developer == new.developer
            and in_effect.departments == new.departments
        ):
            return versions
    kept = [v for v in versions if v.effective_at != new.effective_at]
    return tuple(sorted([*kept, new], key=lambda v: v.effective_at))


def _first_day(since: datetime, tz: str) -> date | None:
    """The org day of ``since``; ``None`` for ``EARLIEST`` (changed from the start)."""
    return None if since == EARLIEST else local_day(since, tz)


def _check_order(start: datetime, end: datetime | None, start_name: str, end_name: str) -> None:
    for name, value in ((start_name, start), (end_name, end)):
        if value is not None and not EARLIEST <= value < LATEST:
            raise BadRequest(f"{name} must lie between 1970 and 9000", field=name)
    if end is not None and end < start:
        raise BadRequest(f"{end_name} must not be before {start_name}", field=end_name)


def _require_identifier(kind: str, value: str) -> None:
    """A new object's id from the path: refused before anything is looked up or stored."""
    if not is_identifier(value):
        raise BadRequest(f"a {kind} id must be {IDENTIFIER_RULE}: {value!r}", field="id")
