"""The server folds the DuckDB write-ahead log into the file once writes stop (issue 19,
item 5): a restart after a quiet spell, clean or not, replays nothing."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import httpx

from tally.service import Tally
from tally.settings import Settings
from tests.conftest import ADMIN, bearer
from tests.server import ServerProcess


def _log_bytes(db: Path) -> int:
    wal = db.with_name(db.name + ".wal")
    return wal.stat().st_size if wal.exists() else 0


def test_the_store_checkpoints_only_when_idle_and_only_what_there_is(settings: Settings) -> None:
    with Tally(dataclasses.replace(settings, admin_token="")) as tally:
        tally.access.bootstrap_admin(ADMIN)  # a write: the log now holds it
        assert _log_bytes(settings.db_path) > 0
        assert tally.event_store.checkpoint_when_idle(3600) is False  # written just now
        assert _log_bytes(settings.db_path) > 0
        assert tally.event_store.checkpoint_when_idle(0) is True
        assert _log_bytes(settings.db_path) == 0
        assert tally.event_store.checkpoint_when_idle(0) is False  # nothing left to fold


def test_a_quiet_server_folds_its_log_and_a_crash_then_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "tally.duckdb"
    server = ServerProcess(db, ADMIN, env={"TALLY_IDLE_CHECKPOINT_SECONDS": "0.4"})
    api = f"{server.url}/api/v1/orgs/acme"
    with httpx.Client(headers=bearer(ADMIN)) as http:
        http.put(api, json={"name": "Acme", "domain": "acme.example", "timezone": "UTC"})
        http.put(api + "/members/m1", json={"name": "M1"})
        event = {"time": "2026-01-01T00:00:00Z", "type": "activity", "member": "m1"}
        batch = [{**event, "id": f"e{i}"} for i in range(200)]
        assert http.post(api + "/events", json=batch).json()["accepted"] == 200
        for _ in range(600):  # the thread polls every 0.1 s; give it up to a minute
            if _log_bytes(db) == 0:
                break
            time.sleep(0.1)
        folded = _log_bytes(db)
    server.kill()
    assert folded == 0
    restarted = ServerProcess(db, ADMIN)
    try:
        page = httpx.get(
            f"{restarted.url}/api/v1/orgs/acme/events?limit=1000", headers=bearer(ADMIN)
        ).json()
    finally:
        restarted.stop()
    assert sorted(e["id"] for e in page["events"]) == sorted(f"e{i}" for i in range(200))
