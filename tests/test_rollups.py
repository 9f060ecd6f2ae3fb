"""Rollups answer exactly what the raw events answer, for random scenarios with late events,
duplicates and department moves; and a rebuild from the raw events changes no answer."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from tally.service import Tally
from tests.conftest import ADMIN, Admin, bearer

TIMEZONES = ("Asia/Shanghai", "America/New_York", "Asia/Kathmandu", "UTC")
FIRST = date(2026, 2, 1)
DAYS = 20
DEPARTMENTS = {"root": None, "a": "root", "b": "root", "a1": "a", "a2": "a", "b1": "b"}


def _instant(rng: random.Random) -> datetime:
    start = datetime(2026, 1, 31, tzinfo=UTC)
    return start + timedelta(seconds=rng.randrange(0, (DAYS + 2) * 86_400))


def _event(rng: random.Random, n: int, members: list[str]) -> dict[str, Any]:
    kind = rng.choice(
        ["completion"] * 4
        + ["chat"] * 2
        + ["code"] * 2
        + ["activity", "workspace_activity", "app_visit", "app_edit", "app_resource", "app_data"]
    )
    event: dict[str, Any] = {
        "id": f"e{n}",
        "time": _instant(rng).isoformat(),
        "type": kind,
        "member": rng.choice(members),
    }
    if kind == "completion":
        accepted = rng.random() < 0.5
        event |= {
            "ide": rng.choice(["vscode", "jetbrains"]),
            "language": rng.choice(["go", "py", "Ünïcode"]),
            "lines_suggested": rng.randint(0, 9),
            "accepted": accepted,
            "lines_accepted": rng.randint(0, 5) if accepted else 0,
        }
    elif kind == "chat":
        event |= {
            "ide": rng.choice(["vscode", "jetbrains"]),
            "accepted": rng.random() < 0.5,
            # quotes, a backslash and non-ASCII: the stored usage records are JSON
            "chat_type": rng.choice(["EXPLAIN_CODE", "FREE_INPUT", "refactor", 'say "hi" \\ 日本']),
        }
    elif kind == "code":
        event |= {
            "language": rng.choice(["go", "py", "java"]),
            "source": rng.choice(["chat", "completion"]),
            "lines_accepted": rng.randint(0, 30),
            "lines_changed": rng.randint(0, 40),
        }
    elif kind == "workspace_activity":
        event["workspace"] = rng.choice(["w1", "w2"])
    elif kind.startswith("app_"):
        event["app"] = rng.choice(["p1", "p2"])
        if kind == "app_resource":
            event |= {"resource": rng.choice(["dash", "etl"]), "delta": rng.randint(-2, 3)}
        if kind == "app_data":
            event["records"] = rng.randint(0, 1000)
    return event


def build_scenario(
    admin: Admin,
    seed: int,
    *,
    send: bool = True,
    between_batches: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """A random org: department moves (some in the middle of a day), events sent out of order,
    in random batches, a tenth of them twice; ``between_batches`` runs after each batch.
    Returns the events as the org holds them."""
    rng = random.Random(seed)
    tz = TIMEZONES[seed % len(TIMEZONES)]
    admin.org("acme", tz)
    for dept, parent in DEPARTMENTS.items():
        admin.put(f"acme/departments/{dept}", {"name": dept, "parent": parent})
    leaves = ["a1", "a2", "b1", "b"]
    members = [f"m{i}" for i in range(12)]
    for member in members:
        admin.put(
            f"acme/members/{member}",
            {
                "name": member,
                "developer": rng.random() < 0.7,
                "departments": rng.sample(leaves, k=rng.randint(1, 2)),
                "created_at": "2026-01-01T00:00:00Z",
                "effective_at": "2026-01-01T00:00:00Z",
            },
        )
        for _ in range(rng.randint(0, 3)):  # moves and developer flag changes, at any instant
            admin.put(
                f"acme/members/{member}",
                {
                    "name": member,
                    "developer": rng.random() < 0.7,
                    "departments": rng.sample(leaves, k=rng.randint(1, 2)),
                    "effective_at": _instant(rng).isoformat(),
                },
            )
    for ws in ("w1", "w2"):
        admin.put(f"acme/workspaces/{ws}", {"name": ws, "created_at": "2026-01-01T00:00:00Z"})
    for app in ("p1", "p2"):
        admin.put(
            f"acme/apps/{app}", {"name": app, "creator": "m0", "created_at": "2026-01-01T00:00:00Z"}
        )
    events = [_event(rng, n, members) for n in range(1500)]
    if not send:
        return events
    sent = events + rng.sample(events, k=150)
    rng.shuffle(sent)
    while sent:
        size = rng.randint(1, 150)
        admin.events("acme", sent[:size])
        sent = sent[size:]
        if between_batches is not None:
            between_batches()
    return events


def _lingma(client: TestClient, dept: str, start: date, end: date) -> Any:
    response = client.get(
        "/oapi/v1/lingma/organizations/acme/departmentUsage",
        params={
            "departmentId": dept,
            "startTime": start.isoformat(),
            "endTime": end.isoformat(),
            "perPage": 100,
        },
        headers={"x-yunxiao-token": ADMIN},
    )
    assert response.status_code == 200, response.text
    return response.json()


def all_answers(client: TestClient) -> dict[str, Any]:
    """Every API's answer over a set of windows and scopes."""
    answers: dict[str, Any] = {}
    token = client.post(
        "/api/v1/orgs/acme/tokens", json={"scopes": ["read"]}, headers=bearer(ADMIN)
    ).json()["token"]
    for offset in range(-1, DAYS + 1):
        day = (FIRST + timedelta(days=offset)).isoformat()
        response = client.post("/api/v1/app/usage_stats", json={"date": day}, headers=bearer(token))
        assert response.status_code == 200, response.text
        answers[f"apps {day}"] = response.json()
    windows = [
        (FIRST, FIRST + timedelta(days=DAYS - 1)),
        (FIRST + timedelta(days=3), FIRST + timedelta(days=4)),
        (date(2026, 1, 20), date(2026, 3, 10)),  # all of February, parts of January and March
        (date(2026, 1, 25), date(2026, 2, 15)),  # the end of January, the start of February
        (date(2026, 2, 18), date(2026, 3, 5)),  # the end of February (active days), March's start
    ]
    for start, end in windows:
        for dept in DEPARTMENTS:
            answers[f"lingma {dept} {start} {end}"] = _lingma(client, dept, start, end)
        for stats_type in ("users", "developers", "workspaces"):
            answers[f"environment {stats_type} {start} {end}"] = _environment(
                client, stats_type, start, end
            )
    return answers


