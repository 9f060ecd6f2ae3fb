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
