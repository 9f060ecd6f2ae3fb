"""The benchmark organization, decided once from a seed: the shape both the directory and the
event generator follow, so that every event names a member, workspace or app the directory has.

Everything is a numpy array or a small list; nothing here touches Tally or a file. The window is
the 365 org days that end yesterday (the app resource usage API answers only T-180 .. T-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

ORG_ID = "bench"
ORG_DOMAIN = "bench.example"
TIMEZONE = "Asia/Shanghai"
MEMBERS = 20_000
DEPARTMENTS = 500
WORKSPACES = 300
APPS = 2_000
DAYS = 365
#: Children per level of the department tree (1 root, 8, 56, 435 = 500 over 4 levels).
LEVEL_SIZES = (1, 8, 56, 435)

IDES = ("vscode", "intellij", "pycharm", "goland", "webstorm", "visual_studio")
IDE_WEIGHTS = (0.38, 0.30, 0.14, 0.08, 0.06, 0.04)
LANGUAGES = (
    "java",
    "python",
    "go",
    "typescript",
    "javascript",
    "c++",
    "c#",
    "kotlin",
    "rust",
    "sql",
    "shell",
    "vue",
)
LANGUAGE_WEIGHTS = (0.24, 0.20, 0.12, 0.12, 0.09, 0.06, 0.04, 0.04, 0.03, 0.03, 0.02, 0.01)


def local_today(timezone: str = TIMEZONE) -> date:
    """Today in the org's timezone (the contract's ``T``)."""
    return datetime.now(ZoneInfo(timezone)).date()


def midnight_us(day: date, timezone: str = TIMEZONE) -> int:
    """Epoch microseconds of 00:00 of ``day`` in ``timezone``."""
    local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone))
    return int(local.astimezone(UTC).timestamp()) * 1_000_000


def us_to_datetime(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))


@dataclass(frozen=True)
class OrgPlan:
    """The seeded organization: departments, members, workspaces, apps and the window."""

    seed: int
    end_day: date  # the last day of the window (T-1)
    dept_ids: list[str]
    dept_parent: np.ndarray  # index of the parent, -1 for the root
    dept_level: np.ndarray  # 1..4
    member_ids: list[str]
    member_dev: np.ndarray  # bool
    member_dept: np.ndarray  # index of the current (leaf) department
    member_dept2: np.ndarray  # a second department, -1 for none
    member_old_dept: np.ndarray  # department before a move inside the window, -1 for no move
    member_move_day: np.ndarray  # day index of that move (effective then), -1 for none
    member_created_day: np.ndarray  # day index (negative: before the window)
    member_deleted_day: np.ndarray  # day index, or a large number for never
    member_activity: np.ndarray  # propensity to be active on a weekday
    member_intensity: np.ndarray  # events per active day, relative
    member_accept_rate: np.ndarray
    member_ides: np.ndarray  # (members, 2) ide indexes
    member_languages: np.ndarray  # (members, 3) language indexes
    member_workspaces: np.ndarray  # (members, 2) workspace indexes
    member_apps: np.ndarray  # (members, 3) app indexes
    ws_ids: list[str]
    ws_created_day: np.ndarray
    app_ids: list[str]
    app_creator: np.ndarray
    app_created_day: np.ndarray
    app_deleted_day: np.ndarray
    app_records_base: np.ndarray
    app_records_slope: np.ndarray
    subtree_dept: str  # the department whose subtree holds about 10% of the members
    subtree_members: int

    @property
    def start_day(self) -> date:
        return self.end_day - timedelta(days=DAYS - 1)

    def day(self, index: int) -> date:
        return self.start_day + timedelta(days=int(index))

    def day_start_us(self) -> np.ndarray:
        """Epoch µs of local midnight of each window day (index 0 .. DAYS)."""
        return np.array([midnight_us(self.day(i)) for i in range(DAYS + 1)], dtype=np.int64)

    def instant_us(self, day_index: int, hour: float = 9.0) -> int:
        """An instant on a day of the window (or before/after it), in epoch µs."""
        return midnight_us(self.day(day_index)) + int(hour * 3_600_000_000)

    @property
    def root_dept(self) -> str:
        return self.dept_ids[0]

    @property
    def busy_member(self) -> str:
        """The member of the one-member questions: the busiest developer (activity times
        intensity) that exists the whole window and never moves."""
        eligible = (
            self.member_dev
            & (self.member_created_day < 0)
            & (self.member_deleted_day > DAYS)
            & (self.member_move_day < 0)
        )
        weight = np.where(eligible, self.member_activity * self.member_intensity, -1.0)
        return self.member_ids[int(np.argmax(weight))]


def _tree(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    parents = [-1]
    levels = [1]
    previous = [0]
    for level, size in enumerate(LEVEL_SIZES[1:], start=2):
        # uneven fan-out: each node of the level above gets a share drawn from a Dirichlet
        shares = rng.dirichlet(np.full(len(previous), 2.0))
        counts = np.maximum(1, np.floor(shares * size).astype(int))
        while counts.sum() > size:
            counts[np.argmax(counts)] -= 1
        while counts.sum() < size:
            counts[rng.integers(len(counts))] += 1
        current = []
        for parent, count in zip(previous, counts, strict=True):
            for _ in range(int(count)):
                current.append(len(parents))
                parents.append(parent)
                levels.append(level)
        previous = current
    return np.array(parents, dtype=np.int32), np.array(levels, dtype=np.int8)


def _subtree_counts(parents: np.ndarray, members_per_dept: np.ndarray) -> np.ndarray:
    """Members in each department's subtree (members counted in their leaf)."""
    totals = members_per_dept.astype(np.int64).copy()
    for dept in range(len(parents) - 1, 0, -1):  # children always follow their parents
        totals[parents[dept]] += totals[dept]
    return totals


