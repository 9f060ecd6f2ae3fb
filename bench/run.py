"""Tally's benchmark (issue 6): one run, every figure side by side on the same data.

For each size (default 1M and 10M events; ``--with-100m`` adds 100M):

1. the seeded org (20,000 members, 500 departments of depth 4, 300 workspaces, 2,000 apps) is
   written through Tally's library into a fresh DuckDB file (cached template, copied per size);
   the seeded events (365 days ending yesterday, org-local) are generated as Parquet (cached);
2. ``tally import`` loads them (timed: bulk import events/s);
3. DuckDB answers the questions straight from the raw ``events`` table (own process);
4. PostgreSQL 15 (temp cluster, stopped at the end) loads the same events, indexes them and
   answers the same questions;
5. ``tally serve`` on loopback answers the three APIs (p50/p99 per question), then takes 8
   concurrent clients posting 1,000-event batches (HTTP ingest events/s); its peak RSS is read;
6. after the server stops, the in-process ceiling (decode + validate + append) is measured;
7. with ``--store scale-out``, the same directory and events in the scale-out stores
   (PostgreSQL + a 2-shard ClickHouse cluster, fresh per size): ``tally import`` into
   ClickHouse, the APIs through ``tally serve --workers 1``, HTTP ingest with 1 and 2 workers,
   the peak RSS of every process (``scaleout.py``); side by side with the DuckDB figures.

It prints one table and writes ``bench/results/<YYYY-MM-DD>-<n>.json`` (updated after each size,
so an interrupted run keeps what it measured). See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from apis import time_apis
from common import BENCH_DIR, WORK_DIR
from generate import cached_events
from orgdir import copy_directory, directory_template, member_count_of_subtree
from pg import Postgres, csv_export_dir
from pg import load as pg_load
from pg import time_questions as pg_time
from plan import DAYS, MEMBERS, ORG_ID, OrgPlan, local_today, make_plan, midnight_us
from queries import QUESTION_KEYS
from report import consistency, machine, render, results_path, versions, write_json
from server import create_token, run_import, serving

SIZES = {"1M": 1_000_000, "10M": 10_000_000, "100M": 100_000_000}
NOTES = [
    "Latencies are client-side, sequential requests over loopback on one keep-alive"
    " connection (API) or one connection (DuckDB, PostgreSQL); p99 is nearest-rank, so with"
    ' fewer than 100 samples it is the maximum. "The server\'s own time" is the Server-Timing'
    " header of the same requests (from reading the request to the answer's body): the rest is"
    " the HTTP exchange and the client (httpx) reading the answer.",
    "Raw DuckDB and PostgreSQL attribute members to their current departments and developer"
    " flag (Tally uses the version in effect at each event's time); about 3% of members moved"
    " department inside the window.",
    "A raw answer is the SQL a person would write for the whole question (all rows of the"
    " window, all breakdowns); the department and environment APIs answer it in one request"
    " (department usage: page 1 of 100 rows, which holds a 31-day window but 100 of ~365 days).",
    "PostgreSQL: temp cluster, shared_buffers 4GB, work_mem 256MB, 2 parallel workers,"
    " indexes (org, day), (org, member, day), (org, app, ts), (org, type, day); VACUUM ANALYZE.",
    "HTTP ingest and the in-process ceiling share the 2 cores with their client (load.py"
    " runs in its own process on the same machine).",
    "Directory: org and departments through tally.directory; members, workspaces and apps"
    " through tally.store directly (the bench's plan guarantees what the service checks;"
    " the service's rules are the tests' business).",
]

SCALE_OUT_NOTES = [
    "Scale-out (--store scale-out): fresh PostgreSQL 15 (directory, tokens) and two"
    " ClickHouse 18.16 servers (cluster of 2 shards, events) per size, on the same 2 cores as"
    " everything else; tally connects to the first ClickHouse server, which also coordinates"
    " each query over both shards. The APIs are timed on `tally serve --workers 1`; HTTP"
    " ingest is measured with 1 and then 2 workers (the same 8 clients), each after an"
    " untimed run of up to 10 s (a worker loads the directory at its first request).",
    "Peak RSS (VmHWM) of every process is read once a second and just before each stops;"
    " PostgreSQL's backends count the shared buffers they touched, so their peaks overlap.",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,10M", help="comma list of 1M, 10M, 100M")
    parser.add_argument("--with-100m", action="store_true", help="add the 100M size")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1M only, short timings, no PostgreSQL"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--count", type=int, default=1000, help="timed requests per question (time-bounded)"
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--question-seconds", type=float, default=8.0, help="time bound per question and system"
    )
    parser.add_argument("--ingest-seconds", type=float, default=20.0)
    parser.add_argument("--ceiling-seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--questions", default="", help="comma list of question keys (all)")
    parser.add_argument(
        "--store-memory-limit",
        default="",
        help="TALLY_STORE_MEMORY_LIMIT of the server, e.g. 768MB (default: Tally's default)",
    )
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        help="reuse a per-size file kept by an earlier run (--keep-db): skip copy and import",
    )
    parser.add_argument("--keep-db", action="store_true", help="keep the per-size Tally files")
    parser.add_argument(
        "--store",
        choices=("duckdb", "scale-out", "both"),
        default="duckdb",
        help="duckdb: the DuckDB file only; scale-out (= both): the DuckDB figures and, in the"
        " same run and table, PostgreSQL + 2-shard ClickHouse with 1 and 2 workers",
    )
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--out", type=Path, default=None, help="results JSON path")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.count, args.warmup = "1M", 30, 2
        args.question_seconds, args.ingest_seconds, args.ceiling_seconds = 3.0, 5.0, 4.0
        args.no_pg = True
    names = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if args.with_100m and "100M" not in names:
        names.append("100M")
    unknown = [n for n in names if n not in SIZES]
    if unknown:
        parser.error(f"unknown size {unknown[0]!r}; choose from {', '.join(SIZES)}")
    args.size_names = names
    args.scale_out = args.store != "duckdb"
    keys = {k for k in args.questions.split(",") if k}
    if keys - set(QUESTION_KEYS):
        parser.error(f"unknown question; choose from {', '.join(QUESTION_KEYS)}")
    args.question_keys = keys or None
    return args


def _json_subprocess(command: list[str], timeout: float) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr[-1500:]}"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_size(
    name: str,
    args: argparse.Namespace,
    plan: OrgPlan,
    template: Path,
    pg: Postgres | None,
    out: dict[str, Any],
) -> None:
    """Measure one size; figures land in ``out`` as they come (kept if a later step fails)."""
    total = SIZES[name]
    work: Path = args.work_dir
    out["events"] = total
    _log(f"{name}: generating events (cached when present)")
    generated = cached_events(plan, total, work / "events")
    out["active_member_days"] = generated.active_member_days
    out["events_per_active_member_day"] = round(generated.events_per_active_day, 2)
    out["generate_s"] = round(generated.seconds, 2)
    out["parquet_files"] = len(generated.files)

    db = work / f"tally-{name}.duckdb"
    reuse = args.reuse_db and db.exists()
    if not reuse:
        copy_directory(template, db)
    read_token = create_token(db, ORG_ID, ("read",))
    ingest_token = create_token(db, ORG_ID, ("ingest",))

    if reuse:  # the file of an earlier (interrupted) run with --keep-db: no import figure
        _log(f"{name}: reusing {db} (no import)")
        out["import"] = {"reused": True, "db_bytes": db.stat().st_size}
    else:
        _log(f"{name}: tally import of {total:,} events")
        imported = run_import(db, ORG_ID, generated.files, timeout=max(600.0, total / 5_000))
        out["import"] = {
            "seconds": round(imported.seconds, 2),
            "events_per_s": (
                round(total / imported.seconds, 1) if imported.returncode == 0 else None
            ),
            "returncode": imported.returncode,
            "output": imported.output[-500:],
            "db_bytes": db.stat().st_size,
            "peak_rss_bytes": imported.peak_rss_bytes,
        }
        _log(f"{name}: import {imported.seconds:.1f} s (exit {imported.returncode})")
        if imported.returncode != 0:
            raise RuntimeError(f"tally import failed: {imported.output[-800:]}")

    app_end_us = midnight_us(plan.end_day + timedelta(days=1))
    timing = [
        "--warmup",
        str(args.warmup),
        "--count",
        str(args.count),
        "--seconds",
        str(args.question_seconds),
    ]
    common_q = [
        "--end-day",
        plan.end_day.isoformat(),
        "--subtree",
        plan.subtree_dept,
        "--root",
        plan.root_dept,
        "--member",
        plan.busy_member,
        "--app-end-us",
        str(app_end_us),
    ]
    if args.question_keys:
        common_q += ["--questions", ",".join(sorted(args.question_keys))]
    rawduck = [sys.executable, str(BENCH_DIR / "rawduck.py")]
    _log(f"{name}: raw DuckDB questions")
    out["raw_duckdb"] = _json_subprocess(
        [*rawduck, "time", "--db", str(db), *common_q, *timing], timeout=3600
    )

    if pg is not None:
        _log(f"{name}: PostgreSQL load")
        with csv_export_dir(work) as csv_dir:
            exported = _json_subprocess(
                [
                    *rawduck,
                    "export",
                    "--db",
                    str(db),
                    "--end-day",
                    plan.end_day.isoformat(),
                    "--out",
                    str(csv_dir),
                ],
                timeout=7200,
            )
            if "error" in exported:
                raise RuntimeError(f"export for PostgreSQL failed: {exported['error']}")
            loaded = pg_load(pg, csv_dir)
        loaded["export_s"] = round(float(exported["seconds"]), 2)
        loaded["disk_bytes"] = pg.disk_bytes()
        _log(f"{name}: PostgreSQL questions")
        out["postgres"] = {
            "load": loaded,
            "questions": pg_time(
                pg,
                end_day=plan.end_day,
                subtree=plan.subtree_dept,
                root=plan.root_dept,
                app_end_us=app_end_us,
                warmup=args.warmup,
                count=args.count,
                seconds=args.question_seconds,
                keys=args.question_keys,
                member=plan.busy_member,
            ),
        }

    _log(f"{name}: tally serve: API latency, then HTTP ingest")
    log = work / f"serve-{name}.log"
    with serving(db, log, store_memory_limit=args.store_memory_limit) as server:
        out["api"] = time_apis(
            server.url,
            read_token,
            end_day=plan.end_day,
            subtree=plan.subtree_dept,
            root=plan.root_dept,
            warmup=args.warmup,
            count=args.count,
            seconds=args.question_seconds,
            keys=args.question_keys,
            member=plan.busy_member,
        )
        out["http_ingest"] = _json_subprocess(
            [
                sys.executable,
                str(BENCH_DIR / "load.py"),
                "--url",
                server.url,
                "--org",
                ORG_ID,
                "--token",
                ingest_token,
                "--clients",
                str(args.clients),
                "--seconds",
                str(args.ingest_seconds),
                "--server-pid",
                str(server.pid),
            ],
            timeout=args.ingest_seconds + 300,
        )
    out["consistency"] = consistency(out)
    out["server_peak_rss_bytes"] = server.peak_rss_bytes
    out["server_cpu_seconds"] = server.cpu_seconds

    _log(f"{name}: in-process ceiling (one loop, then {args.clients} threads)")
    runs = {
        label: _json_subprocess(
            [sys.executable, str(BENCH_DIR / "ceiling.py"), "--db", str(db), "--org", ORG_ID,
             "--seconds", str(args.ceiling_seconds), "--threads", str(threads)],
            timeout=args.ceiling_seconds + 900,
        )
        for label, threads in (("one_loop", 1), ("threads", args.clients))
    }  # fmt: skip
    rates = [float(r["events_per_s"]) for r in runs.values() if "events_per_s" in r]
    out["ceiling"] = {"events_per_s": max(rates) if rates else None, **runs}
    if not args.keep_db:
        db.unlink(missing_ok=True)
        Path(f"{db}.wal").unlink(missing_ok=True)


def run_scale_out(
    name: str, args: argparse.Namespace, plan: OrgPlan, template: Path, out: dict[str, Any]
) -> None:
    """The scale-out figures of one size (``scaleout.py``); a failure is reported in ``out``."""
    import scaleout  # imports tests/services.py (and pytest) only when asked for

    generated = cached_events(plan, SIZES[name], args.work_dir / "events")
    try:
        scaleout.run_size(
            name, SIZES[name], args, plan, template, generated.files, out, _json_subprocess, _log
        )
    except Exception as exc:
        _log(f"{name} scale-out: FAILED: {exc!r}")
        out["error"] = repr(exc)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)
    today = local_today()
    plan = make_plan(args.seed, today - timedelta(days=1))
    out_path: Path = args.out or results_path(date.today())
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "settings": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k != "question_keys"
        },
        "org": {
            "members": MEMBERS,
            "departments": len(plan.dept_ids),
            "days": DAYS,
            "window": [plan.start_day.isoformat(), plan.end_day.isoformat()],
            "subtree_department": plan.subtree_dept,
            "subtree_members": member_count_of_subtree(plan),
            "one_member": plan.busy_member,
            "root_department": plan.root_dept,
        },
        "notes": NOTES + (SCALE_OUT_NOTES if args.scale_out else []),
        "sizes": {},
    }
    _log(f"directory template (seed {args.seed}, window ending {plan.end_day})")
    template, timings = directory_template(plan, args.work_dir / "directory")
    results["directory"] = {k: round(v, 2) for k, v in timings.items()}
    with ExitStack() as stack:
        pg = None if args.no_pg else stack.enter_context(Postgres(args.work_dir))
        results["versions"] = versions(pg.version if pg else None)
        for name in args.size_names:
            size_out = results["sizes"].setdefault(name, {})
            try:
                run_size(name, args, plan, template, pg, size_out)
            except KeyboardInterrupt:
                results["interrupted"] = name
                write_json(out_path, results)
                raise
            except Exception as exc:  # report it, keep the figures of the other sizes
                _log(f"{name}: FAILED: {exc!r}")
                size_out["error"] = repr(exc)
            write_json(out_path, results)
            if args.scale_out:
                try:
                    run_scale_out(name, args, plan, template, size_out.setdefault("scale_out", {}))
                except KeyboardInterrupt:
                    results["interrupted"] = f"{name} scale-out"
                    write_json(out_path, results)
                    raise
                size_out["consistency"] = consistency(size_out)
                write_json(out_path, results)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json(out_path, results)
    print(render(results))
    for name, data in results["sizes"].items():
        for line in data.get("consistency", []):
            print(f"check {name}: {line}")
    print("\nNotes:")
    for note in results["notes"]:
        print(f"- {note}")
    print(f"\nWritten {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
