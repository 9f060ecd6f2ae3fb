"""A file written by an older schema opens with the same answers (schema 1 kept the activity
kinds inside member_day; schema 2 had no per-department rollups, schema 3 no activity
counts, schema 4 no to-date / from-date counts, schemas 3 to 5 kept the per-department usage as
breakdown rows, schemas 4 and 5 the activity counts without totals)."""

from __future__ import annotations

import duckdb
import pytest
from starlette.testclient import TestClient

from tally.api.app import create_app
from tally.service import Tally
from tally.settings import Settings
from tests.conftest import Admin
from tests.test_rollups import all_answers, build_scenario

#: ``department_day`` of schemas 3 to 5: the answer rows, one per breakdown entry.
ROWS_LAYOUT = """
CREATE TABLE department_day (
    org VARCHAR NOT NULL, department VARCHAR NOT NULL, day DATE NOT NULL, part TINYINT NOT NULL,
    key1 VARCHAR, key2 VARCHAR,
    a BIGINT NOT NULL, b BIGINT NOT NULL, c BIGINT NOT NULL, d BIGINT NOT NULL, n BIGINT NOT NULL
)
"""

#: ``activity_count`` of schemas 4 and 5: no totals.
COUNTS_LAYOUT = """
CREATE TABLE activity_count (
    org VARCHAR NOT NULL, stat VARCHAR NOT NULL, grp VARCHAR NOT NULL, period VARCHAR NOT NULL,
    start DATE NOT NULL, n BIGINT NOT NULL
)
"""


@pytest.mark.parametrize("old_version", [1, 2, 3, 4, 5])
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
    if old_version < 4:
        raw.execute("DROP TABLE activity_days")
    else:  # counts a reader of schema 6 must not take for its own (no totals)
        raw.execute(COUNTS_LAYOUT)
        raw.execute(
            "INSERT INTO activity_count SELECT org, 'users', '', 'day', day, 9 FROM activity_days"
        )
    raw.execute("DROP TABLE department_day")
    if old_version < 3:
        raw.execute("DROP TABLE department_days")
    else:  # rows a reader of schema 6 must not take for its records
        raw.execute(ROWS_LAYOUT)
        raw.execute(
            "INSERT INTO department_day SELECT 'acme', 'd', day, 0, NULL, NULL, 1, 1, 1, 0, 0"
            " FROM department_days"
        )
    if old_version == 1:
        raw.execute("INSERT INTO member_day SELECT * FROM activity_day")
        raw.execute("DELETE FROM activity_day")
    raw.execute(f"UPDATE meta SET value = '{old_version}' WHERE key = 'schema_version'")
    raw.close()
    with Tally(settings) as reopened:
        # Every day with assistant events waits for a refresh; answers are the same meanwhile.
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
    assert version == ("6",)
