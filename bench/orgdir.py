"""Create the benchmark organization's directory in a Tally DuckDB file, through Tally's library.

The organization and the 500 departments go through ``tally.directory`` (the service the HTTP
API calls, with all its checks). Members, workspaces and apps go through ``tally.store`` (the
same ``put_member`` / ``put_workspace`` / ``put_app`` the service ends in), which skips the
service's per-write checks and snapshot updates for 22,000 objects. The bench's plan guarantees
what the service would check (known departments and members, ``created_at <= deleted_at``), and
the result is read back from the file.

A built directory is cached as a template file keyed by seed and window, and copied per size.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from plan import ORG_DOMAIN, ORG_ID, TIMEZONE, OrgPlan, us_to_datetime
from tally.model.directory import (
    App,
    DepartmentInput,
    Member,
    MemberVersion,
    OrgInput,
    Workspace,
    WorkspaceMembership,
)
from tally.service import Tally
from tally.settings import Settings


def _at(plan: OrgPlan, day_index: int, hour: float = 9.0) -> datetime:
    return us_to_datetime(plan.instant_us(day_index, hour))


def _member(plan: OrgPlan, i: int) -> Member:
    created = _at(plan, int(plan.member_created_day[i]))
    deleted_day = int(plan.member_deleted_day[i])
    deleted = _at(plan, deleted_day, 18.0) if deleted_day < 10**6 else None
    second = int(plan.member_dept2[i])
    extra = (plan.dept_ids[second],) if second >= 0 else ()
    current = (plan.dept_ids[int(plan.member_dept[i])], *extra)
    developer = bool(plan.member_dev[i])
    versions: tuple[MemberVersion, ...]
    if plan.member_move_day[i] >= 0:
        before = (plan.dept_ids[int(plan.member_old_dept[i])], *extra)
        versions = (
            MemberVersion(effective_at=created, developer=developer, departments=before),
            MemberVersion(
                effective_at=_at(plan, int(plan.member_move_day[i]), 10.0),
                developer=developer,
                departments=current,
            ),
        )
    else:
        versions = (MemberVersion(effective_at=created, developer=developer, departments=current),)
    member_id = plan.member_ids[i]
    return Member(
        id=member_id,
        name=f"Member {member_id}",
        email=f"{member_id}@{ORG_DOMAIN}",
        created_at=created,
        deleted_at=deleted,
        versions=versions,
    )


def _workspaces(plan: OrgPlan) -> list[Workspace]:
    holders: dict[int, set[int]] = {}
    for member, row in enumerate(plan.member_workspaces):
        for ws in {int(x) for x in row}:
            holders.setdefault(ws, set()).add(member)
    result = []
    for ws, ws_id in enumerate(plan.ws_ids):
        created_day = int(plan.ws_created_day[ws])
        members = []
        for member in sorted(holders.get(ws, ())):
            since_day = max(created_day, int(plan.member_created_day[member]))
            deleted_day = int(plan.member_deleted_day[member])
            until = _at(plan, deleted_day, 18.0) if deleted_day < 10**6 else None
            members.append(
                WorkspaceMembership(
                    member=plan.member_ids[member], since=_at(plan, since_day, 9.5), until=until
                )
            )
        result.append(
            Workspace(
                id=ws_id,
                name=f"Workspace {ws}",
                created_at=_at(plan, created_day),
                deleted_at=None,
                members=tuple(members),
            )
        )
    return result


def _app(plan: OrgPlan, i: int) -> App:
    deleted_day = int(plan.app_deleted_day[i])
    return App(
        id=plan.app_ids[i],
        name=f"App {i}",
        creator=plan.member_ids[int(plan.app_creator[i])],
        created_at=_at(plan, int(plan.app_created_day[i]), 11.0),
        deleted_at=_at(plan, deleted_day, 16.0) if deleted_day < 10**6 else None,
    )


def build_directory(plan: OrgPlan, db_path: Path) -> dict[str, float]:
    """Write the whole directory into a new Tally file; return timings in seconds."""
    timings: dict[str, float] = {}
    db_path.unlink(missing_ok=True)
    Path(f"{db_path}.wal").unlink(missing_ok=True)
    with Tally(Settings(db_path=db_path)) as tally:
        started = time.perf_counter()
        tally.directory.put_org(
            ORG_ID,
            OrgInput(name="Bench Org", domain=ORG_DOMAIN, timezone=TIMEZONE),
            has_events=False,
        )
        for i, dept_id in enumerate(plan.dept_ids):
            parent = int(plan.dept_parent[i])
            tally.directory.put_department(
                ORG_ID,
                dept_id,
                DepartmentInput(
                    name=f"Department {i}", parent=plan.dept_ids[parent] if parent >= 0 else None
                ),
            )
        timings["departments_s"] = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(len(plan.member_ids)):
            tally.store.put_member(ORG_ID, _member(plan, i))
        timings["members_s"] = time.perf_counter() - started
        started = time.perf_counter()
        for workspace in _workspaces(plan):
            tally.store.put_workspace(ORG_ID, workspace)
        for i in range(len(plan.app_ids)):
            tally.store.put_app(ORG_ID, _app(plan, i))
        timings["workspaces_apps_s"] = time.perf_counter() - started
        # Read back from the file: the service's snapshot predates the direct store writes.
        directory = tally.store.load_directory(ORG_ID)
        assert directory is not None
        assert len(directory.members) == len(plan.member_ids)
        assert len(directory.departments) == len(plan.dept_ids)
        assert len(directory.apps) == len(plan.app_ids)
    return timings


def schema_key() -> str:
    """A short hash of the DuckDB store's table definitions (a new schema: a new template)."""
    from tally.stores import duckdb as store_module

    texts = []
    modules = [store_module, *(getattr(store_module, "rollups", None),)]
    for module in filter(None, modules):
        for name, value in sorted(vars(module).items()):
            if "SCHEMA" in name and isinstance(value, str | int):
                texts.append(f"{name}={value}")
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:10]


def directory_template(plan: OrgPlan, cache_dir: Path) -> tuple[Path, dict[str, float]]:
    """The cached directory file for this plan and store schema, built when missing."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    name = f"directory-s{plan.seed}-{plan.end_day.isoformat()}-{schema_key()}.duckdb"
    path = cache_dir / name
    if path.exists():
        return path, {"cached": 1.0}
    partial = path.with_suffix(".partial")
    timings = build_directory(plan, partial)
    if Path(f"{partial}.wal").exists():
        raise RuntimeError(f"{partial}.wal left behind: the directory file was not checkpointed")
    partial.rename(path)
    return path, timings


def copy_directory(template: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    Path(f"{target}.wal").unlink(missing_ok=True)
    shutil.copyfile(template, target)


def member_count_of_subtree(plan: OrgPlan) -> int:
    """Members whose current departments fall in the ~10% subtree (for the table's note)."""
    index = plan.dept_ids.index(plan.subtree_dept)
    inside = np.zeros(len(plan.dept_ids), dtype=bool)
    inside[index] = True
    for dept in range(index + 1, len(plan.dept_ids)):
        parent = int(plan.dept_parent[dept])
        if parent >= 0 and inside[parent]:
            inside[dept] = True
    second = np.where(plan.member_dept2 >= 0, plan.member_dept2, plan.member_dept)
    return int(np.count_nonzero(inside[plan.member_dept] | inside[second]))
