"""A file written by an older schema opens with the same answers (schema 1 kept the activity
kinds inside member_day; schema 2 had no per-department rollups, schema 3 no activity
counts, schema 4 no to-date / from-date counts)."""

from __future__ import annotations

import duckdb
import pytest
from starlette.testclient import TestClient

from tally.api.app import create_app
from tally.service import Tally
from tally.settings import Settings
from tests.conftest import Admin
from tests.test_rollups import all_answers, build_scenario


@pytest.mark.parametrize("old_version", [1, 2, 3, 4])
def test_older_file_migrates_with_the_same_answers(
    settings: Settings, admin: Admin, client: TestClient, tally: Tally, old_version: int
) -> None:
    build_scenario(admin, 2)
    before = all_answers(client)
    tally.close()
    raw = duckdb.connect(str(settings.db_path))  # make it look like a file of old_version
    assistant_days = raw.execute("SELECT DISTINCT day FROM member_day ORDER BY day").fetchall()
    event_days = raw.execute("SELECT DISTINCT day FROM events ORDER BY day").fetchall()
    raw.execute("DROP TABLE activity_count")
    raw.execute("DROP TABLE activity_days")
    if old_version < 3:
        raw.execute("DROP TABLE department_day")
        raw.execute("DROP TABLE department_days")
    if old_version == 1:
        raw.execute("INSERT INTO member_day SELECT * FROM activity_day")
        raw.execute("DELETE FROM activity_day")
    raw.execute(f"UPDATE meta SET value = '{old_version}' WHERE key = 'schema_version'")
    raw.close()
    with Tally(settings) as reopened:
        # Every day with assistant events waits for a refresh; answers are the same meanwhile.
        if old_version < 3:
            stale = reopened.store.stale_department_days("acme")
            assert [(day,) for day in stale] == assistant_days
        stale = reopened.store.stale_activity_days("acme")
        assert [(day,) for day in stale] == event_days
        reopened.access.bootstrap_admin(settings.admin_token)
        with TestClient(create_app(reopened)) as again:
            assert all_answers(again) == before
            reopened.refresh_rollups()
            assert reopened.store.stale_department_days("acme") == []
            assert reopened.store.stale_activity_days("acme") == []
            assert all_answers(again) == before
    raw = duckdb.connect(str(settings.db_path), read_only=True)
    kinds = raw.execute("SELECT DISTINCT kind FROM member_day ORDER BY kind").fetchall()
    version = raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    raw.close()
    assert kinds == [("chat",), ("code",), ("completion",)]
    assert version == ("5",)
