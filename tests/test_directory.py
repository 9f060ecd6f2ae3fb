"""The directory through Tally's own API: PUT/GET of every kind, its rules, and its history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.testclient import TestClient

from tally.model.directory import Member, MemberVersion
from tests.conftest import ADMIN, Admin, bearer


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def test_org_put_and_get(client: TestClient, admin: Admin) -> None:
    admin.org("acme", "Europe/Berlin", domain="acme.example")
    response = client.get("/api/v1/orgs/acme", headers=bearer(ADMIN))
    assert response.json() == {
        "id": "acme",
        "name": "Acme",
        "domain": "acme.example",
        "timezone": "Europe/Berlin",
    }
    assert [o["id"] for o in client.get("/api/v1/orgs", headers=bearer(ADMIN)).json()] == ["acme"]


def test_org_timezone_defaults_to_shanghai(client: TestClient) -> None:
    response = client.put(
        "/api/v1/orgs/o1", json={"name": "O", "domain": "o.example"}, headers=bearer(ADMIN)
    )
    assert response.json()["timezone"] == "Asia/Shanghai"


def test_org_rejects_unknown_timezone(client: TestClient) -> None:
    response = client.put(
        "/api/v1/orgs/o1",
        json={"name": "O", "domain": "o", "timezone": "Mars/Base"},
        headers=bearer(ADMIN),
    )
    body = _problem(response, 400)
    assert body["detail"] == 'timezone "Mars/Base" is not an IANA time zone name'
    assert client.get("/api/v1/orgs", headers=bearer(ADMIN)).json() == []


def test_org_domain_must_be_unique(client: TestClient, admin: Admin) -> None:
    admin.org("a", domain="same.example")
    response = client.put(
        "/api/v1/orgs/b", json={"name": "B", "domain": "same.example"}, headers=bearer(ADMIN)
    )
    _problem(response, 409)


def test_org_timezone_cannot_change_once_events_exist(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    admin.put("acme/members/m1", {"name": "A"})
    admin.events(
        "acme",
        [{"id": "e1", "time": "2026-03-01T10:00:00+08:00", "type": "activity", "member": "m1"}],
    )
    response = client.put(
        "/api/v1/orgs/acme",
        json={"name": "A", "domain": "acme.example", "timezone": "UTC"},
        headers=bearer(ADMIN),
    )
    _problem(response, 409)
    assert (
        client.get("/api/v1/orgs/acme", headers=bearer(ADMIN)).json()["timezone"] == "Asia/Shanghai"
    )


def test_only_environment_admin_puts_orgs(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    token = admin.token("acme", "admin", "read", "ingest")
    response = client.put(
        "/api/v1/orgs/acme", json={"name": "X", "domain": "x"}, headers=bearer(token)
    )
    _problem(response, 403)


def test_department_tree(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    admin.put("acme/departments/root", {"name": "Root"})
    admin.put("acme/departments/eng", {"name": "Engineering", "parent": "root"})
    listed = client.get("/api/v1/orgs/acme/departments", headers=bearer(ADMIN)).json()
    assert listed == [
        {"id": "eng", "name": "Engineering", "parent": "root"},
        {"id": "root", "name": "Root", "parent": None},
    ]
    one = client.get("/api/v1/orgs/acme/departments/eng", headers=bearer(ADMIN))
    assert one.json() == {"id": "eng", "name": "Engineering", "parent": "root"}


def test_department_parent_must_exist_and_not_make_a_cycle(
    client: TestClient, admin: Admin
) -> None:
    admin.org("acme")
    missing = client.put(
        "/api/v1/orgs/acme/departments/eng",
        json={"name": "E", "parent": "nope"},
        headers=bearer(ADMIN),
    )
    assert _problem(missing, 400)["detail"] == 'unknown parent department "nope"'
    admin.put("acme/departments/a", {"name": "A"})
    admin.put("acme/departments/b", {"name": "B", "parent": "a"})
    cycle = client.put(
        "/api/v1/orgs/acme/departments/a", json={"name": "A", "parent": "b"}, headers=bearer(ADMIN)
    )
    _problem(cycle, 400)
    assert (
        client.get("/api/v1/orgs/acme/departments/a", headers=bearer(ADMIN)).json()["parent"]
        is None
    )


def test_member_put_get_with_versions(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    admin.put("acme/departments/d1", {"name": "D1"})
    admin.put("acme/departments/d2", {"name": "D2"})
    admin.put(
        "acme/members/m1",
        {
            "name": "Ann",
            "email": "ann@acme.example",
            "developer": False,
            "departments": ["d1"],
            "created_at": "2026-01-01T00:00:00+08:00",
        },
    )
    admin.put(
        "acme/members/m1",
        {
            "name": "Ann",
            "email": "ann@acme.example",
            "developer": True,
            "departments": ["d2"],
            "created_at": "2026-01-01T00:00:00+08:00",
            "effective_at": "2026-02-01T00:00:00+08:00",
        },
    )
    member = client.get("/api/v1/orgs/acme/members/m1", headers=bearer(ADMIN)).json()
    assert member == {
        "id": "m1",
        "name": "Ann",
        "email": "ann@acme.example",
        "developer": True,
        "departments": ["d2"],
        "created_at": "2026-01-01T00:00:00+08:00",
        "deleted_at": None,
        "versions": [
            {
                "effective_at": "2026-01-01T00:00:00+08:00",
                "developer": False,
                "departments": ["d1"],
            },
            {"effective_at": "2026-02-01T00:00:00+08:00", "developer": True, "departments": ["d2"]},
        ],
    }


def test_member_put_with_same_effective_at_replaces_that_version(
    client: TestClient, admin: Admin
) -> None:
    admin.org("acme")
    admin.put("acme/departments/d1", {"name": "D1"})
    body = {
        "name": "Ann",
        "departments": ["d1"],
        "created_at": "2026-01-01T00:00:00+08:00",
        "effective_at": "2026-02-01T00:00:00+08:00",
    }
    admin.put("acme/members/m1", body)
    admin.put("acme/members/m1", {**body, "developer": True})
    member = client.get("/api/v1/orgs/acme/members/m1", headers=bearer(ADMIN)).json()
    assert member["versions"] == [
        {"effective_at": "2026-02-01T00:00:00+08:00", "developer": True, "departments": ["d1"]},
    ]


def test_repeating_a_member_put_adds_no_version(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    body = {"name": "Ann", "created_at": "2026-01-01T00:00:00+08:00"}
    admin.put("acme/members/m1", body)
    admin.put("acme/members/m1", body)
    member = client.get("/api/v1/orgs/acme/members/m1", headers=bearer(ADMIN)).json()
    assert len(member["versions"]) == 1


def test_member_validation(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    cases = [
        ({"name": "A", "departments": ["ghost"]}, 'unknown department "ghost"'),
        ({"name": "A", "developer": "yes"}, "developer: Expected `bool`, got `str`"),
        (
            {"name": "A", "created_at": "2026-01-01T00:00:00"},
            "created_at: Expected `datetime` with a timezone component",
        ),
        (
            {
                "name": "A",
                "created_at": "2026-02-01T00:00:00Z",
                "deleted_at": "2026-01-01T00:00:00Z",
            },
            "deleted_at must not be before created_at",
        ),
        ({"name": "A", "colour": "red"}, "Object contains unknown field `colour`"),
        ({}, "Object missing required field `name`"),
    ]
    for body, detail in cases:
        response = client.put("/api/v1/orgs/acme/members/m1", json=body, headers=bearer(ADMIN))
        assert _problem(response, 400)["detail"] == detail, body
    assert client.get("/api/v1/orgs/acme/members", headers=bearer(ADMIN)).json() == []


def test_body_that_is_not_json(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    response = client.put(
        "/api/v1/orgs/acme/members/m1",
        content=b"{nope",
        headers={**bearer(ADMIN), "content-type": "application/json"},
    )
    assert _problem(response, 400)["detail"].startswith("the body is not valid JSON")


def test_workspace_and_app(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    admin.put("acme/members/m1", {"name": "Ann", "created_at": "2026-01-01T00:00:00+08:00"})
    admin.put(
        "acme/workspaces/w1",
        {
            "name": "W",
            "created_at": "2026-01-02T00:00:00+08:00",
            "members": [
                {
                    "member": "m1",
                    "since": "2026-01-03T00:00:00+08:00",
                    "until": "2026-02-01T00:00:00+08:00",
                }
            ],
        },
    )
    admin.put(
        "acme/apps/a1", {"name": "CRM", "creator": "m1", "created_at": "2026-01-05T09:30:00Z"}
    )
    assert client.get("/api/v1/orgs/acme/workspaces/w1", headers=bearer(ADMIN)).json() == {
        "id": "w1",
        "name": "W",
        "created_at": "2026-01-02T00:00:00+08:00",
        "deleted_at": None,
        "members": [
            {
                "member": "m1",
                "since": "2026-01-03T00:00:00+08:00",
                "until": "2026-02-01T00:00:00+08:00",
            }
        ],
    }
    assert client.get("/api/v1/orgs/acme/apps", headers=bearer(ADMIN)).json() == [
        {
            "id": "a1",
            "name": "CRM",
            "creator": "m1",
            "created_at": "2026-01-05T17:30:00+08:00",
            "deleted_at": None,
        }
    ]


def test_workspace_and_app_references_must_exist(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    ws = client.put(
        "/api/v1/orgs/acme/workspaces/w1",
        json={"name": "W", "members": [{"member": "x"}]},
        headers=bearer(ADMIN),
    )
    assert _problem(ws, 400)["detail"] == 'unknown member "x"'
    app = client.put(
        "/api/v1/orgs/acme/apps/a1", json={"name": "A", "creator": "x"}, headers=bearer(ADMIN)
    )
    assert _problem(app, 400)["detail"] == 'unknown member "x"'


def test_get_of_unknown_object_is_404(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    for kind in ("departments", "members", "workspaces", "apps"):
        response = client.get(f"/api/v1/orgs/acme/{kind}/nope", headers=bearer(ADMIN))
        _problem(response, 404)


# -- history: "as of t" -----------------------------------------------------------------------


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_version_in_effect_before_and_after_a_change() -> None:
    first = MemberVersion(
        effective_at=_at("2026-01-01T00:00:00+08:00"), developer=False, departments=("d1",)
    )
    second = MemberVersion(
        effective_at=_at("2026-02-01T00:00:00+08:00"), developer=True, departments=("d2",)
    )
    member = Member(
        id="m",
        name="M",
        email="",
        created_at=first.effective_at,
        deleted_at=None,
        versions=(first, second),
    )
    assert member.version_at(_at("2025-06-01T00:00:00+08:00")) is first  # before any: the first
    assert member.version_at(_at("2026-01-31T23:59:59+08:00")) is first
    assert member.version_at(_at("2026-02-01T00:00:00+08:00")) is second  # effective_at <= t
    # "at the end of day D" reads the version in effect just before M
    assert member.version_before(_at("2026-02-01T00:00:00+08:00")) is first
    assert member.version_before(_at("2026-02-01T00:00:01+08:00")) is second


def test_directory_answers_for_past_times_through_the_api(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    admin.put("acme/departments/d1", {"name": "D1"})
    admin.put("acme/departments/d2", {"name": "D2"})
    admin.put(
        "acme/members/m1",
        {"name": "A", "departments": ["d1"], "created_at": "2026-01-01T00:00:00+08:00"},
    )
    # a change made today but effective in the past, and one effective in the future
    admin.put(
        "acme/members/m1",
        {"name": "A", "departments": ["d2"], "effective_at": "2026-02-01T00:00:00+08:00"},
    )
    admin.put(
        "acme/members/m1",
        {"name": "A", "departments": ["d1", "d2"], "effective_at": "2026-04-01T00:00:00+08:00"},
    )
    member = client.get("/api/v1/orgs/acme/members/m1", headers=bearer(ADMIN)).json()
    assert member["departments"] == ["d2"]  # the clock says 2026-03-15
    assert [v["departments"] for v in member["versions"]] == [["d1"], ["d2"], ["d1", "d2"]]
