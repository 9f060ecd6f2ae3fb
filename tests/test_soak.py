"""Short runs of the reliability probes (issue 19): ``bench/soak.py`` (mixed clients, then every
acknowledged event read back) and ``bench/crash.py`` (kill -9 during ingest, restart, read back),
each a real ``tally serve`` subprocess on a free port. Behaviour only: no speed is asserted.

Besides each probe's own verdict (through the API's event listing), the test opens the DuckDB
file the probe leaves and counts the stored events with plain SQL: every acknowledged id is
there once, and nothing else is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _probe(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stderr[-6000:]}"
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def _stored(db: Path) -> tuple[int, int]:
    """Rows and distinct ids in the org's events, read straight from the file."""
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute(
            "SELECT count(*), count(DISTINCT id) FROM events WHERE org = 'soak'"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_a_short_soak_loses_and_doubles_nothing(tmp_path: Path) -> None:
    db = tmp_path / "soak.duckdb"
    out = _probe(
        "soak.py",
        *("--clients", "6", "--seconds", "8", "--db", str(db)),
        *("--large-mib", "1", "--large-burst", "3", "--large-every", "3", "--in-flight-mib", "2"),
    )
    verify = out["verify"]
    assert out["ok"] is True
    assert out["events_acknowledged"] > 0
    assert verify["lost"] == 0
    assert verify["doubled"] == 0
    assert verify["unknown"] == 0
    assert out["unexpected_5xx"] == 0
    assert out["transport_errors"] == {}
    assert out["anomalies"] == {}
    # Every status seen is one the mix expects: 503 (with Retry-After) only for the large
    # bodies; no 429 from the app usage API, as each client waits 1.1 s after its last answer.
    for kind, figures in out["kinds"].items():
        allowed = {"200", "503"} if kind == "large" else {"200"}
        assert set(figures["statuses"]) <= allowed, kind
    assert int(out["kinds"]["large"]["statuses"]["200"]) > 0
    assert out["rss"]["peak_mib"] > 0
    # Every batch was sent until acknowledged: the file holds exactly the acknowledged ids.
    assert _stored(db) == (verify["acknowledged"], verify["acknowledged"])


def test_kill_9_trials_lose_and_double_nothing(tmp_path: Path) -> None:
    db = tmp_path / "crash.duckdb"
    out = _probe("crash.py", "--trials", "3", "--clients", "3", "--max-kill", "2", "--db", str(db))
    assert out["ok"] is True
    assert out["trials"] == 3
    assert out["events_acknowledged"] > 0
    for key in ("lost", "doubled", "lost_after_resend", "doubled_after_resend", "unknown"):
        assert out[key] == 0, key
    assert out["anomalies"] == 0
    assert all(t["restart_s"] > 0 for t in out["per_trial"])
    # After the last trial's resend every id ever sent is acknowledged and stored once.
    assert _stored(db) == (out["events_acknowledged"], out["events_acknowledged"])
