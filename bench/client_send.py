"""How fast ``TallyClient.send_events`` pushes events into a local ``tally serve`` (one DuckDB
file), per batch size: new events, then the same events again (every one a duplicate).

    PYTHONPATH=src .venv/bin/python bench/client_send.py [--events 200000]

Prints one line per (batch size, pass): events, seconds, events per second. Not part of the
tests (speed figures live here).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from server import ADMIN_TOKEN, serving
from tally.client import TallyClient

START = datetime(2026, 3, 1, tzinfo=UTC)


def events(org: str, count: int) -> Iterator[dict[str, Any]]:
    """``count`` completion events of 50 members over ten days, ids fixed by position."""
    for i in range(count):
        yield {
            "id": f"{org}-{i}",
            "time": (START + timedelta(seconds=i * 864_000 // count)).isoformat(),
            "type": "completion",
            "member": f"m{i % 50}",
            "ide": "vscode",
            "language": ("python", "go", "java")[i % 3],
            "lines_suggested": 5,
            "accepted": i % 2 == 0,
            "lines_accepted": 3 if i % 2 == 0 else 0,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batches", type=int, nargs="*", default=[1_000, 5_000, 20_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "tally.duckdb"
        with (
            serving(store, Path(tmp) / "server.log") as server,
            TallyClient(server.url, ADMIN_TOKEN) as tally,
        ):
            for batch in args.batches:
                org = f"b{batch}"
                tally.put_org(org, name=org, domain=f"{org}.example")
                for m in range(50):
                    tally.put_member(
                        org,
                        f"m{m}",
                        name=f"M{m}",
                        email=f"m{m}@{org}.example",
                        developer=True,
                        departments=[],
                        created_at="2026-01-01T00:00:00Z",
                    )
                for label in ("new", "again"):
                    began = time.perf_counter()
                    summary = tally.send_events(org, events(org, args.events), batch_events=batch)
                    took = time.perf_counter() - began
                    print(
                        f"batch {batch:>6} {label:>5}: {summary.sent} events"
                        f" ({summary.accepted} new, {summary.duplicates} duplicates,"
                        f" {summary.batches} batches) in {took:.2f} s:"
                        f" {summary.sent / took:,.0f} events/s"
                    )


if __name__ == "__main__":
    main()
