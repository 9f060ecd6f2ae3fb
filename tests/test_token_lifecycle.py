"""Tokens end: revocation (API and CLI, every worker), expiry, ``last_used_at``, the generated
admin token retired once one is configured, and ``no-store`` on answers that show a secret."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from tally.api.app import create_app
from tally.cli import cli
from tally.service import Tally
from tally.settings import Settings
from tests.conftest import ADMIN, Admin, FixedClock, bearer
from tests.services import ScaleOutURLs

# NOW (conftest) is 2026-03-15 04:00 UTC, 12:00 in Shanghai, the orgs' zone.
NOW_LOCAL = "2026-03-15T12:00:00+08:00"


@pytest.fixture
def acme(admin: Admin) -> Admin:
    admin.org("acme")
    admin.org("globex")
    return admin


def _tokens(client: TestClient, org: str = "acme") -> dict[str, dict[str, object]]:
    response = client.get(f"/api/v1/orgs/{org}/tokens", headers=bearer(ADMIN))
    assert response.status_code == 200, response.text
    return {t["id"]: t for t in response.json()}


def _create(client: TestClient, body: dict[str, object], org: str = "acme") -> dict[str, str]:
    response = client.post(f"/api/v1/orgs/{org}/tokens", json=body, headers=bearer(ADMIN))
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created: dict[str, str] = response.json()
    return created


def _reads(client: TestClient, token: str) -> int:
    status: int = client.get("/api/v1/orgs/acme", headers=bearer(token)).status_code
    return status


def test_a_revoked_token_is_refused_from_the_next_request(
    acme: Admin, client: TestClient, clock: FixedClock
) -> None:
    created = _create(client, {"scopes": ["read"]})
    assert _reads(client, created["token"]) == 200

    response = client.delete(f"/api/v1/orgs/acme/tokens/{created['id']}", headers=bearer(ADMIN))
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["cache-control"] == "no-store"

    refused = client.get("/api/v1/orgs/acme", headers=bearer(created["token"]))
    assert refused.status_code == 401
    assert refused.json()["detail"] == "the token has been revoked"
    assert _tokens(client)[created["id"]]["revoked_at"] == NOW_LOCAL

    clock.now += timedelta(hours=1)  # revoking again changes nothing, not even the time
    again = client.delete(f"/api/v1/orgs/acme/tokens/{created['id']}", headers=bearer(ADMIN))
    assert again.status_code == 204
    assert _tokens(client)[created["id"]]["revoked_at"] == NOW_LOCAL


def test_an_org_admin_revokes_only_its_own_tokens(acme: Admin, client: TestClient) -> None:
    acme_token = _create(client, {"scopes": ["read"]})
    globex_admin = _create(client, {"scopes": ["admin"]}, org="globex")["token"]

    unknown = client.delete("/api/v1/orgs/acme/tokens/nosuchtoken", headers=bearer(ADMIN))
    assert unknown.status_code == 404
    assert unknown.json()["title"] == "Not found"
    # Through its own org's path, another org's token id is simply not found ...
    cross = client.delete(
        f"/api/v1/orgs/globex/tokens/{acme_token['id']}", headers=bearer(globex_admin)
    )
    assert cross.status_code == 404
    # ... and through the other org's path, the caller may not act at all.
    foreign = client.delete(
        f"/api/v1/orgs/acme/tokens/{acme_token['id']}", headers=bearer(globex_admin)
    )
    assert foreign.status_code == 403
    assert _reads(client, acme_token["token"]) == 200
    assert _tokens(client)[acme_token["id"]]["revoked_at"] is None


def test_a_token_expires_at_its_time(acme: Admin, client: TestClient, clock: FixedClock) -> None:
    created = _create(client, {"scopes": ["read"], "expires_at": "2026-03-15T05:00:00Z"})
    assert _tokens(client)[created["id"]]["expires_at"] == "2026-03-15T13:00:00+08:00"

    clock.now += timedelta(minutes=59, seconds=59)
    assert _reads(client, created["token"]) == 200
    clock.now += timedelta(seconds=1)
    refused = client.get("/api/v1/orgs/acme", headers=bearer(created["token"]))
    assert refused.status_code == 401
    assert refused.json()["detail"] == "the token has expired"


@pytest.mark.parametrize(
    ("expires_at", "reason"),
    [
        ("2026-03-15T04:00:00Z", "expires_at must lie in the future"),
        ("2026-03-15T03:00:00Z", "expires_at must lie in the future"),
        ("2026-03-16T12:00:00", "expires_at must be an RFC 3339 date-time with an offset"),
        ("tomorrow", "expires_at must be an RFC 3339 date-time with an offset"),
    ],
)
def test_a_bad_expiry_is_refused_and_creates_nothing(
    acme: Admin, client: TestClient, expires_at: str, reason: str
) -> None:
    response = client.post(
        "/api/v1/orgs/acme/tokens",
        json={"scopes": ["read"], "expires_at": expires_at},
        headers=bearer(ADMIN),
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith(reason)
    assert response.json()["errors"][0]["field"] == "expires_at"
    assert _tokens(client) == {}


def test_last_used_at_is_kept_to_the_minute(
    acme: Admin, client: TestClient, clock: FixedClock
) -> None:
    created = _create(client, {"scopes": ["read"]})
    assert _tokens(client)[created["id"]]["last_used_at"] is None

    assert _reads(client, created["token"]) == 200
    assert _tokens(client)[created["id"]]["last_used_at"] == NOW_LOCAL
    clock.now += timedelta(seconds=59)
    assert _reads(client, created["token"]) == 200
    assert _tokens(client)[created["id"]]["last_used_at"] == NOW_LOCAL
    clock.now += timedelta(seconds=1)
    assert _reads(client, created["token"]) == 200
    assert _tokens(client)[created["id"]]["last_used_at"] == "2026-03-15T12:01:00+08:00"


def test_the_listing_is_not_cached(acme: Admin, client: TestClient) -> None:
    response = client.get("/api/v1/orgs/acme/tokens", headers=bearer(ADMIN))
    assert response.headers["cache-control"] == "no-store"


def _serve(settings: Settings) -> tuple[Tally, TestClient, str | None]:
    tally = Tally(settings)
    secret = tally.access.bootstrap_admin(settings.admin_token)
    return tally, TestClient(create_app(tally)), secret


def test_the_generated_admin_token_is_retired_once_one_is_configured(
    settings: Settings,
) -> None:
    generated = dataclasses.replace(settings, admin_token="")
    tally, client, secret = _serve(generated)
    assert secret is not None
    assert client.get("/api/v1/orgs", headers=bearer(secret)).status_code == 200
    tally.close()

    tally, client, again = _serve(generated)  # a second start prints nothing new
    assert again is None
    assert client.get("/api/v1/orgs", headers=bearer(secret)).status_code == 200
    tally.close()

    tally, client, _ = _serve(settings)  # TALLY_ADMIN_TOKEN is now set
    assert client.get("/api/v1/orgs", headers=bearer(ADMIN)).status_code == 200
    refused = client.get("/api/v1/orgs", headers=bearer(secret))
    assert refused.status_code == 401
    assert refused.json()["detail"] == "the token has been revoked"
    tally.close()

    # Unset again: the retired token stays retired, and a new one is generated and shown.
    tally, client, fresh = _serve(generated)
    assert fresh is not None
    assert fresh != secret
    assert client.get("/api/v1/orgs", headers=bearer(secret)).status_code == 401
    assert client.get("/api/v1/orgs", headers=bearer(fresh)).status_code == 200
    tally.close()


CREATE = ("token", "create", "--org", "acme", "--scope", "read")


def test_the_cli_creates_lists_and_revokes(settings: Settings, acme: Admin, tally: Tally) -> None:
    db = str(settings.db_path)
    tally.close()  # the API's Tally holds the file; the CLI opens it after that one is closed
    runner = CliRunner()
    env = {"TALLY_NOW": "2026-03-15T04:00:00Z"}
    created = runner.invoke(
        cli,
        [*CREATE, "--db", db, "--expires-at", "2026-04-01T00:00:00+08:00"],
        env=env,
    )
    assert created.exit_code == 0, created.output
    secret = created.output.strip()

    listed = runner.invoke(cli, ["token", "list", "--db", db, "--org", "acme"], env=env)
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert len(rows) == 1
    assert rows[0]["scopes"] == ["read"]
    assert rows[0]["expires_at"] == "2026-03-31T16:00:00Z"
    assert rows[0]["revoked_at"] is None
    assert secret not in listed.output

    revoked = runner.invoke(
        cli, ["token", "revoke", "--db", db, "--org", "acme", rows[0]["id"]], env=env
    )
    assert revoked.exit_code == 0, revoked.output
    unknown = runner.invoke(cli, ["token", "revoke", "--db", db, "--org", "acme", "nope"], env=env)
    assert unknown.exit_code == 1
    assert 'token "nope" does not exist' in unknown.output
    bad = runner.invoke(
        cli,
        [*CREATE, "--db", db, "--expires-at", "2026-01-01T00:00:00Z"],
        env=env,
    )
    assert bad.exit_code == 1
    assert "expires_at must lie in the future" in bad.output

    with Tally(settings) as reopened:
        reopened.access.bootstrap_admin(ADMIN)
        client = TestClient(create_app(reopened))
        refused = client.get("/api/v1/orgs/acme", headers=bearer(secret))
        assert refused.status_code == 401
        assert refused.json()["detail"] == "the token has been revoked"


def test_a_file_from_before_token_lifecycles_opens_with_its_tokens(
    tmp_path: Path, settings: Settings
) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute(
            "CREATE TABLE tokens (id VARCHAR PRIMARY KEY, hash VARCHAR NOT NULL, org VARCHAR,"
            " scopes VARCHAR[] NOT NULL, created_at BIGINT NOT NULL)"
        )
        db.execute("INSERT INTO tokens VALUES ('t1', 'h1', 'acme', ['read'], 0)")
    with Tally(dataclasses.replace(settings, db_path=path)) as tally:
        (token,) = tally.directory_store.list_tokens()
    assert (token.id, token.org, token.scopes) == ("t1", "acme", ("read",))
    assert (token.expires_at, token.revoked_at, token.last_used_at) == (None, None, None)


def test_a_revocation_on_one_worker_holds_on_every_worker(
    settings: Settings, scale_out_urls: ScaleOutURLs
) -> None:
    shared = dataclasses.replace(
        settings, directory_url=scale_out_urls.directory, events_url=scale_out_urls.events
    )
    with Tally(shared) as first, Tally(shared) as second:
        for worker in (first, second):
            worker.access.bootstrap_admin(ADMIN)
        one, two = TestClient(create_app(first)), TestClient(create_app(second))
        Admin(one).org("acme")
        created = _create(one, {"scopes": ["read"]})
        assert _reads(two, created["token"]) == 200
        assert _tokens(one)[created["id"]]["last_used_at"] == NOW_LOCAL

        deleted = one.delete(f"/api/v1/orgs/acme/tokens/{created['id']}", headers=bearer(ADMIN))
        assert deleted.status_code == 204
        refused = two.get("/api/v1/orgs/acme", headers=bearer(created["token"]))
        assert refused.status_code == 401
        assert refused.json()["detail"] == "the token has been revoked"
