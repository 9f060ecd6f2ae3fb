"""Parquet imports take the columnar path: same rows stored, same reasons, same rollups as the
HTTP API's per-item path."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from starlette.testclient import TestClient

from tally.cli import import_file
from tally.service import Tally
from tests.conftest import ADMIN, Admin, bearer
from tests.test_events import INVALID, VALID
from tests.test_rollups import all_answers, build_scenario

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("type", pa.string()),
        ("member", pa.string()),
        ("ide", pa.string()),
        ("language", pa.string()),
        ("chat_type", pa.string()),
        ("source", pa.string()),
        ("accepted", pa.bool_()),
        ("lines_suggested", pa.int64()),
        ("lines_accepted", pa.int64()),
        ("lines_changed", pa.int64()),
        ("workspace", pa.string()),
        ("app", pa.string()),
        ("resource", pa.string()),
        ("delta", pa.int64()),
        ("records", pa.int64()),
    ]
)


def write_parquet(path: Path, events: list[dict[str, Any]]) -> Path:
    rows = [{**e, "time": datetime.fromisoformat(e["time"])} for e in events]
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path)
    return path


def setup_org(admin: Admin, org: str) -> None:
    admin.org(org)
    admin.put(f"{org}/members/m1", {"name": "Ann", "created_at": "2026-01-01T00:00:00+08:00"})
    admin.put(f"{org}/workspaces/w1", {"name": "W", "created_at": "2026-01-01T00:00:00+08:00"})
    admin.put(
        f"{org}/apps/a1",
        {"name": "CRM", "creator": "m1", "created_at": "2026-01-01T00:00:00+08:00"},
    )


def listed(client: TestClient, org: str) -> list[dict[str, Any]]:
    page = client.get(f"/api/v1/orgs/{org}/events?limit=1000", headers=bearer(ADMIN)).json()
    return sorted(page["events"], key=lambda e: e["id"])


def test_parquet_rows_are_stored_as_the_api_stores_them(
    admin: Admin, client: TestClient, tally: Tally, tmp_path: Path
) -> None:
    setup_org(admin, "viaapi")
    setup_org(admin, "viafile")
    admin.events("viaapi", VALID)
    result = import_file(tally, "viafile", write_parquet(tmp_path / "v.parquet", VALID))
    assert (result.accepted, result.duplicates, result.rejected) == (11, 0, [])
    assert listed(client, "viafile") == listed(client, "viaapi")


def test_parquet_rejections_give_the_api_reasons(
    admin: Admin, client: TestClient, tally: Tally, tmp_path: Path
) -> None:
    setup_org(admin, "acme")
    typed = [
        (item, reason) for item, reason in INVALID if isinstance(item, dict) and _fits_schema(item)
    ]
    assert len(typed) >= 10
    rows = [VALID[5]] + [item for item, _ in typed] + [VALID[6]]
    result = import_file(tally, "acme", write_parquet(tmp_path / "bad.parquet", rows))
    assert result.accepted == 2
    assert [(r.index, r.error) for r in result.rejected] == [
        (i + 1, reason) for i, (_, reason) in enumerate(typed)
    ]
    assert [e["id"] for e in listed(client, "acme")] == ["a1", "w1"]


def _fits_schema(item: dict[str, Any]) -> bool:
    """Items a Parquet column can carry (no string in an int column, no unknown field...)."""
    names = set(SCHEMA.names)
    if not set(item) <= names or "time" not in item or "T" not in item["time"]:
        return False
    if item["time"][-6] not in "+-":
        return False
    row = {**item, "time": datetime.fromisoformat(item["time"])}
    try:
        back = pa.Table.from_pylist([row], schema=SCHEMA).to_pylist()[0]
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return all(back[k] == v and type(back[k]) is type(v) for k, v in row.items() if k != "time")


def test_parquet_duplicates_inside_a_file_and_across_imports(
    admin: Admin, tally: Tally, tmp_path: Path
) -> None:
    setup_org(admin, "acme")
    path = write_parquet(tmp_path / "d.parquet", [VALID[5], VALID[6], VALID[5]])
    first = import_file(tally, "acme", path)
    second = import_file(tally, "acme", path)
    assert (first.accepted, first.duplicates) == (2, 1)
    assert (second.accepted, second.duplicates) == (0, 3)


def test_parquet_import_keeps_the_rollups_exact(
    admin: Admin, client: TestClient, tally: Tally, tmp_path: Path
) -> None:
    events = build_scenario(admin, 4, send=False)
    half = len(events) // 2  # two files: the second one's late events add to old days
    import_file(tally, "acme", write_parquet(tmp_path / "a.parquet", events[half:]))
    import_file(tally, "acme", write_parquet(tmp_path / "b.parquet", events[: half + 100]))
    from_rollups = all_answers(client)
    tally.store.rollups = False  # type: ignore[attr-defined]
    assert all_answers(client) == from_rollups
    tally.store.rollups = True  # type: ignore[attr-defined]
    tally.store.rebuild_rollups("acme")
    assert all_answers(client) == from_rollups


def test_valid_rows_take_the_columnar_path(admin: Admin, tally: Tally, tmp_path: Path) -> None:
    """Every valid row is vouched for by the vectorised checks (none falls to the slow path)."""
    from tally.engine.columnar import vouched_rows
    from tests.conftest import NOW

    setup_org(admin, "acme")
    table = pq.read_table(write_parquet(tmp_path / "v.parquet", VALID))
    mask = vouched_rows(table, tally.directory.require("acme"), NOW)
    assert mask.to_pylist() == [True] * len(VALID)