def _environment(client: TestClient, stats_type: str, start: date, end: date) -> Any:
    response = client.get(
        "/api/statistics/",
        params={
            "stats_type": stats_type,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "org_domain": "acme.example",
        },
        headers=bearer(ADMIN),
    )
    assert response.status_code == 200, response.text
    return response.json()


def _raw_answers(client: TestClient, tally: Tally) -> dict[str, Any]:
    tally.store.rollups = False  # type: ignore[attr-defined]
    try:
        return all_answers(client)
    finally:
        tally.store.rollups = True  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", range(6))
def test_rollups_answer_like_raw_events(
    seed: int, admin: Admin, client: TestClient, tally: Tally
) -> None:
    build_scenario(admin, seed)
    assert tally.store.stale_department_days("acme")  # nothing refreshed yet: member-day path
    assert tally.store.stale_activity_days("acme")
    from_rollups = all_answers(client)
    assert tally.refresh_rollups() > 0
    assert tally.store.stale_department_days("acme") == []
    assert tally.store.stale_activity_days("acme") == []
    from_department_rollups = all_answers(client)
    from_raw = _raw_answers(client, tally)
    assert from_rollups == from_raw
    assert from_department_rollups == from_raw
    assert any(answer for answer in from_rollups.values())  # the scenario is not empty


@pytest.mark.parametrize("seed", range(4))
def test_department_rollups_follow_appends_and_moves(
    seed: int, admin: Admin, client: TestClient, tally: Tally
) -> None:
    """Refreshes between batches, then members moved and departments re-parented after their
    days were rolled up per department: answers stay those of the raw events, while some days
    are stale and after a final refresh."""
    rng = random.Random(1000 + seed)
    refreshed: list[int] = []

    def move_member() -> None:
        member = f"m{rng.randrange(12)}"
        admin.put(
            f"acme/members/{member}",
            {
                "name": member,
                "developer": rng.random() < 0.7,
                "departments": rng.sample(["a1", "a2", "b1", "b"], k=rng.randint(1, 2)),
                "effective_at": _instant(rng).isoformat(),
            },
        )

    def reparent() -> None:
        dept = rng.choice(["a2", "b1"])
        parent = "b" if admin.get(f"acme/departments/{dept}")["parent"] == "a" else "a"
        admin.put(f"acme/departments/{dept}", {"name": dept, "parent": parent})

    def churn() -> None:
        draw = rng.random()
        if draw < 0.4:
            refreshed.append(tally.refresh_rollups())
        elif draw < 0.6:
            move_member()
        elif draw < 0.7:
            reparent()

    build_scenario(admin, seed, between_batches=churn)
    assert sum(refreshed) > 0  # some days were rolled up per department along the way
    assert all_answers(client) == _raw_answers(client, tally)
    # Directory changes after every day was rolled up per department: no batch follows that
    # would mark the days stale anyway.
    tally.refresh_rollups()
    move_member()
    move_member()
    mixed = all_answers(client)
    assert mixed == _raw_answers(client, tally)
    tally.refresh_rollups()
    reparent()
    assert all_answers(client) == _raw_answers(client, tally)
    mixed = all_answers(client)
    tally.refresh_rollups()
    assert tally.store.stale_department_days("acme") == []
    assert tally.store.stale_activity_days("acme") == []
    assert all_answers(client) == mixed


