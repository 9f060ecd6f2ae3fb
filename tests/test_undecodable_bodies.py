"""Bytes that are not UTF-8, and JSON nested deeper than a decoder recurses, are the client's
fault: a 400 in the family's own shape, or, inside an events body, a rejected item while the
good items are stored. Never a 5xx (issue 19, items 1 and 2)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import ADMIN, Admin, bearer

EVENTS = "/api/v1/orgs/acme/events"
DEEP = b"[" * 5000 + b"]" * 5000


def event(n: int) -> dict[str, Any]:
    return {"id": f"e{n}", "time": "2026-03-01T10:00:00+08:00", "type": "activity", "member": "m1"}


def bad_utf8_event(n: int) -> bytes:
    return json.dumps(event(n)).encode().replace(b'"m1"', b'"m\xff1"')


@pytest.fixture
def acme(admin: Admin) -> Admin:
    admin.org("acme")
    admin.put("acme/members/m1", {"name": "M", "created_at": "2026-01-01T00:00:00+08:00"})
    return admin


def stored_ids(client: TestClient) -> list[str]:
    page = client.get(EVENTS, params={"limit": 1000}, headers=bearer(ADMIN)).json()
    return sorted(e["id"] for e in page["events"])


def test_an_ndjson_line_that_is_not_utf8_is_rejected_alone(client: TestClient, acme: Admin) -> None:
    lines = [json.dumps(event(n)).encode() for n in range(1000)]
    lines[500] = bad_utf8_event(500)
    response = client.post(
        EVENTS,
        content=b"\n".join(lines),
        headers={**bearer(ADMIN), "content-type": "application/x-ndjson"},
    )
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 999,
        "duplicates": 0,
        "rejected": [{"index": 500, "id": None, "error": "the item is not valid UTF-8"}],
    }
    assert len(stored_ids(client)) == 999
    assert "e500" not in stored_ids(client)


def test_an_array_item_that_is_not_utf8_is_rejected_alone(client: TestClient, acme: Admin) -> None:
    body = b"[" + b",".join([json.dumps(event(0)).encode(), bad_utf8_event(1)]) + b"]"
    response = client.post(
        EVENTS, content=body, headers={**bearer(ADMIN), "content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    assert response.json()["rejected"] == [
        {"index": 1, "id": None, "error": "the item is not valid UTF-8"}
    ]
    assert stored_ids(client) == ["e0"]


def test_a_deeply_nested_events_body_is_400_and_stores_nothing(
    client: TestClient, acme: Admin
) -> None:
    body = b"[" + json.dumps(event(0)).encode() + b"," + DEEP + b"]"
    response = client.post(
        EVENTS, content=body, headers={**bearer(ADMIN), "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith("the body is nested too deeply;")
    assert stored_ids(client) == []


def test_a_deeply_nested_ndjson_line_is_rejected_alone(client: TestClient, acme: Admin) -> None:
    deep_item = b'{"id": "e1", "extra": ' + DEEP + b"}"
    body = json.dumps(event(0)).encode() + b"\n" + deep_item
    response = client.post(
        EVENTS, content=body, headers={**bearer(ADMIN), "content-type": "application/x-ndjson"}
    )
    assert response.status_code == 200
    assert response.json()["rejected"] == [
        {"index": 1, "id": None, "error": "the item is nested too deeply"}
    ]
    assert stored_ids(client) == ["e0"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/orgs/acme/departments/d1", b'{"name": "\xff"}'),
        ("/api/v1/orgs/acme/members/m2", b'{"name": "\xfe\xff"}'),
    ],
)
def test_directory_bodies_that_cannot_be_read_are_400(
    client: TestClient, acme: Admin, path: str, body: bytes
) -> None:
    response = client.put(path, content=body, headers=bearer(ADMIN))
    assert response.status_code == 400
    assert response.json()["status"] == 400
    assert response.json()["detail"] in (
        "the body is not valid UTF-8",
        "the body is nested too deeply",
    )
    assert client.get(path, headers=bearer(ADMIN)).status_code == 404  # nothing was stored


def test_a_token_request_that_is_not_utf8_is_400(client: TestClient, acme: Admin) -> None:
    response = client.post(
        "/api/v1/orgs/acme/tokens", content=b'{"scopes": ["\xff"]}', headers=bearer(ADMIN)
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "the body is not valid UTF-8"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"date": "\xff"}', "the body is not valid UTF-8"),
        (DEEP, "the body must be a JSON object"),
    ],
)
def test_app_usage_bodies_that_cannot_be_read_are_4000(
    client: TestClient, acme: Admin, body: bytes, message: str
) -> None:
    token = acme.token("acme", "read")
    response = client.post("/api/v1/app/usage_stats", content=body, headers=bearer(token))
    assert response.status_code == 400
    assert response.json() == {"code": 4000, "msg": message}
