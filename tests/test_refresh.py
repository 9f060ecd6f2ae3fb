"""The server refreshes the per-department rollups by itself, in the background."""

from __future__ import annotations

import dataclasses
import time

from starlette.testclient import TestClient

from tally.api.app import create_app
from tally.service import Tally
from tally.settings import Settings
from tests.conftest import Admin
from tests.test_rollups import all_answers, build_scenario


def test_server_refreshes_stale_days_in_the_background(settings: Settings) -> None:
    with Tally(dataclasses.replace(settings, rollup_refresh_seconds=0.05)) as tally:
        tally.access.bootstrap_admin(settings.admin_token)
        with TestClient(create_app(tally)) as client:
            build_scenario(Admin(client), 3)
            # A liveness check, not a speed one: the deadline is far beyond any refresh pass.
            deadline = time.monotonic() + 120
            while tally.store.stale_department_days("acme") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert tally.store.stale_department_days("acme") == []
            answers = all_answers(client)
            tally.store.rollups = False  # type: ignore[attr-defined]
            assert all_answers(client) == answers
