"""The dashboard's overview page (issue 17): server time of its JSON over a 365-day window.

Same org and events as ``bench/run.py`` (20,000 members, 500 departments, 365 days ending
yesterday; 1M events by default, ``--sizes 1M,10M`` for more): the events are imported with
``tally import`` into a fresh DuckDB file, ``tally serve`` is started, the bench signs in to
``/ui/`` with a read token (the session cookie) and asks ``/ui/api/overview`` for the whole
365 days, sequentially. Reported per size: p50/p99 of the view's own time (``server_ms`` in
the answer: the engine functions and the shaping, what the page waits for) and of the whole
request as the client sees it. Not part of ``make test``.

    .venv/bin/python bench/dashboard.py                 # 1M (~3-5 min the first time)
    .venv/bin/python bench/dashboard.py --sizes 1M,10M  # and 10M
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from common import WORK_DIR, summarize_ms
from generate import cached_events
from orgdir import copy_directory, directory_template
from plan import ORG_ID, local_today, make_plan
from server import create_token, run_import, serving

SIZES = {"1M": 1_000_000, "10M": 10_000_000, "100M": 100_000_000}


def _log(message: str) -> None:
    print(f"[dashboard] {message}", file=sys.stderr, flush=True)


def time_overview(url: str, token: str, first: str, last: str, count: int) -> dict[str, Any]:
    """Sign in, then ``count`` timed overview requests after two untimed ones."""
    with httpx.Client(base_url=url, timeout=120) as client:
        signed = client.post("/ui/signin", data={"token": token})
        if signed.status_code != 303 or "tally_session" not in client.cookies:
            raise RuntimeError(f"sign-in failed: {signed.status_code} {signed.text[:200]}")
        params = {"from": first, "to": last}
        server: list[float] = []
        wall: list[float] = []
        answer: dict[str, Any] = {}
        for i in range(count + 2):
            started = time.perf_counter()
            response = client.get("/ui/api/overview", params=params)
            took = time.perf_counter() - started
            response.raise_for_status()
            answer = response.json()
            if i >= 2:
                wall.append(took)
                server.append(answer["server_ms"] / 1000)
        days = answer["tables"]["days"]["rows"]
        return {
            "server": summarize_ms(server),
            "request": summarize_ms(wall),
            "days": len(days),
            "active_developers_in_window": answer["totals"]["active_developers"],
            "suggested": answer["totals"]["suggested"],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M", help="comma list of 1M, 10M, 100M")
    parser.add_argument("--count", type=int, default=20, help="timed requests per size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--out", type=Path, default=None, help="results JSON path")
    parser.add_argument("--keep-db", action="store_true", help="keep the per-size Tally file")
    parser.add_argument(
        "--reuse-db", action="store_true", help="serve a kept file again (no import)"
    )
    args = parser.parse_args(argv)
    plan = make_plan(args.seed, local_today() - timedelta(days=1))
    first = plan.start_day.isoformat()
    last = plan.end_day.isoformat()
    template, _ = directory_template(plan, args.work_dir / "directory")
    results: dict[str, Any] = {"window": [first, last], "sizes": {}}
    for name in args.sizes.split(","):
        total = SIZES[name]
        generated = cached_events(plan, total, args.work_dir / "events")
        db = args.work_dir / f"dashboard-{name}.duckdb"
        if not (args.reuse_db and db.exists()):
            for stale in (db, Path(f"{db}.wal")):
                stale.unlink(missing_ok=True)
            copy_directory(template, db)
            _log(f"{name}: tally import of {total:,} events")
            imported = run_import(db, ORG_ID, generated.files, timeout=max(600.0, total / 5_000))
            if imported.returncode != 0:
                raise RuntimeError(f"tally import failed: {imported.output[-800:]}")
        token = create_token(db, ORG_ID, ("read",))
        with serving(db, args.work_dir / f"serve-dashboard-{name}.log") as server:
            _log(f"{name}: overview, {first} .. {last}")
            figures = time_overview(server.url, token, first, last, args.count)
        results["sizes"][name] = {"events": total, **figures}
        if not args.keep_db:
            db.unlink(missing_ok=True)
        s, r = figures["server"], figures["request"]
        print(
            f"{name}: overview of {figures['days']} days: server p50 {s['p50_ms']:.0f} ms,"
            f" p99 {s['p99_ms']:.0f} ms; request p50 {r['p50_ms']:.0f} ms,"
            f" p99 {r['p99_ms']:.0f} ms (n={s['n']})"
        )
    text = json.dumps(results, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
