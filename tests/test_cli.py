"""The CLI mirrors the library: import, token create and demo give what the API gives."""

from __future__ import annotations

import gc
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from tally.cli import cli
from tally.model.directory import MemberInput, OrgInput
from tally.service import Tally, settle_heap
from tally.settings import Settings


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "cli.duckdb"
    with Tally(Settings(db_path=path)) as tally:
        tally.directory.put_org(
            "acme", OrgInput(name="Acme", domain="acme.example"), has_events=False
        )
        tally.directory.put_member(
            "acme", "m1", MemberInput(name="Ann", created_at=datetime(2026, 1, 1, tzinfo=UTC))
        )
    return path


def events(n: int, prefix: str = "e") -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}{i}",
            "time": f"2026-02-01T10:00:{i % 60:02d}+08:00",
            "type": "activity",
            "member": "m1",
        }
        for i in range(n)
    ]


def count(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as raw:
        row = raw.execute("SELECT count(*) FROM events").fetchone()
    assert row is not None
    return int(row[0])


def test_import_ndjson_is_idempotent(db: Path, tmp_path: Path) -> None:
    source = tmp_path / "events.ndjson"
    lines = [json.dumps(e) for e in events(120)]
    lines.insert(5, "")
    lines.insert(
        9,
        json.dumps(
            {"id": "bad", "time": "2026-02-01T10:00:00+08:00", "type": "activity", "member": "m-17"}
        ),
    )
    source.write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    first = runner.invoke(cli, ["import", "--db", str(db), "--org", "acme", str(source)])
    assert first.exit_code == 1  # one line was rejected
    assert "accepted 120, duplicates 0, rejected 1" in first.stdout
    assert f'{source}:9: bad: unknown member "m-17"' in first.stderr
    second = runner.invoke(cli, ["import", "--db", str(db), "--org", "acme", str(source)])
    assert "accepted 0, duplicates 120, rejected 1" in second.stdout
    assert count(db) == 120


def test_import_parquet(db: Path, tmp_path: Path) -> None:
    rows = [
        {
            "id": "p1",
            "time": datetime(2026, 2, 1, 2, tzinfo=UTC),
            "type": "completion",
            "member": "m1",
            "ide": "vscode",
            "language": "go",
            "lines_suggested": 3,
            "accepted": True,
            "lines_accepted": 2,
        },
        {
            "id": "p2",
            "time": datetime(2026, 2, 1, 3, tzinfo=UTC),
            "type": "activity",
            "member": "m1",
            "ide": None,
            "language": None,
            "lines_suggested": None,
            "accepted": None,
            "lines_accepted": None,
        },
        {
            "id": "p3",
            "time": datetime(2026, 2, 1, 3, tzinfo=UTC),
            "type": "completion",
            "member": "m1",
            "ide": "vscode",
            "language": "go",
            "lines_suggested": -1,
            "accepted": True,
            "lines_accepted": 0,
        },
    ]
    source = tmp_path / "events.parquet"
    pq.write_table(pa.Table.from_pylist(rows), source)
    result = CliRunner().invoke(cli, ["import", "--db", str(db), "--org", "acme", str(source)])
    assert "accepted 2, duplicates 0, rejected 1" in result.stdout
    assert "p3: lines_suggested must be an integer >= 0" in result.stderr
    with duckdb.connect(str(db), read_only=True) as raw:
        stored = raw.execute("SELECT id, day, lines_accepted FROM events ORDER BY id").fetchall()
    assert [(r[0], str(r[1]), r[2]) for r in stored] == [
        ("p1", "2026-02-01", 2),
        ("p2", "2026-02-01", None),
    ]
    # The import leaves the second-level rollups of its day fresh (p1 is an assistant event).
    assert "refreshed the second-level rollups of 2 stale day(s)" in result.stderr
    with duckdb.connect(str(db), read_only=True) as raw:
        for table in ("department_days", "activity_days"):
            states = raw.execute(f"SELECT org, day::VARCHAR, fresh FROM {table}").fetchall()
            assert states == [("acme", "2026-02-01", True)]


def test_import_json_array(db: Path, tmp_path: Path) -> None:
    source = tmp_path / "events.json"
    source.write_text(json.dumps(events(7)))
    result = CliRunner().invoke(cli, ["import", "--db", str(db), "--org", "acme", str(source)])
    assert result.exit_code == 0, result.output
    assert "accepted 7, duplicates 0, rejected 0" in result.stdout
    assert count(db) == 7


def test_import_unknown_org(db: Path, tmp_path: Path) -> None:
    source = tmp_path / "events.ndjson"
    source.write_text("")
    result = CliRunner().invoke(cli, ["import", "--db", str(db), "--org", "nope", str(source)])
    assert result.exit_code != 0
    assert 'organization "nope" does not exist' in result.output


def test_token_create_prints_a_working_token(db: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "token",
            "create",
            "--db",
            str(db),
            "--org",
            "acme",
            "--scope",
            "read",
            "--scope",
            "ingest",
        ],
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    with Tally(Settings(db_path=db)) as tally:
        token = tally.access.authenticate(secret)
        assert token.org == "acme"
        assert token.scopes == ("read", "ingest")


# The dates on which the unpinned demo once failed (a quiet weekend left a day empty), a DST
# change in New York each way, and a new year.
DEMO_DATES = [
    "2026-11-25T03:00:00Z",
    "2026-11-29T23:30:00Z",
    "2026-12-01T12:00:00Z",
    "2026-03-09T06:00:00Z",
    "2026-11-02T04:30:00Z",
    "2027-01-01T00:30:00Z",
]


@pytest.mark.parametrize("now", DEMO_DATES)
def test_demo_builds_the_promised_shape(tmp_path: Path, now: str) -> None:
    db = tmp_path / "demo.duckdb"
    result = CliRunner(env={"TALLY_NOW": now}).invoke(
        cli, ["demo", "--db", str(db), "--no-serve", "--members", "60", "--days", "14"]
    )
    assert result.exit_code == 0, result.output
    assert "read token: tly_" in result.stdout
    assert "curl -s -H 'Authorization: Bearer tly_" in result.stdout
    assert "Dashboard: http://127.0.0.1:8000/ui/" in result.stdout
    with duckdb.connect(str(db), read_only=True) as raw:
        orgs = raw.execute("SELECT id, timezone FROM orgs ORDER BY id").fetchall()
        members = raw.execute("SELECT count(*) FROM members").fetchone()
        depth = raw.execute("SELECT count(*) FROM departments WHERE parent IS NOT NULL").fetchone()
        days = raw.execute(
            "SELECT org, count(DISTINCT day), count(DISTINCT type), min(day), max(day)"
            " FROM events GROUP BY org ORDER BY org"
        ).fetchall()
        weekday = raw.execute(
            "SELECT avg(n) FILTER (WHERE isodow(day) <= 5), avg(n) FILTER (WHERE isodow(day) > 5)"
            " FROM (SELECT day, count(*) AS n FROM events GROUP BY day)"
        ).fetchone()
    assert orgs == [("acme", "Asia/Shanghai"), ("globex", "America/New_York")]
    assert members == (60,)
    assert depth is not None
    assert depth[0] >= 5
    assert [d[0] for d in days] == ["acme", "globex"]
    assert all(d[1] == 14 and d[2] == 9 for d in days)
    # the 14 days up to yesterday, in each org's own time zone
    for org, zone_name in orgs:
        today = datetime.fromisoformat(now).astimezone(ZoneInfo(zone_name)).date()
        (first, last) = next((d[3], d[4]) for d in days if d[0] == org)
        assert (first, last) == (today - timedelta(days=14), today - timedelta(days=1))
    assert weekday is not None
    assert weekday[0] > 3 * weekday[1]


def test_import_while_the_server_holds_the_file_says_so(db: Path, tmp_path: Path) -> None:
    from tests.server import ServerProcess

    source = tmp_path / "events.ndjson"
    source.write_text(json.dumps(events(1)[0]) + "\n")
    server = ServerProcess(db, "cli-test-admin")
    try:
        result = CliRunner().invoke(cli, ["import", "--db", str(db), "--org", "acme", str(source)])
    finally:
        server.stop()
    assert result.exit_code != 0
    assert "is in use by another process (is `tally serve` running on it?)" in result.output


def test_settle_heap_loads_every_directory_and_freezes_it(db: Path) -> None:
    tally = Tally(Settings(db_path=db))
    threshold = gc.get_threshold()
    try:
        settle_heap(tally)
        assert gc.get_threshold()[0] == 10_000
        # every organization's snapshot was loaded before the freeze (one loaded now would
        # be among the collected objects)
        snapshots = [tally.directory.require(org.id) for org in tally.directory.orgs()]
        assert len(snapshots) == 1
        assert gc.get_freeze_count() > 0
        collected = {id(o) for o in gc.get_objects()}  # frozen objects are not among them
        assert all(gc.is_tracked(s) and id(s) not in collected for s in snapshots)
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        tally.close()
