"""The scale-out configuration keeps the promises of contract section 8: the same answers as the
DuckDB file, byte for byte; one event counted once whichever worker takes it; a directory or
token write on one worker holding for the next request on every worker; one rate limit per key
across workers; and ``tally migrate`` moving an environment without changing an answer.

"Workers" here are separate :class:`Tally` instances over the same stores, each with its own
connections and caches, as each ``tally serve --workers N`` process has; one test runs real
worker processes.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from tally.api.app import create_app
from tally.cli import cli
from tally.service import Tally
from tally.settings import Settings
from tests.conftest import ADMIN, Admin, FixedClock, bearer
from tests.services import ScaleOutURLs
from tests.test_rollups import all_answers, build_scenario, test_rollups_match_a_plain_python_count


def scale_out(settings: Settings, urls: ScaleOutURLs, **changes: Any) -> Settings:
    return dataclasses.replace(
        settings, directory_url=urls.directory, events_url=urls.events, **changes
    )


@pytest.fixture
def workers(settings: Settings, scale_out_urls: ScaleOutURLs) -> Iterator[list[TestClient]]:
    """Two workers over the same PostgreSQL and ClickHouse, the rate limit on."""
    shared = scale_out(settings, scale_out_urls, apps_rate_limit_per_second=1.0)
    instances = [Tally(shared), Tally(shared)]
    clients = []
    for instance in instances:
        instance.access.bootstrap_admin(shared.admin_token)
        clients.append(TestClient(create_app(instance)).__enter__())
    yield clients
    for client, instance in zip(clients, instances, strict=True):
        client.__exit__(None, None, None)
        instance.close()


def answers_text(client: TestClient) -> str:
    """Every API's answers over the scenario, as one text (key order included)."""
    return json.dumps(all_answers(client))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_both_configurations_answer_the_same(
    seed: int, settings: Settings, scale_out_urls: ScaleOutURLs
) -> None:
    texts = []
    for config in (settings, scale_out(settings, scale_out_urls)):
        with Tally(config) as instance, TestClient(create_app(instance)) as client:
            instance.access.bootstrap_admin(config.admin_token)
            build_scenario(Admin(client), seed)
            instance.refresh_rollups()
            texts.append(answers_text(client))
    duckdb_text, scale_out_text = texts
    assert len(duckdb_text) > 10_000  # the scenario answers with figures, not empty lists
    assert scale_out_text == duckdb_text


def test_scale_out_matches_a_plain_python_count(admin: Admin, client: TestClient) -> None:
    test_rollups_match_a_plain_python_count(admin, client)


def test_a_directory_write_on_one_worker_holds_on_the_other(workers: list[TestClient]) -> None:
    first, second = workers
    Admin(first).org("acme")
    assert second.get("/api/v1/orgs/acme", headers=bearer(ADMIN)).status_code == 200
    Admin(first).put("acme/members/ann", {"name": "Ann"})
    got = second.get("/api/v1/orgs/acme/members/ann", headers=bearer(ADMIN))
    assert got.json()["name"] == "Ann"
    Admin(second).put("acme/members/ann", {"name": "Ann B."})
    assert Admin(first).get("acme/members/ann")["name"] == "Ann B."


def test_a_token_made_on_one_worker_works_on_the_other(workers: list[TestClient]) -> None:
    first, second = workers
    Admin(first).org("acme")
    token = Admin(first).token("acme", "read")
    assert second.get("/api/v1/orgs/acme", headers=bearer(token)).status_code == 200


def test_the_rate_limit_counts_a_key_across_workers(
    workers: list[TestClient], clock: FixedClock
) -> None:
    first, second = workers
    Admin(first).org("acme")
    token = Admin(first).token("acme", "read")

    def usage(client: TestClient) -> int:
        url = "/api/v1/app/usage_stats"
        status: int = client.post(url, json={}, headers=bearer(token)).status_code
        return status

    assert usage(first) == 200
    assert usage(second) == 429  # the same second, the other worker
    clock.now += timedelta(milliseconds=900)
    assert usage(second) == 200
    assert usage(first) == 429


