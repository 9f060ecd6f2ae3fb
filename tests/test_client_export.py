"""``TallyClient.export`` against a live ``tally serve``: the export endpoint
``GET /api/v1/orgs/{org}/export/{dataset}?start=&end=&format=csv|parquet`` streamed to a file,
or read into a pyarrow table / pandas DataFrame; problem details become ``TallyAPIError``.

(Kept apart from tests/test_client.py: it needs the export endpoint of issue 18, built on
another branch.)"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tally.client import AsyncTallyClient, TallyAPIError, TallyClient
from tests.conftest import ADMIN
from tests.server import ServerProcess, run_coroutine

NOW = "2026-03-15T04:00:00Z"
START, END = "2026-03-10", "2026-03-12"  # org days, inclusive: 03-13 lies outside
IDS = [f"x{i}" for i in range(5)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A server with org "exp": five activity events on 2026-03-10 and one on 2026-03-13
    (outside the window); answers the server and a read token of another org."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TALLY_NOW", NOW)
        process = ServerProcess(tmp_path_factory.mktemp("export") / "tally.duckdb", ADMIN)
    with TallyClient(process.url, ADMIN) as admin:
        for org in ("exp", "other"):
            admin.put_org(org, name=org.title(), domain=f"{org}.example")
        admin.put_member(
            "exp", "m", name="M", email="m@exp.example", developer=False, departments=[],
            created_at="2026-01-01T00:00:00+08:00",
        )  # fmt: skip
        events = [
            {"id": ident, "time": f"2026-03-10T1{i}:00:00+08:00", "type": "activity", "member": "m"}
            for i, ident in enumerate(IDS)
        ]
        events.append(
            {"id": "late", "time": "2026-03-13T10:00:00+08:00", "type": "activity", "member": "m"}
        )
        summary = admin.send_events("exp", events)
        assert summary.accepted == 6
        stranger = admin.create_token("other", ["read"])
    yield process, stranger
    process.stop()


def test_export_streams_parquet_to_the_file_the_server_names(
    server: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    process, _ = server
    with TallyClient(process.url, ADMIN) as tally:
        path = tally.export("exp", "events", to=tmp_path, start=START, end=END)
    assert path.parent == tmp_path
    assert path.name.endswith(".parquet")
    table = pq.read_table(path)
    assert sorted(table.column("id").to_pylist()) == IDS


def test_export_to_a_named_file_as_csv(server: tuple[ServerProcess, str], tmp_path: Path) -> None:
    process, _ = server
    target = tmp_path / "out.csv"
    with TallyClient(process.url, ADMIN) as tally:
        path = tally.export("exp", "events", to=target, start=START, end=END, format="csv")
    assert path == target
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert sorted(row["id"] for row in rows) == IDS


def test_export_to_arrow_and_pandas(server: tuple[ServerProcess, str]) -> None:
    process, _ = server
    with TallyClient(process.url, ADMIN) as tally:
        table = tally.export("exp", "events", to="arrow", start=START, end=END)
        frame = tally.export("exp", "events", to="pandas", start=START, end=END)
    assert sorted(table.column("id").to_pylist()) == IDS
    assert sorted(frame["id"].tolist()) == IDS


def test_async_export_to_arrow(server: tuple[ServerProcess, str]) -> None:
    process, _ = server

    async def scenario() -> list[str]:
        async with AsyncTallyClient(process.url, ADMIN) as tally:
            table = await tally.export("exp", "events", to="arrow", start=START, end=END)
        return sorted(table.column("id").to_pylist())

    assert run_coroutine(scenario()) == IDS


def test_export_errors_are_problem_details(server: tuple[ServerProcess, str]) -> None:
    process, stranger = server
    with TallyClient(process.url, ADMIN) as tally:
        with pytest.raises(TallyAPIError) as unknown:
            tally.export("exp", "no-such-dataset", to="arrow", start=START, end=END)
        with pytest.raises(TallyAPIError) as bad:
            tally.export("exp", "events", to="arrow", start="yesterday", end=END)
    with TallyClient(process.url, stranger) as tally, pytest.raises(TallyAPIError) as other:
        tally.export("exp", "events", to="arrow", start=START, end=END)
    assert (unknown.value.status, unknown.value.body["status"]) == (404, 404)
    assert (bad.value.status, bad.value.body["status"]) == (400, 400)
    assert other.value.status == 403
