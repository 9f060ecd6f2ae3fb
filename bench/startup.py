"""Start-up probe: how long ``tally serve`` takes to answer ``/healthz`` over a DuckDB file of N
events, after a clean stop, after a crash with the log not folded, and after a crash once the
idle checkpoint ran (issue 19, item 5).

    PYTHONPATH=src .venv/bin/python bench/startup.py [--events 1000000] [--repeat 3]

The file: the bench organization (``bench/plan.py``: 20,000 members, 500 departments, ...)
with N seeded events (``bench/generate.py``'s Parquet, cached under ``bench/work/``) loaded by
``tally import``. Start time = seconds from spawning ``tally serve`` to the first 200 of
``/healthz`` (polled every 20 ms). Cases, in this order:

* ``empty``: a new file (no directory, no events): the floor (Python, the app, uvicorn);
* ``imported``: the file just after ``tally import`` (which checkpoints when it closes);

then ``--repeat`` rounds of three, each beginning with a serving process into which
``--ingest`` events are posted over HTTP (1,000 per batch, fresh ids, times a minute ago):

* ``clean``: stopped with SIGTERM (the server checkpoints the log at a clean stop), restarted;
* ``kill_log``: (``TALLY_IDLE_CHECKPOINT_SECONDS=0``: no idle checkpoint) killed with SIGKILL
  right after the last answer, the log unfolded, restarted;
* ``kill_idle``: (``TALLY_IDLE_CHECKPOINT_SECONDS=2``) left alone until the log is folded
  (polled), then killed with SIGKILL, restarted.

Each measured server is stopped with SIGTERM before the next case. Prints one line per start
on stderr and one JSON object (per case: each start, the median and the max; the log's size
before each start; the clean stops' durations). The server's clock is the machine's (the
generated window ends yesterday).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from common import WORK_DIR
from generate import cached_events
from load import batch_maker
from orgdir import copy_directory, directory_template
from plan import ORG_ID, local_today, make_plan
from probe import Serve, admin_headers, wal_bytes
from server import run_import


def ingest(url: str, count: int, tag: str) -> int:
    """Post ``count`` fresh events (batches of 1,000); returns the events accepted."""
    make = batch_maker(tag, 1000)
    accepted = 0
    headers = {**admin_headers(), "Content-Type": "application/json"}
    with httpx.Client(headers=headers, timeout=120.0) as http:
        for number in range(max(1, count // 1000)):
            answer = http.post(f"{url}/api/v1/orgs/{ORG_ID}/events", content=make(number))
            answer.raise_for_status()
            accepted += int(answer.json()["accepted"])
    return accepted


def build(args: argparse.Namespace, db: Path) -> dict[str, Any]:
    plan = make_plan(args.seed, local_today() - timedelta(days=1))
    template, _ = directory_template(plan, args.work_dir / "directory")
    generated = cached_events(plan, args.events, args.work_dir / "events")
    copy_directory(template, db)
    imported = run_import(db, ORG_ID, generated.files, timeout=max(600.0, args.events / 5_000))
    if imported.returncode != 0:
        raise RuntimeError(f"tally import failed: {imported.output[-800:]}")
    return {"import_s": round(imported.seconds, 2), "db_bytes": db.stat().st_size}


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    db = args.db or work / "startup.duckdb"
    log = work / "startup-server.log"
    starts: dict[str, list[dict[str, Any]]] = {}
    stops: list[float] = []

    def measure(case: str, env: dict[str, str] | None = None, on: Path = db) -> Serve:
        before = wal_bytes(on)
        server = Serve(on, log, env=env or {})
        seconds = server.start()
        starts.setdefault(case, []).append({"start_s": round(seconds, 3), "wal_bytes": before})
        _log(f"{case}: {seconds:.3f} s (log {before:,} bytes before the start)")
        return server

    measure("empty", on=work / "empty.duckdb").stop()
    _log(f"building {args.events:,} events (bench/work cache) and tally import")
    built = build(args, db)
    measure("imported").stop()
    for round_ in range(args.repeat):
        # clean: SIGTERM after ingest
        server = Serve(db, log)
        server.start()
        ingest(server.url, args.ingest, f"s{round_}c{time.time_ns()}")
        stops.append(round(server.stop(), 3))
        measure("clean").stop()
        # kill_log: no idle checkpoint, SIGKILL right after the last answer
        server = Serve(db, log, env={"TALLY_IDLE_CHECKPOINT_SECONDS": "0"})
        server.start()
        ingest(server.url, args.ingest, f"s{round_}k{time.time_ns()}")
        server.kill()
        measure("kill_log").stop()
        # kill_idle: the idle checkpoint folds the log, then SIGKILL
        server = Serve(db, log, env={"TALLY_IDLE_CHECKPOINT_SECONDS": "2"})
        server.start()
        ingest(server.url, args.ingest, f"s{round_}i{time.time_ns()}")
        waited = time.perf_counter()
        while wal_bytes(db) > 0 and time.perf_counter() - waited < args.idle_wait:
            time.sleep(0.1)
        folded_after = time.perf_counter() - waited
        server.kill()
        measure("kill_idle").stop()
        starts["kill_idle"][-1]["folded_after_s"] = round(folded_after, 2)
    cases = {
        case: {
            "median_s": round(statistics.median(r["start_s"] for r in runs), 3),
            "max_s": max(r["start_s"] for r in runs),
            "runs": runs,
        }
        for case, runs in starts.items()
    }
    return {
        "events": args.events,
        "ingest_per_round": args.ingest,
        "repeat": args.repeat,
        **built,
        "db_bytes_at_end": db.stat().st_size,
        "clean_stop_s": stops,
        "cases": cases,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the file")
    parser.add_argument("--ingest", type=int, default=100_000, help="events posted per case")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the three cases")
    parser.add_argument("--idle-wait", type=float, default=120.0, help="most seconds to wait")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="cache of the data")
    parser.add_argument("--db", type=Path, default=None, help="the file to build (replaced)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tally-startup-") as tmp:
        out = run(args, Path(tmp))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
