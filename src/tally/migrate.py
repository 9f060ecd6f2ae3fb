"""Moving up: copy one environment (directory with its history, tokens, events) into another,
typically from the DuckDB file into PostgreSQL and ClickHouse (``tally migrate``).

The copy goes store to store, below the directory rules, so that every version, lifetime and
membership arrives as it was; events go through the event store's idempotent append, so a copy
that is run again (after an interruption, say) stores nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tally.model.directory import Department, Directory
from tally.service import Tally


@dataclass(frozen=True)
class MigrationReport:
    orgs: int
    tokens: int
    #: Events read from the source, and how many of them the target did not have yet.
    events: int
    new_events: int


def copy_environment(
    source: Tally, target: Tally, *, progress: Callable[[int], object], chunk: int = 50_000
) -> MigrationReport:
    """Copy every organization of ``source`` into ``target``; ``progress(n)`` after each chunk
    of ``n`` events."""
    orgs = source.directory_store.list_orgs()
    for org in orgs:
        directory = source.directory_store.load_directory(org.id)
        if directory is not None:
            copy_directory(directory, target)
    tokens = copy_tokens(source, target)
    events = new_events = 0
    for org in orgs:
        read, stored = copy_events(source, target, org.id, progress=progress, chunk=chunk)
        events += read
        new_events += stored
    target.directory.forget()
    target.access.reload()
    return MigrationReport(len(orgs), tokens, events, new_events)


def copy_directory(directory: Directory, target: Tally) -> None:
    """One organization's directory, every object with its whole history."""
    store = target.directory_store
    org_id = directory.org.id
    store.put_org(directory.org)
    for department in parents_first(directory.departments.values()):
        store.put_department(org_id, department)
    for member in directory.members.values():
        store.put_member(org_id, member)
    for workspace in directory.workspaces.values():
        store.put_workspace(org_id, workspace)
    for app in directory.apps.values():
        store.put_app(org_id, app)


def parents_first(departments: Iterable[Department]) -> list[Department]:
    """Departments ordered so that each comes after its parent (the tree's depth order)."""
    by_id = {d.id: d for d in departments}

    def depth(department: Department) -> int:
        steps, seen = 0, {department.id}
        while department.parent in by_id and department.parent not in seen:
            department = by_id[department.parent]
            seen.add(department.id)
            steps += 1
        return steps

    return sorted(by_id.values(), key=lambda d: (depth(d), d.id))


def copy_tokens(source: Tally, target: Tally) -> int:
    """The stored tokens (hashes only) that the target lacks; answers how many were added."""
    known = {t.id for t in target.directory_store.list_tokens()}
    added = 0
    for token in source.directory_store.list_tokens():
        if token.id not in known:
            target.directory_store.add_token(token)
            added += 1
    return added


def copy_events(
    source: Tally, target: Tally, org_id: str, *, progress: Callable[[int], object], chunk: int
) -> tuple[int, int]:
    """Every event of ``org_id`` in (time, id) order; answers (read, newly stored)."""
    read = stored = 0
    after: tuple[int, str] | None = None
    while True:
        rows = source.event_store.list_events(
            org_id, start_us=None, end_us=None, after=after, limit=chunk
        )
        if not rows:
            return read, stored
        stored += len(target.event_store.append_events(org_id, rows).new_ids)
        read += len(rows)
        progress(len(rows))
        after = (rows[-1].ts, rows[-1].id)
