"""Ids and names carry no control characters (issue 19, item 3): a NUL or a line break in an
event id, a path id or a name is refused with a reason, and nothing is stored."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from tests.conftest import ADMIN, Admin, bearer

RULE = "without a slash or control characters, not starting with white space"


@pytest.fixture
def acme(admin: Admin) -> Admin:
    admin.org("acme")
    admin.put("acme/members/m1", {"name": "M", "created_at": "2026-01-01T00:00:00+08:00"})
    return admin


@pytest.mark.parametrize("bad", ["nul\x00dept", "line\nbreak", "tab\tbed", "del\x7f", "c1\x85"])
@pytest.mark.parametrize("kind", ["departments", "members", "workspaces"])
def test_a_path_id_with_a_control_character_is_400(
    client: TestClient, acme: Admin, kind: str, bad: str
) -> None:
    path = f"/api/v1/orgs/acme/{kind}/{quote(bad, safe='')}"
    response = client.put(path, json={"name": "X"}, headers=bearer(ADMIN))
    assert response.status_code == 400, response.text
    assert RULE in response.json()["detail"]
    listed = client.get(f"/api/v1/orgs/acme/{kind}", headers=bearer(ADMIN)).json()
    assert [item["id"] for item in listed] == (["m1"] if kind == "members" else [])


def test_an_org_id_with_a_control_character_is_400(client: TestClient) -> None:
    body = {"name": "N", "domain": "n.example"}
    response = client.put("/api/v1/orgs/n%00o", json=body, headers=bearer(ADMIN))
    assert response.status_code == 400
    assert RULE in response.json()["detail"]
    assert client.get("/api/v1/orgs", headers=bearer(ADMIN)).json() == []


@pytest.mark.parametrize("name", ["a\x00b", "two\nlines", "bell\x07"])
def test_a_name_with_a_control_character_is_400(client: TestClient, acme: Admin, name: str) -> None:
    response = client.put(
        "/api/v1/orgs/acme/departments/d1", json={"name": name}, headers=bearer(ADMIN)
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name" or "name" in response.json()["detail"]
    assert client.get("/api/v1/orgs/acme/departments/d1", headers=bearer(ADMIN)).status_code == 404


def test_ordinary_unicode_ids_and_names_are_kept(client: TestClient, acme: Admin) -> None:
    answer = acme.put("acme/departments/研发-β", {"name": 'R&D "core" \\ 日本'})
    assert answer["id"] == "研发-β"
    assert answer["name"] == 'R&D "core" \\ 日本'


def event(event_id: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": event_id,
        "time": "2026-03-01T10:00:00+08:00",
        "type": "completion",
    }
    body |= {"member": "m1", "ide": "vscode", "language": "go", "lines_suggested": 1}
    return body | {"accepted": False, "lines_accepted": 0} | fields


def test_event_ids_and_labels_with_control_characters_are_rejected(
    client: TestClient, acme: Admin
) -> None:
    answer = acme.events(
        "acme",
        [event("ok"), event("e\x00x"), event("e2", ide="vs\ncode"), event("e3", language="g\x1fo")],
    )
    assert answer["accepted"] == 1
    assert answer["rejected"] == [
        {
            "index": 1,
            "id": "e\x00x",
            "error": "id must be a non-empty string of at most 200 characters,"
            " without control characters",
        },
        {
            "index": 2,
            "id": "e2",
            "error": "ide must be a non-empty string of at most 100 characters,"
            " without control characters",
        },
        {
            "index": 3,
            "id": "e3",
            "error": "language must be a non-empty string of at most 100 characters,"
            " without control characters",
        },
    ]
