"""Settings reach the parts they configure."""

from __future__ import annotations

from pathlib import Path

from tally.service import Tally
from tally.settings import Settings


def _duckdb_setting(tally: Tally, name: str) -> str:
    row = tally.store._db.execute(f"SELECT current_setting('{name}')").fetchone()  # type: ignore[attr-defined]
    assert row is not None
    return str(row[0])


def test_store_settings_come_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "TALLY_DB_PATH": str(tmp_path / "t.duckdb"),
            "TALLY_STORE_CHECKPOINT_THRESHOLD": "64MB",
            "TALLY_STORE_MEMORY_LIMIT": "512MB",
        }
    )
    with Tally(settings) as tally:
        # DuckDB reports sizes in MiB: 64 MB = 61.0 MiB, 512 MB = 488.2 MiB
        assert _duckdb_setting(tally, "checkpoint_threshold") == "61.0 MiB"
        assert _duckdb_setting(tally, "memory_limit") == "488.2 MiB"


def test_the_default_checkpoint_threshold_is_large(tmp_path: Path) -> None:
    with Tally(Settings(db_path=tmp_path / "t.duckdb")) as tally:
        assert _duckdb_setting(tally, "checkpoint_threshold") == "953.6 MiB"  # 1 GB
