"""Settings reach the parts they configure."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tally.api.app import create_app
from tally.service import Tally
from tally.settings import Settings
from tests.conftest import ADMIN, bearer


def _duckdb_setting(tally: Tally, name: str) -> str:
    row = tally.store._db.execute(f"SELECT current_setting('{name}')").fetchone()  # type: ignore[attr-defined]
    assert row is not None
    return str(row[0])


def test_store_settings_come_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "TALLY_DB_PATH": str(tmp_path / "t.duckdb"),
            "TALLY_STORE_CHECKPOINT_THRESHOLD": "64MB",
            "TALLY_STORE_MEMORY_LIMIT": "512MB",
        }
    )
    with Tally(settings) as tally:
        # DuckDB reports sizes in MiB: 64 MB = 61.0 MiB, 512 MB = 488.2 MiB
        assert _duckdb_setting(tally, "checkpoint_threshold") == "61.0 MiB"
        assert _duckdb_setting(tally, "memory_limit") == "488.2 MiB"


def test_the_default_checkpoint_threshold_is_large(tmp_path: Path) -> None:
    with Tally(Settings(db_path=tmp_path / "t.duckdb")) as tally:
        assert _duckdb_setting(tally, "checkpoint_threshold") == "953.6 MiB"  # 1 GB


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("Yes", True), (" on ", True), ("0", False), ("off", False)],
)
def test_booleans_come_from_the_environment(raw: str, expected: bool) -> None:
    assert Settings.from_env({"TALLY_SERVER_TIMING": raw}).server_timing is expected


def test_a_boolean_that_is_not_one_names_its_variable() -> None:
    assert Settings.from_env({}).server_timing is False
    with pytest.raises(ValueError, match="TALLY_SERVER_TIMING: not a boolean: 'maybe'"):
        Settings.from_env({"TALLY_SERVER_TIMING": "maybe"})


SERVER_TIMING = re.compile(r"app;dur=\d+\.\d{3}")


@pytest.mark.parametrize("enabled", [True, False])
def test_server_timing_header_follows_the_setting(settings: Settings, enabled: bool) -> None:
    with Tally(dataclasses.replace(settings, server_timing=enabled)) as tally:
        tally.access.bootstrap_admin(ADMIN)
        with TestClient(create_app(tally)) as client:
            answers = [
                client.get("/api/v1/orgs", headers=bearer(ADMIN)),  # an answer
                client.get("/api/statistics/", params={"stats_type": "users"}),  # an error
                client.get("/oapi/v1/lingma/organizations/x/departmentUsage"),
            ]
    assert [a.status_code for a in answers] == [200, 401, 401]
    for answer in answers:
        header = answer.headers.get("server-timing")
        if enabled:
            assert header is not None
            assert SERVER_TIMING.fullmatch(header), header
        else:
            assert header is None


def test_now_can_be_pinned_through_the_environment() -> None:
    settings = Settings.from_env({"TALLY_NOW": "2026-11-29T23:30:00-05:00"})
    assert settings.clock() == datetime(2026, 11, 30, 4, 30, tzinfo=UTC)
    assert settings.clock() == settings.clock()  # it does not move


@pytest.mark.parametrize("raw", ["2026-11-29T23:30:00", "yesterday"])
def test_a_pinned_now_needs_an_instant_with_an_offset(raw: str) -> None:
    with pytest.raises(ValueError, match="TALLY_NOW"):
        Settings.from_env({"TALLY_NOW": raw})


def test_the_stores_come_from_urls() -> None:
    assert Settings.from_env({"TALLY_STORE": "duckdb:///var/lib/t.duckdb"}).duckdb_path() == Path(
        "/var/lib/t.duckdb"
    )
    assert Settings.from_env({"TALLY_STORE": "duckdb://rel/t.duckdb"}).duckdb_path() == Path(
        "rel/t.duckdb"
    )
    assert Settings.from_env({"TALLY_DB_PATH": "x.duckdb"}).duckdb_path() == Path("x.duckdb")
    scaled = Settings.from_env(
        {"TALLY_DIRECTORY_URL": "postgresql://p@h/db", "TALLY_EVENTS_URL": "clickhouse://h/db"}
    )
    assert scaled.scale_out
    assert scaled.environment()["TALLY_EVENTS_URL"] == "clickhouse://h/db"
    with pytest.raises(ValueError, match="duckdb:///path"):
        Settings.from_env({"TALLY_STORE": "sqlite:///x"}).duckdb_path()


def test_one_scale_out_store_without_the_other_is_refused(tmp_path: Path) -> None:
    from tally.errors import BadRequest

    with pytest.raises(BadRequest, match="set both --directory"):
        Tally(Settings(db_path=tmp_path / "t.duckdb", directory_url="postgresql://p@h/db"))


def test_a_pinned_now_leaves_the_rate_limit_on_the_real_clock() -> None:
    """TALLY_NOW fixes the calendar; the app usage rate limit still sees time pass (with a
    frozen clock a key would be refused for ever after its first call)."""
    from tally.settings import system_clock

    pinned = Settings.from_env({"TALLY_NOW": "2026-03-15T04:00:00Z"})
    assert pinned.clock().isoformat() == "2026-03-15T04:00:00+00:00"
    assert pinned.rate_limit_clock is system_clock
    assert Settings.from_env({}).rate_limit_clock is None  # the limit follows ``clock``
    assert "TALLY_RATE_LIMIT_CLOCK" not in pinned.environment()
    assert Settings.from_env({"TALLY_RATE_LIMIT_CLOCK": "x"}).rate_limit_clock is None