@pytest.mark.parametrize("seed", range(3))
def test_rebuild_equals_incremental(
    seed: int, admin: Admin, client: TestClient, tally: Tally
) -> None:
    build_scenario(admin, seed)
    tally.refresh_rollups()
    incremental = all_answers(client)
    tally.store.rebuild_rollups("acme")
    assert tally.store.stale_department_days("acme")  # a rebuild starts the second level over
    assert tally.store.stale_activity_days("acme")
    assert all_answers(client) == incremental
    tally.refresh_rollups()
    assert all_answers(client) == incremental


def test_rollups_match_a_plain_python_count(admin: Admin, client: TestClient) -> None:
    """Independent of every SQL path: distinct active assistant users of the whole org per day."""
    events = build_scenario(admin, 11)
    tz = client.get("/api/v1/orgs/acme", headers=bearer(ADMIN)).json()["timezone"]
    from zoneinfo import ZoneInfo

    expected: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e["type"] in ("completion", "chat", "code"):
            day = datetime.fromisoformat(e["time"]).astimezone(ZoneInfo(tz)).date()
            if FIRST <= day < FIRST + timedelta(days=DAYS):
                expected[day.isoformat()].add(e["member"])
    answer = _lingma(client, "root", FIRST, FIRST + timedelta(days=DAYS - 1))
    got = {
        datetime.fromtimestamp(row["date"] / 1000, ZoneInfo(tz)).date().isoformat(): row[
            "activeDeveloper"
        ]
        for row in answer
    }
    # every member sits in the root's subtree at every instant, so the root sees them all
    assert got == {day: len(members) for day, members in expected.items()}


def test_a_stale_month_drops_day_counts_that_became_zero(
    admin: Admin, client: TestClient, tally: Tally
) -> None:
    """A developer's only workspace day is counted and refreshed; then the member turns out
    never to have been a developer. Until the next refresh the month is stale, and that day
    must read 0 (the precomputed row of 1 is outdated, and the recount has no row for it)."""
    admin.org("acme", "UTC")
    member = {"name": "m", "created_at": "2026-01-01T00:00:00Z"}
    admin.put("acme/members/m", member | {"developer": True})
    admin.put("acme/workspaces/w", {"name": "w", "created_at": "2026-01-01T00:00:00Z"})
    admin.events(
        "acme",
        [
            {
                "id": "e1",
                "time": "2026-02-10T12:00:00Z",
                "type": "workspace_activity",
                "member": "m",
                "workspace": "w",
            }
        ],
    )
    window = (date(2026, 2, 1), date(2026, 3, 31))  # whole months: precomputed rows answer

    def per_day_on_the_10th() -> list[int]:
        daily = _environment(client, "developers", *window)["developers"]["daily_active_developers"]
        return [d["count"] for d in daily["per_day"] if (d["month"], d["day"]) == (2, 10)]

    assert tally.refresh_rollups() > 0
    assert per_day_on_the_10th() == [1]
    admin.put(
        "acme/members/m",
        member | {"developer": False, "effective_at": "2026-01-01T00:00:00Z"},  # replaces it
    )
    assert tally.store.stale_activity_days("acme")  # the month waits for a refresh
    assert per_day_on_the_10th() == [0]
    tally.refresh_rollups()
    assert per_day_on_the_10th() == [0]


def test_a_reparenting_makes_only_the_subtrees_above_stale(
    admin: Admin, client: TestClient, tally: Tally
) -> None:
    """Moving a2 from a to b changes the figures of a and b on every day, and of nothing else
    (root holds a2 before and after; a2's own subtree is as it was): no day goes stale, only
    those two departments, and they answer as the raw events do before and after a refresh."""
    build_scenario(admin, seed=5)
    tally.refresh_rollups()
    assert admin.get("acme/departments/a2")["parent"] == "a"
    admin.put("acme/departments/a2", {"name": "a2", "parent": "b"})
    assert tally.store.stale_department_days("acme") == []
    assert sorted(tally.store.stale_departments("acme")) == ["a", "b"]
    assert all_answers(client) == _raw_answers(client, tally)
    tally.refresh_rollups()
    assert tally.store.stale_departments("acme") == {}
    assert all_answers(client) == _raw_answers(client, tally)


def test_a_refresh_clears_only_the_staleness_it_computed(tally: Tally, admin: Admin) -> None:
    admin.org("acme")
    store = tally.store
    store.invalidate_departments("acme", ["a", "b"])
    first = store.stale_departments("acme")
    store.invalidate_departments("acme", ["b"])  # a later move, while a refresh runs
    store.refresh_departments("acme", {}, [], first)
    assert sorted(store.stale_departments("acme")) == ["b"]
