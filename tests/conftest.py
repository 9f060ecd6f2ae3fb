"""Shared fixtures: a real DuckDB file per test, a pinned clock, an in-process API client."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from tally.api.app import create_app
from tally.service import Tally
from tally.settings import Settings

if TYPE_CHECKING:
    from tests.services import ScaleOutURLs

#: The real servers (PostgreSQL, a two-shard ClickHouse cluster) that scale-out tests ask for.
pytest_plugins = ["tests.services"]

ADMIN = "test-environment-admin-token"
NOW = datetime(2026, 3, 15, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


class FixedClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def settings(tmp_path: Path, clock: FixedClock) -> Settings:
    return Settings(
        db_path=tmp_path / "tally.duckdb",
        admin_token=ADMIN,
        clock=clock,
        apps_rate_limit_per_second=0,
        rollup_refresh_seconds=0,  # tests refresh the per-department rollups when they mean to
    )


#: The API and scenario suites that run over both store configurations (contract section 8:
#: the same answers, byte for byte, from DuckDB and from PostgreSQL + a 2-shard ClickHouse).
BOTH_CONFIGURATIONS = {
    "test_apps",
    "test_auth",
    "test_directory",
    "test_dst_days",
    "test_environment",
    "test_events",
    "test_lingma",
    "test_scale_out",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if "stores_kind" in metafunc.fixturenames and module in BOTH_CONFIGURATIONS:
        metafunc.parametrize("stores_kind", ["duckdb", "scale-out"], indirect=True)


@pytest.fixture
def stores_kind(request: pytest.FixtureRequest) -> str:
    """Which stores the ``tally`` fixture opens: ``duckdb`` or ``scale-out``."""
    kind: str = getattr(request, "param", "duckdb")
    return kind


@pytest.fixture
def tally(settings: Settings, stores_kind: str, request: pytest.FixtureRequest) -> Iterator[Tally]:
    if stores_kind == "scale-out":
        urls: ScaleOutURLs = request.getfixturevalue("scale_out_urls")
        settings = dataclasses.replace(
            settings, directory_url=urls.directory, events_url=urls.events
        )
    instance = Tally(settings)
    instance.access.bootstrap_admin(settings.admin_token)
    yield instance
    instance.close()


@pytest.fixture
def client(tally: Tally) -> Iterator[TestClient]:
    with TestClient(create_app(tally), raise_server_exceptions=True) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Admin:
    """Builds directories through the real API with the environment admin's token."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.put(f"/api/v1/orgs/{path}", json=body, headers=bearer(ADMIN))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def get(self, path: str) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/orgs/{path}", headers=bearer(ADMIN))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def org(self, org: str, timezone: str = "Asia/Shanghai", domain: str | None = None) -> None:
        self.put(
            org, {"name": org.title(), "domain": domain or f"{org}.example", "timezone": timezone}
        )

    def token(self, org: str, *scopes: str) -> str:
        response = self.client.post(
            f"/api/v1/orgs/{org}/tokens", json={"scopes": list(scopes)}, headers=bearer(ADMIN)
        )
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token

    def events(self, org: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        response = self.client.post(
            f"/api/v1/orgs/{org}/events", json=events, headers=bearer(ADMIN)
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture
def admin(client: TestClient) -> Admin:
    return Admin(client)
