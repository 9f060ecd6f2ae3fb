"""A file written by an older schema opens with the same answers (schema 1 kept the activity
kinds inside member_day)."""

from __future__ import annotations

import duckdb
from starlette.testclient import TestClient

from tally.api.app import create_app
from tally.service import Tally
from tally.settings import Settings
from tests.conftest import Admin
from tests.test_rollups import all_answers, build_scenario


def test_schema_1_file_migrates_with_the_same_answers(
    settings: Settings, admin: Admin, client: TestClient, tally: Tally
) -> None:
    build_scenario(admin, 2)
    before = all_answers(client)
    tally.close()
    raw = duckdb.connect(str(settings.db_path))  # make it look like a schema-1 file
    raw.execute("INSERT INTO member_day SELECT * FROM activity_day")
    raw.execute("DELETE FROM activity_day")
    raw.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    raw.close()
    with Tally(settings) as reopened:
        reopened.access.bootstrap_admin(settings.admin_token)
        with TestClient(create_app(reopened)) as again:
            assert all_answers(again) == before
    raw = duckdb.connect(str(settings.db_path), read_only=True)
    kinds = raw.execute("SELECT DISTINCT kind FROM member_day ORDER BY kind").fetchall()
    version = raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    raw.close()
    assert kinds == [("chat",), ("code",), ("completion",)]
    assert version == ("2",)
