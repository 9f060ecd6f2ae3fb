"""``GET /metrics`` and the access log: off by default; when on, the counters move by exactly
what known requests make them move, no org id appears outside the per-org events counters, the
store gauges are there, and each access log line's request id is the answer's
``x-request-id``."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from tally.api.app import create_app
from tally.metrics import observability
from tally.service import Tally
from tally.settings import Settings
from tests.conftest import ADMIN, Admin, bearer
from tests.server import ServerProcess
from tests.services import ScaleOutURLs

USAGE = "/oapi/v1/lingma/organizations/{organizationId}/departmentUsage"
EVENTS = [
    {"id": "m1", "time": "2026-03-10T10:00:00+08:00", "type": "completion", "member": "mxq7",
     "ide": "vim", "language": "c", "lines_suggested": 1, "accepted": False,
     "lines_accepted": 0},
    {"id": "m2", "time": "2026-03-11T10:00:00+08:00", "type": "chat", "member": "mxq7",
     "ide": "vim", "chat_type": "FREE_INPUT", "accepted": True},
    {"id": "m3", "time": "2026-03-12T10:00:00+08:00", "type": "activity", "member": "mxq7"},
    {"id": "m1", "time": "2026-03-12T11:00:00+08:00", "type": "activity", "member": "mxq7"},
    {"id": "m5", "time": "2026-03-12T12:00:00+08:00", "type": "activity", "member": "zed"},
]  # fmt: skip
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient) -> tuple[Samples, str]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples, response.text


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def build(admin: Admin) -> None:
    """Org "secretorg" (domain hush.example): department "dzq9", member "mxq7"."""
    admin.org("secretorg", domain="hush.example")
    admin.put("secretorg/departments/dzq9", {"name": "Qwvdept"})
    admin.put(
        "secretorg/members/mxq7",
        {
            "name": "Qwvname",
            "email": "mxq7@hush.example",
            "developer": True,
            "departments": ["dzq9"],
            "created_at": "2026-01-01T00:00:00+08:00",
        },
    )


@pytest.fixture
def observed(settings: Settings) -> Iterator[tuple[TestClient, Tally]]:
    on = dataclasses.replace(settings, metrics=True, access_log="json")
    tally = Tally(on)
    tally.access.bootstrap_admin(on.admin_token)
    with TestClient(create_app(tally)) as client:
        yield client, tally
    tally.close()


@pytest.fixture
def access_lines() -> Iterator[list[dict[str, Any]]]:
    """The JSON access log lines written meanwhile, decoded."""
    lines: list[dict[str, Any]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(record.getMessage()))

    handler = Keep()
    logger = logging.getLogger("tally.access")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def test_metrics_are_off_by_default(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 404


def test_counters_move_by_exactly_the_requests_made(
    observed: tuple[TestClient, Tally],
) -> None:
    client, _ = observed
    build(Admin(client))
    before, _ = scrape(client)
    posted = client.post("/api/v1/orgs/secretorg/events", json=EVENTS, headers=bearer(ADMIN))
    assert posted.json()["accepted"] == 3
    query = "departmentId=dzq9&startTime=2026-03-10&endTime=2026-03-12"
    token = {"x-yunxiao-token": ADMIN}
    for _ in range(2):
        ok = client.get(
            f"/oapi/v1/lingma/organizations/secretorg/departmentUsage?{query}", headers=token
        )
        assert ok.status_code == 200
    missing = client.get(
        "/oapi/v1/lingma/organizations/secretorg/departmentUsage?departmentId=nope"
        "&startTime=2026-03-10&endTime=2026-03-12",
        headers=token,
    )
    assert missing.status_code == 404
    assert client.get("/no/such/path").status_code == 404
    after, _ = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "tally_http_requests_total"
    events_route = "/api/v1/orgs/{org}/events"
    assert moved(requests, route=events_route, method="POST", status="200") == 1
    assert (
        moved(
            requests, route=USAGE.replace("{org}", "{organizationId}"), method="GET", status="200"
        )
        == 2
    )
    assert (
        moved(
            requests, route=USAGE.replace("{org}", "{organizationId}"), method="GET", status="404"
        )
        == 1
    )
    assert moved(requests, route="(unmatched)", method="GET", status="404") == 1
    assert moved(requests, route="/metrics", method="GET", status="200") == 1  # the first scrape
    latency = "tally_http_request_duration_seconds_count"
    assert moved(latency, api="lingma") == 3
    assert moved(latency, api="tally") == 1
    assert moved("tally_events_total", org="secretorg", outcome="accepted") == 3
    assert moved("tally_events_total", org="secretorg", outcome="duplicate") == 1
    assert moved("tally_events_total", org="secretorg", outcome="rejected") == 1


def test_no_org_data_beyond_the_per_org_event_counts(
    observed: tuple[TestClient, Tally],
) -> None:
    client, _ = observed
    build(Admin(client))
    client.post("/api/v1/orgs/secretorg/events", json=EVENTS, headers=bearer(ADMIN))
    client.get("/api/v1/orgs/secretorg/members/mxq7", headers=bearer(ADMIN))
    client.get(
        "/api/statistics/?stats_type=users&start=2026-03-10&end=2026-03-11&org_domain=hush.example",
        headers=bearer(ADMIN),
    )
    _, text = scrape(client)
    secrets = ("secretorg", "hush.example", "mxq7", "Qwv", "dzq9")
    leaking = [
        line
        for line in text.splitlines()
        if any(s in line for s in secrets) and not line.startswith("tally_events_total{")
    ]
    assert leaking == []
    assert 'tally_events_total{org="secretorg",outcome="accepted"} 3.0' in text


def test_staleness_and_store_size_gauges(observed: tuple[TestClient, Tally]) -> None:
    client, tally = observed
    build(Admin(client))
    client.post("/api/v1/orgs/secretorg/events", json=EVENTS, headers=bearer(ADMIN))
    stale, _ = scrape(client)
    tally.refresh_rollups()
    fresh, _ = scrape(client)
    # assistant events on the 10th and 11th; events of any type on the 10th, 11th and 12th.
    assert value(stale, "tally_rollup_stale_days", rollup="department_days") == 2
    assert value(stale, "tally_rollup_stale_days", rollup="activity_days") == 3
    # now is 2026-03-15T04:00Z; the 10th began at 2026-03-09T16:00Z: 5.5 days before
    age = 5.5 * 86400
    assert value(stale, "tally_rollup_oldest_stale_day_age_seconds", rollup="activity_days") == age
    assert (
        value(stale, "tally_rollup_oldest_stale_day_age_seconds", rollup="department_days") == age
    )
    for rollup in ("department_days", "activity_days"):
        assert value(fresh, "tally_rollup_stale_days", rollup=rollup) == 0
        assert value(fresh, "tally_rollup_oldest_stale_day_age_seconds", rollup=rollup) == 0
    db = tally.settings.duckdb_path()
    on_disk = db.stat().st_size + sum(p.stat().st_size for p in db.parent.glob(db.name + ".wal"))
    assert value(fresh, "tally_store_size_bytes", store="events+directory") == on_disk
    assert on_disk > 0


def test_rate_limit_refusals_are_counted(settings: Settings) -> None:
    limited = dataclasses.replace(settings, metrics=True, apps_rate_limit_per_second=1.0)
    tally = Tally(limited)
    tally.access.bootstrap_admin(ADMIN)
    try:
        with TestClient(create_app(tally)) as client:
            before, _ = scrape(client)
            first = client.post("/api/v1/app/usage_stats", json={}, headers=bearer(ADMIN))
            second = client.post("/api/v1/app/usage_stats", json={}, headers=bearer(ADMIN))
            after, _ = scrape(client)
    finally:
        tally.close()
    assert (first.status_code, second.status_code) == (403, 429)  # the clock stands still
    name = "tally_rate_limit_refusals_total"
    assert value(after, name, api="apps") - value(before, name, api="apps") == 1
    route = "/api/v1/app/usage_stats"
    assert value(after, "tally_http_requests_total", route=route, method="POST", status="429") == 1


def test_access_log_lines_carry_the_answers_request_id(
    observed: tuple[TestClient, Tally], access_lines: list[dict[str, Any]]
) -> None:
    client, _ = observed
    build(Admin(client))
    del access_lines[:]
    usage = client.get(
        "/oapi/v1/lingma/organizations/secretorg/departmentUsage?departmentId=dzq9"
        "&startTime=2026-03-10&endTime=2026-03-12",
        headers={"x-yunxiao-token": ADMIN},
    )
    refused = client.get(
        "/oapi/v1/lingma/organizations/secretorg/departmentUsage", headers={"x-yunxiao-token": "x"}
    )
    health = client.get("/healthz")
    assert [line["status"] for line in access_lines] == [200, 401, 200]
    first, second, third = access_lines
    assert first["request_id"] == usage.headers["x-request-id"]
    assert second["request_id"] == refused.headers["x-request-id"] == refused.json()["requestId"]
    assert len(third["request_id"]) == 36
    assert third["request_id"] not in (first["request_id"], second["request_id"])
    assert health.status_code == 200
    assert (first["method"], first["path"], first["org"]) == (
        "GET",
        "/oapi/v1/lingma/organizations/secretorg/departmentUsage",
        "secretorg",
    )
    assert first["route"] == "/oapi/v1/lingma/organizations/{organizationId}/departmentUsage"
    assert third["org"] is None
    assert all(isinstance(line["duration_ms"], float) for line in access_lines)
    assert all(line["time"].endswith("+00:00") for line in access_lines)


def test_a_real_server_writes_json_access_lines_to_stderr_and_serves_metrics(
    tmp_path: Path,
) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TALLY_METRICS", "1")
        env.setenv("TALLY_ACCESS_LOG", "json")
        process = ServerProcess(tmp_path / "tally.duckdb", ADMIN)
    try:
        answer = httpx.get(process.url + "/api/v1/orgs", headers=bearer(ADMIN))
        metrics = httpx.get(process.url + "/metrics")
    finally:
        process.process.terminate()
        process.process.wait()
        assert process.process.stdout is not None
        output = process.process.stdout.read().decode()
        process.stop()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    orgs = [line for line in lines if line["path"] == "/api/v1/orgs"]
    assert [line["request_id"] for line in orgs] == [answer.headers["x-request-id"]]
    assert 'tally_http_requests_total{method="GET",route="/api/v1/orgs",status="200"} 1.0' in (
        metrics.text
    )


@pytest.mark.slow
def test_worker_processes_answer_the_sum_of_every_workers_counters(
    scale_out_urls: ScaleOutURLs,
) -> None:
    """Two ``tally serve`` workers over PostgreSQL and ClickHouse: whichever worker answers a
    scrape, it counts the requests both took (multiprocess mode), and the two stores' sizes
    (50 events spread over both shards: the node the URL names holds some)."""
    stores = ["--directory", scale_out_urls.directory, "--events", scale_out_urls.events]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TALLY_METRICS", "1")
        env.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
        process = ServerProcess(None, ADMIN, args=[*stores, "--workers", "2"])
    try:
        scrapes = []
        with httpx.Client(base_url=process.url, headers=bearer(ADMIN), timeout=30) as http:
            for _ in range(20):
                assert http.get("/api/v1/orgs").status_code == 200
            assert http.put("/api/v1/orgs/w", json={"name": "W", "domain": "w"}).is_success
            member = {"name": "M", "created_at": "2026-01-01T00:00:00Z"}
            assert http.put("/api/v1/orgs/w/members/m", json=member).is_success
            events = [
                {"id": f"e{i}", "time": "2026-03-01T10:00:00Z", "type": "activity", "member": "m"}
                for i in range(50)
            ]
            assert http.post("/api/v1/orgs/w/events", json=events).json()["accepted"] == 50
            for _ in range(4):
                scrapes.append(http.get("/metrics").text)
    finally:
        process.stop()
    line = 'tally_http_requests_total{method="GET",route="/api/v1/orgs",status="200"} 20.0'
    assert all(line in text for text in scrapes)
    for text in scrapes:
        sizes: Samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "tally_store_size_bytes":
                    sizes[sample.name, tuple(sample.labels.items())] = sample.value
        assert set(sizes) == {
            ("tally_store_size_bytes", (("store", "events"),)),
            ("tally_store_size_bytes", (("store", "directory"),)),
        }
        assert all(size > 0 for size in sizes.values())


def test_text_access_log_and_an_unknown_format(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    tally = Tally(dataclasses.replace(settings, access_log="text"))
    tally.access.bootstrap_admin(ADMIN)
    try:
        with TestClient(create_app(tally)) as client:
            answer = client.get("/api/v1/orgs/nowhere", headers=bearer(ADMIN))
        lines = [line for line in capsys.readouterr().err.splitlines() if "/nowhere" in line]
        assert len(lines) == 1
        method, path, status, _took, ident, org = lines[0].split(" ")
        assert (method, path, status, org) == ("GET", "/api/v1/orgs/nowhere", "404", "org=nowhere")
        assert ident == answer.headers["x-request-id"]
    finally:
        tally.close()
    wrong = SimpleNamespace(settings=dataclasses.replace(settings, access_log="xml"))
    with pytest.raises(ValueError, match="TALLY_ACCESS_LOG must be one of off, text, json"):
        observability(cast(Tally, wrong))