def make_plan(seed: int, end_day: date) -> OrgPlan:
    """The whole organization for ``seed``, with a window that ends on ``end_day``."""
    rng = np.random.default_rng(seed)
    parents, levels = _tree(rng)
    leaves = np.flatnonzero(levels == 4)
    leaf_weight = rng.lognormal(0.0, 0.6, len(leaves))
    member_dept = leaves[rng.choice(len(leaves), MEMBERS, p=leaf_weight / leaf_weight.sum())]
    member_dept2 = np.where(rng.random(MEMBERS) < 0.05, rng.choice(leaves, MEMBERS), -1)
    member_dept2 = np.where(member_dept2 == member_dept, -1, member_dept2)
    dev = rng.random(MEMBERS) < 0.7

    created = np.where(
        rng.random(MEMBERS) < 0.9,
        -rng.integers(30, 1500, MEMBERS),
        rng.integers(0, DAYS - 1, MEMBERS),
    )
    deleted = np.where(
        rng.random(MEMBERS) < 0.04,
        np.minimum(DAYS, created + rng.integers(20, 400, MEMBERS)),
        10**6,
    )
    deleted = np.where(deleted <= np.maximum(created, 0), 10**6, deleted)
    moved = rng.random(MEMBERS) < 0.03
    move_day = np.where(moved, rng.integers(1, DAYS - 1, MEMBERS), -1)
    move_day = np.where(move_day > np.maximum(created, 0), move_day, -1)
    old_dept = np.where(move_day >= 0, rng.choice(leaves, MEMBERS), -1)
    old_dept = np.where(old_dept == member_dept, -1, old_dept)
    move_day = np.where(old_dept >= 0, move_day, -1)

    activity = np.where(dev, rng.beta(4, 3, MEMBERS), rng.beta(2, 5, MEMBERS))
    intensity = rng.lognormal(0.0, 0.45, MEMBERS) * np.where(dev, 1.0, 0.35)
    ide_p = np.array(IDE_WEIGHTS)
    lang_p = np.array(LANGUAGE_WEIGHTS)
    ides = rng.choice(len(IDES), (MEMBERS, 2), p=ide_p / ide_p.sum())
    languages = rng.choice(len(LANGUAGES), (MEMBERS, 3), p=lang_p / lang_p.sum())
    workspaces = rng.integers(0, WORKSPACES, (MEMBERS, 2))
    workspaces[:, 1] = np.where(rng.random(MEMBERS) < 0.4, workspaces[:, 1], workspaces[:, 0])

    app_created = np.where(
        rng.random(APPS) < 0.7, -rng.integers(10, 900, APPS), rng.integers(0, DAYS - 1, APPS)
    )
    app_deleted = np.where(
        rng.random(APPS) < 0.05,
        np.minimum(DAYS + 5, app_created + rng.integers(30, 300, APPS)),
        10**6,
    )
    app_deleted = np.where(app_deleted <= np.maximum(app_created, 0), 10**6, app_deleted)
    app_popularity = rng.zipf(1.6, APPS).astype(float)
    member_apps = rng.choice(APPS, (MEMBERS, 3), p=app_popularity / app_popularity.sum())

    per_dept = np.bincount(member_dept, minlength=len(parents))
    subtree = _subtree_counts(parents, per_dept)
    candidates = np.flatnonzero(levels >= 2)
    best = candidates[np.argmin(np.abs(subtree[candidates] - MEMBERS * 0.10))]

    return OrgPlan(
        seed=seed,
        end_day=end_day,
        dept_ids=[f"dept-{i:03d}" for i in range(len(parents))],
        dept_parent=parents,
        dept_level=levels,
        member_ids=[f"m{i:05d}" for i in range(MEMBERS)],
        member_dev=dev,
        member_dept=member_dept.astype(np.int32),
        member_dept2=member_dept2.astype(np.int32),
        member_old_dept=old_dept.astype(np.int32),
        member_move_day=move_day.astype(np.int32),
        member_created_day=created.astype(np.int32),
        member_deleted_day=deleted.astype(np.int32),
        member_activity=activity,
        member_intensity=intensity,
        member_accept_rate=rng.beta(3, 6, MEMBERS),
        member_ides=ides.astype(np.int8),
        member_languages=languages.astype(np.int8),
        member_workspaces=workspaces.astype(np.int32),
        member_apps=member_apps.astype(np.int32),
        ws_ids=[f"ws-{i:04d}" for i in range(WORKSPACES)],
        ws_created_day=-rng.integers(30, 1000, WORKSPACES).astype(np.int32),
        app_ids=[f"app-{i:05d}" for i in range(APPS)],
        app_creator=rng.integers(0, MEMBERS, APPS).astype(np.int32),
        app_created_day=app_created.astype(np.int32),
        app_deleted_day=app_deleted.astype(np.int32),
        app_records_base=rng.integers(0, 5_000, APPS).astype(np.int64),
        app_records_slope=rng.integers(0, 200, APPS).astype(np.int64),
        subtree_dept=f"dept-{int(best):03d}",
        subtree_members=int(subtree[best]),
    )
