"""A JSON body must not be declared as something else (issue 19, item 10): a browser sends
``text/plain`` and form bodies across origins without a preflight, so they are refused (415,
in the family's shape) and change nothing; a body without a ``Content-Type`` is read as JSON."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.conftest import ADMIN, Admin, bearer

DEPARTMENT = b'{"name": "Research"}'


@pytest.mark.parametrize(
    "media",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ],
)
def test_a_directory_put_declared_as_not_json_is_refused(
    admin: Admin, client: TestClient, media: str
) -> None:
    admin.org("acme")
    response = client.put(
        "/api/v1/orgs/acme/departments/research",
        content=DEPARTMENT,
        headers={**bearer(ADMIN), "content-type": media},
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert (
        response.json()["detail"]
        == f"send the body as application/json, not {media.split(';')[0].lower()}"
    )
    missing = client.get("/api/v1/orgs/acme/departments/research", headers=bearer(ADMIN))
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"content-type": "application/json; charset=utf-8"},
        {"content-type": "application/merge-patch+json"},
    ],
)
def test_json_or_undeclared_bodies_are_read(
    admin: Admin, client: TestClient, headers: dict[str, str]
) -> None:
    admin.org("acme")
    response = client.put(
        "/api/v1/orgs/acme/departments/research",
        content=DEPARTMENT,
        headers={**bearer(ADMIN), **headers},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"id": "research", "name": "Research", "parent": None}


def test_a_token_request_as_text_creates_no_token(admin: Admin, client: TestClient) -> None:
    admin.org("acme")
    response = client.post(
        "/api/v1/orgs/acme/tokens",
        content=b'{"scopes": ["read"]}',
        headers={**bearer(ADMIN), "content-type": "text/plain"},
    )
    assert response.status_code == 415
    assert client.get("/api/v1/orgs/acme/tokens", headers=bearer(ADMIN)).json() == []


def test_the_app_usage_api_answers_415_in_its_shape(admin: Admin, client: TestClient) -> None:
    admin.org("acme")
    token = admin.token("acme", "read")
    response = client.post(
        "/api/v1/app/usage_stats",
        content=b"{}",
        headers={**bearer(token), "content-type": "text/plain"},
    )
    assert response.status_code == 415
    assert response.json() == {
        "code": 4150,
        "msg": "send the body as application/json, not text/plain",
    }
