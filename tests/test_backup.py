"""Backup while serving (issue 19): ``POST /api/v1/backup`` and ``tally backup`` write one
consistent DuckDB file; serving that file answers what the environment answered when the
backup was taken, whatever was written after it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from tally.api.app import create_app
from tally.cli import cli
from tally.service import Tally
from tally.settings import Settings
from tests.conftest import ADMIN, Admin, bearer
from tests.server import ServerProcess
from tests.test_rollups import all_answers, build_scenario

LATE_EVENT = {
    "id": "written-after-the-backup",
    "time": "2026-03-01T10:00:00+08:00",
    "type": "chat",
    "member": "m1",
    "ide": "vscode",
    "chat_type": "EXPLAIN_CODE",
    "accepted": True,
}


def test_a_backup_answers_what_the_environment_answered_then(
    admin: Admin, client: TestClient, tally: Tally, settings: Settings, tmp_path: Path
) -> None:
    build_scenario(admin, seed=3)
    tally.refresh_rollups()
    before = all_answers(client)

    response = client.post("/api/v1/backup", headers=bearer(ADMIN))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.duckdb"
    assert response.headers["content-disposition"] == (
        'attachment; filename="tally-backup-20260315T040000Z.duckdb"'
    )
    copy = tmp_path / "restored.duckdb"
    copy.write_bytes(response.content)
    # Written after the backup: in the environment, not in the copy.
    assert admin.events("acme", [LATE_EVENT])["accepted"] == 1
    assert json.dumps(all_answers(client)) != json.dumps(before)

    restored = dataclasses.replace(settings, db_path=copy)
    with Tally(restored) as again, TestClient(create_app(again)) as restored_client:
        again.access.bootstrap_admin(ADMIN)
        after = all_answers(restored_client)
    # (all_answers creates a read token each time: that changes no figure.)
    assert json.dumps(after) == json.dumps(before)
    # Nothing of the backup is left beside the store's file.
    assert sorted(p.name for p in settings.db_path.parent.iterdir() if "backup" in p.name) == []


def test_only_the_environment_admin_may_take_a_backup(admin: Admin, client: TestClient) -> None:
    admin.org("acme")
    org_admin = admin.token("acme", "read", "ingest", "admin")
    response = client.post("/api/v1/backup", headers=bearer(org_admin))
    assert response.status_code == 403
    assert response.json()["detail"] == "this call needs the environment admin's token"
    assert client.post("/api/v1/backup").status_code == 401


def test_tally_backup_takes_it_from_a_running_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "live.duckdb", ADMIN)
    try:
        api = f"{server.url}/api/v1/orgs/acme"
        with httpx.Client(headers=bearer(ADMIN)) as http:
            http.put(api, json={"name": "Acme", "domain": "acme.example", "timezone": "UTC"})
            http.put(api + "/members/m1", json={"name": "M1", "developer": True})
            events = [
                {**LATE_EVENT, "id": f"e{i}", "time": "2026-01-01T00:00:00Z"} for i in range(50)
            ]
            assert http.post(api + "/events", json=events).json()["accepted"] == 50
            output = tmp_path / "copy.duckdb"
            result = CliRunner().invoke(
                cli, ["backup", "--server", server.url, "--token", ADMIN, str(output)]
            )
            assert result.exit_code == 0, result.output
            assert http.post(api + "/events", json=[LATE_EVENT]).json()["accepted"] == 1
            again = CliRunner().invoke(
                cli, ["backup", "--server", server.url, "--token", ADMIN, str(output)]
            )
            refused = CliRunner().invoke(
                cli, ["backup", "--server", server.url, "--token", "nope", str(tmp_path / "x")]
            )
    finally:
        server.stop()
    assert again.exit_code == 1
    assert "exists already" in again.output
    assert refused.exit_code == 1
    assert "401: the token is not valid" in refused.output
    assert not (tmp_path / "x").exists()
    with Tally(Settings(db_path=output)) as copy:
        stored = copy.event_store.list_events(
            "acme", start_us=None, end_us=None, after=None, limit=100
        )
        assert sorted(e.id for e in stored) == sorted(f"e{i}" for i in range(50))
        assert [m.id for m in copy.directory.require("acme").members.values()] == ["m1"]


def test_tally_backup_of_a_file_not_being_served(settings: Settings, tmp_path: Path) -> None:
    with Tally(settings) as tally:
        tally.access.bootstrap_admin(ADMIN)
        client = TestClient(create_app(tally))
        Admin(client).org("acme")
    output = tmp_path / "offline.duckdb"
    result = CliRunner().invoke(cli, ["backup", "--db", str(settings.db_path), str(output)])
    assert result.exit_code == 0, result.output
    with Tally(dataclasses.replace(settings, db_path=output)) as copy:
        assert [o.id for o in copy.directory.orgs()] == ["acme"]


@pytest.mark.parametrize("flags", [["--server", "http://127.0.0.1:9"], []])
def test_a_backup_never_overwrites(settings: Settings, tmp_path: Path, flags: list[str]) -> None:
    output = tmp_path / "taken.duckdb"
    output.write_bytes(b"precious")
    result = CliRunner().invoke(
        cli, ["backup", "--db", str(settings.db_path), *flags, "--token", ADMIN, str(output)]
    )
    assert result.exit_code == 1
    assert output.read_bytes() == b"precious"
