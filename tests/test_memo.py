"""Facts kept per directory snapshot never go stale: a directory write changes the next answer."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.conftest import ADMIN, Admin, bearer


def _active(client: TestClient, dept: str) -> list[int]:
    response = client.get(
        "/oapi/v1/lingma/organizations/acme/departmentUsage",
        params={"departmentId": dept, "startTime": "2026-03-01", "endTime": "2026-03-02"},
        headers={"x-yunxiao-token": ADMIN},
    )
    return [row["activeDeveloper"] for row in response.json()]


def _total_users(client: TestClient) -> list[int]:
    response = client.get(
        "/api/statistics/",
        params={
            "stats_type": "users",
            "start": "2026-03-01",
            "end": "2026-03-02",
            "org_domain": "acme.example",
        },
        headers=bearer(ADMIN),
    )
    return [row["count"] for row in response.json()["users"]["total_users"]]


def test_a_move_after_a_query_changes_the_next_answer(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    admin.put("acme/departments/a", {"name": "A"})
    admin.put("acme/departments/b", {"name": "B"})
    admin.put(
        "acme/members/m1",
        {"name": "M", "departments": ["a"], "created_at": "2026-01-01T00:00:00+08:00"},
    )
    admin.events(
        "acme",
        [
            {
                "id": "c1",
                "time": "2026-03-01T10:00:00+08:00",
                "type": "chat",
                "member": "m1",
                "ide": "vscode",
                "chat_type": "FREE_INPUT",
                "accepted": True,
            }
        ],
    )
    assert (_active(client, "a"), _active(client, "b")) == ([1], [])
    assert _total_users(client) == [1, 1]
    admin.put(
        "acme/members/m1",
        {
            "name": "M",
            "departments": ["b"],
            "effective_at": "2026-02-01T00:00:00+08:00",
            "deleted_at": "2026-03-02T12:00:00+08:00",
        },
    )
    assert (_active(client, "a"), _active(client, "b")) == ([], [1])
    assert _total_users(client) == [1, 0]


def test_the_snapshot_kept_after_writes_equals_a_fresh_load(
    client: TestClient, admin: Admin
) -> None:
    from tally.service import Tally

    admin.org("acme")
    admin.put("acme/departments/a", {"name": "A"})
    admin.put("acme/departments/b", {"name": "B", "parent": "a"})
    admin.put("acme/members/m2", {"name": "M2", "departments": ["b"]})
    admin.put("acme/members/m1", {"name": "M1", "departments": ["a"]})
    admin.put(
        "acme/members/m1",
        {
            "name": "M1",
            "departments": ["b"],
            "developer": True,
            "effective_at": "2026-03-01T00:00:00+08:00",
        },
    )
    admin.put("acme/workspaces/w1", {"name": "W", "members": [{"member": "m1"}]})
    admin.put("acme/apps/p1", {"name": "P", "creator": "m2"})
    admin.put("acme", {"name": "Acme renamed", "domain": "acme.example"})
    tally: Tally = client.app.state.tally  # type: ignore[attr-defined]
    kept = tally.directory.get("acme")
    fresh = tally.directory_store.load_directory("acme")
    assert kept is not None
    assert fresh is not None
    assert kept.org == fresh.org
    for kind in ("departments", "members", "workspaces", "apps"):
        assert dict(sorted(getattr(kept, kind).items())) == dict(
            sorted(getattr(fresh, kind).items())
        ), kind
