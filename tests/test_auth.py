"""Tokens: shown once, stored hashed, scoped, and never revealing another organization."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from starlette.testclient import TestClient

from tally.service import Tally
from tally.settings import Settings
from tests.conftest import ADMIN, Admin, bearer

ROUTES = [
    ("GET", "/api/v1/orgs/{org}"),
    ("GET", "/api/v1/orgs/{org}/departments"),
    ("GET", "/api/v1/orgs/{org}/departments/d1"),
    ("PUT", "/api/v1/orgs/{org}/departments/d1"),
    ("GET", "/api/v1/orgs/{org}/members"),
    ("GET", "/api/v1/orgs/{org}/members/m1"),
    ("PUT", "/api/v1/orgs/{org}/members/m1"),
    ("GET", "/api/v1/orgs/{org}/workspaces"),
    ("GET", "/api/v1/orgs/{org}/workspaces/w1"),
    ("PUT", "/api/v1/orgs/{org}/workspaces/w1"),
    ("GET", "/api/v1/orgs/{org}/apps"),
    ("GET", "/api/v1/orgs/{org}/apps/a1"),
    ("PUT", "/api/v1/orgs/{org}/apps/a1"),
    ("GET", "/api/v1/orgs/{org}/tokens"),
    ("POST", "/api/v1/orgs/{org}/tokens"),
    ("DELETE", "/api/v1/orgs/{org}/tokens/t1"),
    ("GET", "/api/v1/orgs/{org}/events"),
    ("POST", "/api/v1/orgs/{org}/events"),
]
NEEDED = {
    ("GET", "/api/v1/orgs/{org}/tokens"): "admin",
    ("POST", "/api/v1/orgs/{org}/tokens"): "admin",
    ("DELETE", "/api/v1/orgs/{org}/tokens/t1"): "admin",
    ("POST", "/api/v1/orgs/{org}/events"): "ingest",
}


def _needed(method: str, path: str) -> str:
    return NEEDED.get((method, path), "admin" if method == "PUT" else "read")


@pytest.fixture
def two_orgs(admin: Admin) -> dict[str, str]:
    admin.org("acme")
    admin.org("globex")
    return {scope: admin.token("acme", scope) for scope in ("read", "ingest", "admin")}


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_token_is_401(
    client: TestClient, two_orgs: dict[str, str], method: str, path: str
) -> None:
    response = client.request(method, path.format(org="acme"), json={})
    assert response.status_code == 401
    assert response.json()["title"] == "Unauthorized"


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_unknown_token_is_401(
    client: TestClient, two_orgs: dict[str, str], method: str, path: str
) -> None:
    response = client.request(
        method, path.format(org="acme"), json={}, headers=bearer("tly_not-a-real-token")
    )
    assert response.status_code == 401
    assert response.json()["detail"] == "the token is not valid"


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_wrong_scope_is_403(
    client: TestClient, two_orgs: dict[str, str], method: str, path: str
) -> None:
    needed = _needed(method, path)
    for scope, token in two_orgs.items():
        if scope == needed:
            continue
        response = client.request(method, path.format(org="acme"), json={}, headers=bearer(token))
        assert response.status_code == 403, (scope, response.text)
        assert response.json()["detail"] == f'this token lacks the "{needed}" scope'


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_other_org_is_403_whether_or_not_it_exists(
    client: TestClient, two_orgs: dict[str, str], method: str, path: str
) -> None:
    token = two_orgs[_needed(method, path)]
    existing = client.request(method, path.format(org="globex"), json={}, headers=bearer(token))
    missing = client.request(method, path.format(org="nowhere"), json={}, headers=bearer(token))
    assert existing.status_code == missing.status_code == 403
    strip = {"request_id"}
    assert {k: v for k, v in existing.json().items() if k not in strip} == {
        k: v for k, v in missing.json().items() if k not in strip
    }


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_environment_admin_gets_404_for_unknown_org(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path.format(org="nowhere"), json={}, headers=bearer(ADMIN))
    assert response.status_code == 404
    assert response.json()["detail"] == 'organization "nowhere" does not exist'


def test_org_token_lists_only_its_own_org(client: TestClient, two_orgs: dict[str, str]) -> None:
    listed = client.get("/api/v1/orgs", headers=bearer(two_orgs["read"])).json()
    assert [o["id"] for o in listed] == ["acme"]


def test_token_is_shown_once_and_stored_hashed(
    client: TestClient, admin: Admin, settings: Settings, tally: Tally
) -> None:
    admin.org("acme")
    created = client.post(
        "/api/v1/orgs/acme/tokens", json={"scopes": ["read", "ingest"]}, headers=bearer(ADMIN)
    )
    assert created.status_code == 201
    secret = created.json()["token"]
    assert created.json()["scopes"] == ["read", "ingest"]
    listed = client.get("/api/v1/orgs/acme/tokens", headers=bearer(ADMIN)).json()
    assert listed == [
        {
            "id": created.json()["id"],
            "scopes": ["read", "ingest"],
            "created_at": "2026-03-15T12:00:00+08:00",
            "expires_at": None,
            "revoked_at": None,
            "last_used_at": None,
        }
    ]
    assert secret not in str(listed)
    dump = _stored_tokens(tally)  # the store itself never holds the secret
    assert created.json()["id"] in dump
    assert secret not in dump
    assert len(secret) > 40


def _stored_tokens(tally: Tally) -> str:
    """Every stored token row, as text, read from the store's database directly."""
    settings = tally.settings
    tally.close()
    if settings.scale_out:
        import psycopg

        with psycopg.connect(settings.directory_url) as conn:
            return str(conn.execute("SELECT * FROM tokens").fetchall())
    with duckdb.connect(str(settings.db_path), read_only=True) as raw:
        return str(raw.execute("SELECT * FROM tokens").fetchall())


def test_token_scopes_must_be_known(client: TestClient, admin: Admin) -> None:
    admin.org("acme")
    for scopes in ([], ["write"], "read"):
        response = client.post(
            "/api/v1/orgs/acme/tokens", json={"scopes": scopes}, headers=bearer(ADMIN)
        )
        assert response.status_code == 400, scopes


def test_admin_token_generated_once_and_kept_only_as_hash(tmp_path: Path) -> None:
    settings = Settings(db_path=tmp_path / "t.duckdb")
    with Tally(settings) as first:
        secret = first.access.bootstrap_admin("")
        assert secret is not None
        assert first.access.authenticate(secret).is_environment_admin
    with Tally(settings) as second:
        assert second.access.bootstrap_admin("") is None  # not printed again
        assert second.access.authenticate(secret).is_environment_admin
    raw = duckdb.connect(str(settings.db_path), read_only=True)
    assert secret not in str(raw.execute("SELECT * FROM tokens").fetchall())
    raw.close()


def test_configured_admin_token_works(client: TestClient) -> None:
    assert client.get("/api/v1/orgs", headers=bearer(ADMIN)).status_code == 200
    assert client.get("/api/v1/orgs", headers=bearer(ADMIN + "x")).status_code == 401
