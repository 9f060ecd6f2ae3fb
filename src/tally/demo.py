"""A realistic demo environment: two organizations in different time zones, department trees,
~500 members, workspaces, apps and ~180 days of events with a weekday rhythm.

Built through the library (directory service and store), seeded, so two builds are identical.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from tally.model.directory import (
    AppInput,
    DepartmentInput,
    MemberInput,
    OrgInput,
    WorkspaceInput,
    WorkspaceMemberInput,
)
from tally.model.events import CHAT_TYPES, RESOURCES, StoredEvent
from tally.service import Tally
from tally.timeutil import day_start, to_micros, zone

IDES = ("vscode", "jetbrains", "visualstudio")
LANGUAGES = ("java", "python", "typescript", "go", "sql", "cpp")
CUSTOM_COMMANDS = ("refactor", "doc", "review")
APPEND_CHUNK = 100_000
#: The least share of an org's members active on any day (quiet weekends included).
MIN_ACTIVE_SHARE = 0.04


@dataclass(frozen=True)
class DemoOrg:
    id: str
    name: str
    domain: str
    timezone: str
    share: float  # of the members
    tree: dict[str, list[str]]  # department -> children


ORGS = (
    DemoOrg(
        "acme",
        "Acme Corp",
        "acme.example",
        "Asia/Shanghai",
        0.7,
        {
            "acme": ["acme-eng", "acme-product", "acme-ops"],
            "acme-eng": ["acme-platform", "acme-mobile", "acme-data"],
            "acme-platform": ["acme-infra", "acme-api"],
            "acme-product": ["acme-design"],
        },
    ),
    DemoOrg(
        "globex",
        "Globex Inc",
        "globex.example",
        "America/New_York",
        0.3,
        {
            "globex": ["globex-rd", "globex-it"],
            "globex-rd": ["globex-web", "globex-ml"],
        },
    ),
)


def build_demo(tally: Tally, *, seed: int = 7, members: int = 500, days: int = 180) -> str:
    rng = random.Random(seed)
    now = tally.settings.clock()
    lines = []
    for spec in ORGS:
        count = _build_org(tally, spec, rng, round(members * spec.share), days, now)
        lines.append(f"  {spec.id} ({spec.timezone}): {count:,} events")
    return "Demo data ready:\n" + "\n".join(lines)


def _build_org(
    tally: Tally, spec: DemoOrg, rng: random.Random, n_members: int, days: int, now: datetime
) -> int:
    directory = tally.directory
    tz = spec.timezone
    today = now.astimezone(zone(tz)).date()
    first_day = today - timedelta(days=days)
    start = day_start(first_day, tz) - timedelta(days=30)
    directory.put_org(
        spec.id, OrgInput(name=spec.name, domain=spec.domain, timezone=tz), has_events=False
    )
    departments = [spec.id, *[c for children in spec.tree.values() for c in children]]
    parents = {c: p for p, children in spec.tree.items() for c in children}
    for dept in departments:  # parents come before children in this order
        title = dept.split("-", 1)[-1].replace("-", " ").title()
        directory.put_department(
            spec.id, dept, DepartmentInput(name=title, parent=parents.get(dept))
        )
    leaves = [d for d in departments if d not in spec.tree] or departments
    member_ids = []
    for i in range(n_members):
        member_id = f"{spec.id}-m{i:04d}"
        member_ids.append(member_id)
        depts = [rng.choice(leaves)] + ([rng.choice(leaves)] if rng.random() < 0.1 else [])
        created = start + timedelta(days=rng.randrange(0, days) if rng.random() < 0.15 else 0)
        deleted = now - timedelta(days=rng.randrange(1, days)) if rng.random() < 0.04 else None
        if deleted is not None and deleted <= created:
            deleted = None
        body = MemberInput(
            name=f"Member {i:04d}",
            email=f"m{i:04d}@{spec.domain}",
            developer=rng.random() < 0.75,
            departments=depts,
            created_at=created,
            deleted_at=deleted,
            effective_at=created,
        )
        directory.put_member(spec.id, member_id, body)
        if rng.random() < 0.05:  # a department move in the middle of the window
            moved = MemberInput(
                name=body.name,
                email=body.email,
                developer=body.developer,
                departments=[rng.choice(leaves)],
                created_at=created,
                deleted_at=deleted,
                effective_at=now - timedelta(days=rng.randrange(10, days)),
            )
            directory.put_member(spec.id, member_id, moved)
    workspaces = []
    for w in range(max(3, n_members // 35)):
        ws_id = f"{spec.id}-ws{w:02d}"
        workspaces.append(ws_id)
        chosen = rng.sample(member_ids, k=min(len(member_ids), rng.randint(5, 25)))
        directory.put_workspace(
            spec.id,
            ws_id,
            WorkspaceInput(
                name=f"Workspace {w}",
                created_at=start,
                members=[WorkspaceMemberInput(member=m, since=start) for m in chosen],
            ),
        )
    apps = []
    for a in range(max(5, n_members // 20)):
        app_id = f"{spec.id}-app{a:03d}"
        apps.append(app_id)
        directory.put_app(
            spec.id,
            app_id,
            AppInput(
                name=f"App {a}",
                creator=rng.choice(member_ids),
                created_at=start + timedelta(days=rng.randrange(0, days)),
            ),
        )
    snapshot = directory.require(spec.id)
    events = _EventMaker(spec.id, tz, rng)
    count = 0
    for offset in range(days):  # up to yesterday: no event lies in the future
        day = first_day + timedelta(days=offset)
        for member_id in _active_members(rng, member_ids, weekday=day.weekday() < 5):
            member = snapshot.members[member_id]
            developer = member.version_at(day_start(day, tz)).developer
            events.member_day(day, member_id, developer, workspaces, apps)
        if len(events.rows) >= APPEND_CHUNK or offset == days - 1:
            count += len(tally.event_store.append_events(spec.id, events.rows).new_ids)
            events.rows = []
    return count


def _active_members(rng: random.Random, member_ids: list[str], *, weekday: bool) -> list[str]:
    """Who is active on a day: three in four members on a weekday, one in twelve on a weekend,
    and never fewer than ``MIN_ACTIVE_SHARE`` of them (at least two), so that every day of the
    demo has events whatever date it is built on (a small org's quiet weekend would otherwise
    be empty now and then)."""
    chance = 0.75 if weekday else 0.08
    active = [m for m in member_ids if rng.random() < chance]
    minimum = min(len(member_ids), max(2, round(len(member_ids) * MIN_ACTIVE_SHARE)))
    if len(active) < minimum:
        chosen = set(active)
        active += rng.sample([m for m in member_ids if m not in chosen], minimum - len(active))
    return sorted(active)


class _EventMaker:
    def __init__(self, org_id: str, tz: str, rng: random.Random) -> None:
        self.org_id, self.tz, self.rng = org_id, tz, rng
        self.rows: list[StoredEvent] = []
        self.serial = 0

    def _event(self, day: date, member: str, kind: str, **fields: Any) -> None:
        # Working hours 08:00-20:00 local, so the day of every event is the intended day.
        instant = day_start(day, self.tz) + timedelta(
            seconds=self.rng.randrange(8 * 3600, 20 * 3600)
        )
        self.serial += 1
        self.rows.append(
            StoredEvent(
                id=f"{self.org_id}-e{self.serial:08d}",
                ts=to_micros(instant),
                day=day,
                type=kind,
                member=member,
                **fields,
            )
        )

    def member_day(
        self, day: date, member: str, developer: bool, workspaces: list[str], apps: list[str]
    ) -> None:
        rng = self.rng
        self._event(day, member, "activity")
        if developer:
            ide = IDES[zlib.crc32(member.encode()) % len(IDES)]
            langs = rng.sample(LANGUAGES, k=2)
            for _ in range(rng.randint(8, 40)):
                accepted = rng.random() < 0.35
                suggested = rng.randint(1, 8)
                self._event(
                    day,
                    member,
                    "completion",
                    ide=ide,
                    language=rng.choice(langs),
                    lines_suggested=suggested,
                    accepted=accepted,
                    lines_accepted=rng.randint(1, suggested) if accepted else 0,
                )
            for _ in range(rng.randint(0, 5)):
                chat_type = rng.choice([*sorted(CHAT_TYPES), *CUSTOM_COMMANDS])
                self._event(
                    day, member, "chat", ide=ide, chat_type=chat_type, accepted=rng.random() < 0.5
                )
            for _ in range(rng.randint(0, 4)):
                lines = rng.randint(1, 60)
                self._event(
                    day,
                    member,
                    "code",
                    language=rng.choice(langs),
                    source=rng.choice(("completion", "chat")),
                    lines_accepted=lines,
                    lines_changed=lines + rng.randint(0, 20),
                )
            if rng.random() < 0.6:
                self._event(day, member, "workspace_activity", workspace=rng.choice(workspaces))
        if rng.random() < 0.3:
            app = rng.choice(apps)
            self._event(day, member, "app_visit", app=app)
            if rng.random() < 0.3:
                self._event(day, member, "app_edit", app=app)
                self._event(
                    day,
                    member,
                    "app_resource",
                    app=app,
                    resource=rng.choice(RESOURCES),
                    delta=rng.choice((1, 1, 1, -1)),
                )
            if rng.random() < 0.2:
                self._event(day, member, "app_data", app=app, records=rng.randint(100, 50_000))


def demo_instructions(tally: Tally) -> str:
    """A read token per demo org, and one ready curl line per API."""
    settings = tally.settings
    base = f"http://{settings.host}:{settings.port}"
    lines = [f"Demo URL: {base}  (API docs: {base}/docs)"]
    lines.append(f"Dashboard: {base}/ui/  (sign in with a read token below)")
    for spec in ORGS:
        if tally.directory.get(spec.id) is None:
            continue
        secret, _ = tally.access.create_token(spec.id, ["read"])
        auth = f"-H 'Authorization: Bearer {secret}'"
        lines += [
            f"\n{spec.name} ({spec.timezone}) read token: {secret}",
            f"  curl -s {auth} {base}/api/v1/orgs/{spec.id}/departments",
        ]
        lines += [f"  {line}" for line in _vendor_curl_lines(tally, spec, base, secret)]
    return "\n".join(lines)


def _vendor_curl_lines(tally: Tally, spec: DemoOrg, base: str, secret: str) -> list[str]:
    """One curl line per vendor API that this build serves."""
    from tally.api.app import FACADES

    today = tally.settings.clock().astimezone(zone(spec.timezone)).date()
    lines = []
    for facade in FACADES:
        example = getattr(facade, "demo_curl", None)
        if example is not None:
            lines.append(
                example(
                    base=base,
                    org=spec.id,
                    domain=spec.domain,
                    department=spec.id,
                    token=secret,
                    today=today,
                )
            )
    return lines
