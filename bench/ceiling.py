"""The in-process ingest ceiling: decode + validate + append without HTTP.

Run as its own process on a Tally file no server holds: the same 1,000-event JSON batches as
``load.py`` (fresh ids), through ``Tally(...).ingestor.ingest_body(org, body,
"application/json")`` in a loop, one thread, for a bounded time and count. Prints one JSON
object with events/s and the per-batch latency.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import summarize_ms
from load import batch_maker
from tally.service import Tally
from tally.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--org", required=True)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--max-batches", type=int, default=100_000)
    parser.add_argument("--tag", default=f"c{int(time.time())}")
    args = parser.parse_args(argv)
    make = batch_maker(args.tag, args.batch_size)
    with Tally(Settings(db_path=Path(args.db))) as tally:
        tally.ingestor.ingest_body(args.org, make(-1), "application/json")  # warm-up
        latencies: list[float] = []
        accepted = 0
        started = time.perf_counter()
        while len(latencies) < args.max_batches:
            body = make(len(latencies))
            sent = time.perf_counter()
            result = tally.ingestor.ingest_body(args.org, body, "application/json")
            latencies.append(time.perf_counter() - sent)
            accepted += result.accepted
            if time.perf_counter() - started > args.seconds:
                break
        elapsed = time.perf_counter() - started
    json.dump(
        {
            "seconds": round(elapsed, 3),
            "batches": len(latencies),
            "events_accepted": accepted,
            "events_per_s": round(accepted / elapsed, 1),
            "latency": summarize_ms(latencies),
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
