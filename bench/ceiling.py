"""The in-process ingest ceiling: decode + validate + append without HTTP.

Run as its own process on a Tally file no server holds: the same 1,000-event JSON batches as
``load.py`` (fresh ids), through ``Tally(...).ingestor.ingest_body(org, body,
"application/json")``, for a bounded time and count, from ``--threads`` threads (default 1: one
loop; with several, concurrent batches can share a commit as they do in the server). Prints one
JSON object with events/s and the per-batch latency.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import summarize_ms
from load import batch_maker
from tally.service import Tally
from tally.settings import Settings


def drive(
    tally: Tally,
    org: str,
    make: Callable[[int], bytes],
    *,
    threads: int,
    seconds: float,
    max_batches: int,
) -> dict[str, Any]:
    """``threads`` loops calling ``ingest_body`` until ``seconds`` or ``max_batches``."""
    numbers = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    accepted = 0
    started = time.perf_counter()
    stop_at = started + seconds

    def loop() -> None:
        nonlocal accepted
        while time.perf_counter() < stop_at:
            number = next(numbers)
            if number >= max_batches:
                return
            body = make(number)
            sent = time.perf_counter()
            result = tally.ingestor.ingest_body(org, body, "application/json")
            took = time.perf_counter() - sent
            with lock:
                latencies.append(took)
                accepted += result.accepted

    workers = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 600)
    elapsed = time.perf_counter() - started
    return {
        "threads": threads,
        "seconds": round(elapsed, 3),
        "batches": len(latencies),
        "events_accepted": accepted,
        "events_per_s": round(accepted / elapsed, 1),
        "latency": summarize_ms(latencies),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--org", required=True)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--max-batches", type=int, default=100_000)
    parser.add_argument("--tag", default=f"c{time.time_ns()}")
    args = parser.parse_args(argv)
    make = batch_maker(args.tag, args.batch_size)
    with Tally(Settings(db_path=Path(args.db))) as tally:
        tally.ingestor.ingest_body(args.org, make(-1), "application/json")  # warm-up
        result = drive(
            tally,
            args.org,
            make,
            threads=args.threads,
            seconds=args.seconds,
            max_batches=args.max_batches,
        )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