def test_overlapping_batches_on_two_workers_are_counted_once(workers: list[TestClient]) -> None:
    admin = Admin(workers[0])
    admin.org("acme")
    admin.put("acme/members/m1", {"name": "M", "created_at": "2026-01-01T00:00:00Z"})
    ids_of = [
        [f"e{(w * 50 + b * 20 + i) % 400}" for b in range(8) for i in range(40)] for w in (0, 1)
    ]
    answers: list[dict[str, int]] = []

    def send(client: TestClient, ids: list[str]) -> None:
        for start in range(0, len(ids), 40):
            batch = [
                {
                    "id": i,
                    "time": "2026-03-01T10:00:00Z",
                    "type": "completion",
                    "member": "m1",
                    "ide": "vscode",
                    "language": "go",
                    "lines_suggested": 1,
                    "accepted": False,
                    "lines_accepted": 0,
                }
                for i in ids[start : start + 40]
            ]
            response = client.post("/api/v1/orgs/acme/events", json=batch, headers=bearer(ADMIN))
            assert response.status_code == 200
            answers.append(response.json())

    threads = [threading.Thread(target=send, args=(workers[w], ids_of[w])) for w in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()
    distinct = set(ids_of[0]) | set(ids_of[1])
    assert len(answers) == 16
    assert sum(a["accepted"] for a in answers) >= len(distinct)  # a race may accept one twice
    assert sum(a["accepted"] + a["duplicates"] for a in answers) == 2 * 8 * 40
    listed = (
        workers[1]
        .get("/api/v1/orgs/acme/events", params={"limit": 1000}, headers=bearer(ADMIN))
        .json()["events"]
    )
    assert sorted(e["id"] for e in listed) == sorted(distinct)


def test_migrate_copies_an_environment_with_equal_answers(
    settings: Settings, scale_out_urls: ScaleOutURLs
) -> None:
    with Tally(settings) as instance, TestClient(create_app(instance)) as client:
        instance.access.bootstrap_admin(settings.admin_token)
        build_scenario(Admin(client), 3)
        token = Admin(client).token("acme", "read")
        before = answers_text(client)
    args = ["migrate", "--from", f"duckdb://{settings.db_path}"]
    args += ["--directory", scale_out_urls.directory, "--events", scale_out_urls.events]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "copied 1 organization(s), 2 token(s) and 1,500 event(s) (1,500 new)" in result.stdout
    again = CliRunner().invoke(cli, args)  # run twice: nothing doubles
    assert "(0 new)" in again.stdout, again.output
    moved = scale_out(settings, scale_out_urls)
    with Tally(moved) as instance, TestClient(create_app(instance)) as client:
        instance.access.bootstrap_admin(moved.admin_token)
        assert answers_text(client) == before
        assert client.get("/api/v1/orgs/acme", headers=bearer(token)).status_code == 200


def test_workers_are_refused_on_a_duckdb_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["serve", "--db", str(tmp_path / "x.duckdb"), "--workers", "2"]
    )
    assert result.exit_code != 0
    assert "--workers above 1 needs the shared stores" in result.output


@pytest.mark.slow
def test_real_worker_processes_share_writes_and_count_events_once(
    scale_out_urls: ScaleOutURLs,
) -> None:
    from tests.server import ServerProcess

    server = ServerProcess(
        None,
        ADMIN,
        args=[
            "--directory",
            scale_out_urls.directory,
            "--events",
            scale_out_urls.events,
            "--workers",
            "2",
        ],
    )
    try:
        auth = bearer(ADMIN)
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
            assert client.put("/api/v1/orgs/acme", json={"name": "A", "domain": "a"}).is_success
            # each request may land on either process: every one must see the write
            for n in range(20):
                body = {"name": f"M{n}", "created_at": "2026-01-01T00:00:00Z"}
                assert client.put(f"/api/v1/orgs/acme/members/m{n}", json=body).is_success
                assert client.get(f"/api/v1/orgs/acme/members/m{n}").is_success
            batch = [
                {
                    "id": f"e{i}",
                    "time": "2026-03-01T10:00:00Z",
                    "type": "activity",
                    "member": f"m{i % 20}",
                }
                for i in range(300)
            ]
            results = []

            def send() -> None:
                with httpx.Client(base_url=server.url, headers=auth, timeout=30) as own:
                    results.append(own.post("/api/v1/orgs/acme/events", json=batch).json())

            senders = [threading.Thread(target=send) for _ in range(4)]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join(timeout=120)
            assert len(results) == 4
            assert sum(r["accepted"] + r["duplicates"] for r in results) == 4 * 300, results
            listed = client.get("/api/v1/orgs/acme/events", params={"limit": 1000}).json()
            assert sorted(e["id"] for e in listed["events"]) == sorted(e["id"] for e in batch)
    finally:
        server.stop()
