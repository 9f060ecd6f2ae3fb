"""Export benchmark (issue 18): peak RSS and throughput of exporting N events.

It builds (or reuses, cached under ``bench/work/``) the benchmark organization of ``run.py``
with N generated events (``generate.py``) imported by ``tally import``, then measures:

* ``tally export ... events --format csv|parquet`` as a subprocess over the whole 365-day
  window: wall time, events/s, output size and the command's own peak RSS (VmHWM); and the
  same command over an empty window (the fixed part: interpreter, libraries, directory), so
  that the RSS the export itself adds is visible;
* with ``--http``, the same export through ``tally serve`` (``GET .../export/events``, streamed
  to nowhere by the client): time and the server's peak RSS (VmHWM) before and after.

Run::

    .venv/bin/python bench/export.py                      # 1M events (~2 min the first time)
    .venv/bin/python bench/export.py --events 10000000    # 10M (~10 min the first time)
    .venv/bin/python bench/export.py --datasets events,member_days --http

Prints one table and writes ``bench/results/export-<events>.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from common import RESULTS_DIR, WORK_DIR, vm_hwm_bytes
from generate import cached_events
from orgdir import copy_directory, directory_template
from plan import ORG_ID, local_today, make_plan
from server import ADMIN_TOKEN, TALLY, run_import, serving, tally_env

MB = 1024 * 1024


def _log(message: str) -> None:
    print(f"[export bench] {message}", file=sys.stderr, flush=True)


def run_export(
    db: Path,
    dataset: str,
    window: tuple[str, str],
    fmt: str,
    out: Path,
    timeout: float,
    memory_limit: str,
) -> dict[str, Any]:
    """``tally export`` as a subprocess: seconds, output bytes, peak RSS (VmHWM, polled every
    50 ms: ``wait4``'s ``ru_maxrss`` would include this process's own RSS, which Linux carries
    over the fork and the exec)."""
    start, end = window
    command = [TALLY, "export", "--db", str(db), "--org", ORG_ID, dataset, "--start", start]
    command += ["--end", end, "--format", fmt, "--output", str(out)]
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=tally_env(memory_limit)
        )
        peak = 0
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            peak = max(peak, vm_hwm_bytes(process.pid) or 0)
            if time.monotonic() > deadline:
                process.kill()
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        log.seek(0)
        text = log.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"tally export failed ({process.returncode}): {text[-800:]}")
    return {"seconds": round(seconds, 2), "bytes": out.stat().st_size, "peak_rss_mb": peak_mb(peak)}


def peak_mb(value: int | None) -> float:
    return round((value or 0) / MB, 1)


def run_http(
    db: Path, work: Path, start: str, end: str, formats: list[str], memory_limit: str
) -> dict[str, Any]:
    """The events export through ``tally serve``: its peak RSS before and after each format."""
    out: dict[str, Any] = {}
    with serving(db, work / "serve-export.log", store_memory_limit=memory_limit) as server:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        url = f"{server.url}/api/v1/orgs/{ORG_ID}/export/events"
        small = httpx.get(url, params={"start": start, "end": start}, headers=headers)
        small.raise_for_status()
        out["server_rss_before_mb"] = peak_mb(vm_hwm_bytes(server.pid))
        for fmt in formats:
            size = 0
            started = time.perf_counter()
            params = {"start": start, "end": end, "format": fmt}
            with httpx.stream("GET", url, params=params, headers=headers, timeout=3600) as reply:
                reply.raise_for_status()
                for chunk in reply.iter_bytes():
                    size += len(chunk)
            out[fmt] = {
                "seconds": round(time.perf_counter() - started, 2),
                "bytes": size,
                "server_peak_rss_mb": peak_mb(vm_hwm_bytes(server.pid)),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--formats", default="csv,parquet")
    parser.add_argument("--datasets", default="events", help="comma list (default: events)")
    parser.add_argument("--http", action="store_true", help="also through tally serve")
    parser.add_argument(
        "--store-memory-limit",
        default="",
        help="TALLY_STORE_MEMORY_LIMIT of the exporting processes, e.g. 256MB (default: DuckDB's)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--out", type=Path, default=None, help="results JSON path")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    datasets = [d for d in args.datasets.split(",") if d]
    work: Path = args.work_dir
    plan = make_plan(args.seed, local_today() - timedelta(days=1))
    start, end = plan.start_day.isoformat(), plan.end_day.isoformat()

    _log(f"directory template (seed {args.seed}, window {start} .. {end})")
    template, _ = directory_template(plan, work / "directory")
    _log(f"{args.events:,} events (generated when not cached)")
    generated = cached_events(plan, args.events, work / "events")
    db = work / f"tally-export-{plan.end_day.isoformat()}-{args.events}.duckdb"
    results: dict[str, Any] = {
        "events": args.events,
        "window": [start, end],
        "store_memory_limit": args.store_memory_limit or "DuckDB's default (80% of RAM)",
        "runs": {},
    }
    if not db.exists():
        partial = db.with_suffix(".partial.duckdb")
        copy_directory(template, partial)
        _log("tally import")
        imported = run_import(partial, ORG_ID, generated.files, timeout=max(600, args.events / 5e3))
        if imported.returncode != 0:
            raise RuntimeError(f"tally import failed: {imported.output[-800:]}")
        partial.rename(db)
        results["import_seconds"] = round(imported.seconds, 1)

    before = (plan.start_day - timedelta(days=30)).isoformat()
    for dataset in datasets:
        for fmt in formats:
            target = work / f"export-{dataset}.{fmt}"
            _log(f"tally export {dataset} --format {fmt}")
            limit = args.store_memory_limit
            run = run_export(db, dataset, (start, end), fmt, target, 7200, limit)
            empty = run_export(db, dataset, (before, before), fmt, target, 600, limit)
            if dataset == "events":
                run["events_per_s"] = round(args.events / run["seconds"])
            run["empty_window_peak_rss_mb"] = empty["peak_rss_mb"]
            results["runs"][f"{dataset}.{fmt}"] = run
            target.unlink()
    if args.http:
        _log("through tally serve")
        results["http"] = run_http(db, work, start, end, formats, args.store_memory_limit)

    print(f"\nExport of {args.events:,} events ({start} .. {end}, org {ORG_ID})")
    print(f"{'dataset.format':24} {'seconds':>8} {'events/s':>10} {'MB out':>8} "
          f"{'peak RSS MB':>12} {'empty window':>13}")  # fmt: skip
    for name, run in results["runs"].items():
        rate = f"{run['events_per_s']:,}" if "events_per_s" in run else "-"
        print(
            f"{name:24} {run['seconds']:>8} {rate:>10} {run['bytes'] / MB:>8.1f}"
            f" {run['peak_rss_mb']:>12} {run['empty_window_peak_rss_mb']:>13}"
        )
    if "http" in results:
        print(f"tally serve: {json.dumps(results['http'])}")
    suffix = f"-{args.store_memory_limit}" if args.store_memory_limit else ""
    path = args.out or RESULTS_DIR / f"export-{args.events}{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    _log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
