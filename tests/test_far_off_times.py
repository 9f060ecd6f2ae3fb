"""Far-off years are bad input: a clear 400 or rejection, never a crash of the day arithmetic."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.conftest import ADMIN, Admin, bearer


def test_event_before_1970_is_rejected_with_a_reason(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    admin.put("acme/members/m1", {"name": "A"})
    answer = admin.events(
        "acme",
        [
            {"id": "old", "time": "0001-01-01T00:00:00+08:00", "type": "activity", "member": "m1"},
            {"id": "ok", "time": "2026-03-01T00:00:00+08:00", "type": "activity", "member": "m1"},
        ],
    )
    assert answer == {
        "accepted": 1,
        "duplicates": 0,
        "rejected": [{"index": 0, "id": "old", "error": "time is before 1970-01-01T00:00:00Z"}],
    }


def test_directory_times_outside_1970_to_9000_are_400(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    for body in (
        {"name": "A", "created_at": "0001-01-01T00:00:00+08:00"},
        {"name": "A", "effective_at": "9999-12-31T23:59:59-08:00"},
    ):
        response = client.put("/api/v1/orgs/acme/members/m1", json=body, headers=bearer(ADMIN))
        assert response.status_code == 400, response.text
        assert response.json()["detail"].endswith("must lie between 1970 and 9000")


def test_statistics_at_the_ends_of_the_calendar_do_not_crash(
    client: TestClient, admin: Admin
) -> None:
    admin.org("acme", "America/New_York")
    admin.put("acme/departments/d", {"name": "D"})
    for start, end in (("0001-01-01", "0001-01-02"), ("9999-12-30", "9999-12-31")):
        lingma = client.get(
            "/oapi/v1/lingma/organizations/acme/departmentUsage",
            params={"departmentId": "d", "startTime": start, "endTime": end},
            headers={"x-yunxiao-token": ADMIN},
        )
        assert lingma.status_code in (200, 400), lingma.text
        assert lingma.json() == [] or lingma.json()["errorCode"] == "BadRequest"
    for start, end in (("0001-01-01", "0001-01-02"), ("9999-12-30", "9999-12-31")):
        environment = client.get(
            "/api/statistics/",
            params={
                "stats_type": "users",
                "start": start,
                "end": end,
                "org_domain": "acme.example",
            },
            headers=bearer(ADMIN),
        )
        assert environment.status_code == 400, environment.text
    token = admin.token("acme", "read")
    apps = client.post(
        "/api/v1/app/usage_stats", json={"date": "0001-01-01"}, headers=bearer(token)
    )
    assert apps.status_code == 400, apps.text
