"""The ClickHouse event store alone, on a real ClickHouse 18.16 cluster of two shards: import
speed (``append_table`` in batches, as ``tally import`` does) and the department usage read of a
~10% subtree over 31 days (p50 / p99), at each size asked for.

    .venv/bin/python bench/clickhouse_store.py 1000000 10000000 [--reads 200] [--single]

Events come from ``bench/generate.py`` (cached under ``bench/work``); the cluster starts on free
ports (``tests.services.ClickHouseCluster``) and is stopped, by PID, at the end.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT), str(ROOT / "src")]

from tests.services import ClickHouseCluster  # noqa: E402

from generate import cached_events  # noqa: E402
from plan import make_plan, midnight_us  # noqa: E402
from tally.model.events import STORED_SCHEMA  # noqa: E402
from tally.stores.base import MemberSpan  # noqa: E402
from tally.stores.clickhouse import ClickHouseEventStore  # noqa: E402

ORG = "bench"
SHANGHAI_US = 8 * 3600 * 1_000_000  # the bench org's offset (no DST)
DAY_US = 86_400 * 1_000_000
BATCH = 1_000_000


def stored(table: pa.Table) -> pa.Table:
    """A generated file's events in the stored layout (org day in UTC+8)."""
    ts = pc.cast(table["time"], pa.int64())
    days = pc.cast(pc.divide(pc.add(ts, SHANGHAI_US), DAY_US), pa.int32())
    columns = {name: table[name] for name in table.column_names if name != "time"}
    columns |= {"org": pa.array([ORG] * table.num_rows), "ts": ts, "day": days.cast(pa.date32())}
    return pa.table({f.name: columns[f.name].cast(f.type) for f in STORED_SCHEMA})


def run(size: int, cluster: ClickHouseCluster, args: argparse.Namespace) -> None:
    plan = make_plan(7, date.today() - timedelta(days=1))
    generated = cached_events(plan, size, ROOT / "bench" / "work")
    database = cluster.create_database()
    store = ClickHouseEventStore(cluster.url(database, cluster=not args.single))
    try:
        appended, spent = 0, 0.0
        for path in generated.files:
            for batch in pq.ParquetFile(path).iter_batches(BATCH):
                table = stored(pa.Table.from_batches([batch]))
                started = time.perf_counter()
                store.append_table(ORG, table)
                spent += time.perf_counter() - started
                appended += table.num_rows
        print(f"{size:>11,} events: import {appended / spent:,.0f} events/s ({spent:.1f} s)")
        last = plan.end_day
        first = last - timedelta(days=30)
        window = (midnight_us(first), midnight_us(last + timedelta(days=1)))
        rng = random.Random(1)
        members = plan.member_ids
        timings = []
        for i in range(args.reads):
            subtree = rng.sample(members, len(members) // 10)
            spans = [MemberSpan(m, *window) for m in subtree]
            if i % 10 == 0:  # now and then a member who moved inside the window
                spans[0] = MemberSpan(
                    spans[0].member, window[0] + 5 * DAY_US + 3_600_000_000, window[1]
                )
            started = time.perf_counter()
            store.assistant_usage(ORG, spans, first, last, department="d")
            timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
        print(
            f"{size:>11,} events: department usage (10% subtree, 31 days)"
            f" p50 {statistics.median(timings):.1f} ms, p99 {p99:.1f} ms"
        )
        for label, call in (
            ("users, 365 days", lambda: store.active_members(ORG, plan.start_day, last)),
            (
                "workspaces, 365 days",
                lambda: store.active_members(
                    ORG,
                    plan.start_day,
                    last,
                    event_types=["workspace_activity"],
                    per_workspace=True,
                    daily=False,
                ),
            ),
            (
                "app usage, 20 apps",
                lambda: store.app_totals(
                    ORG, plan.app_ids[:20], day=last, end_us=midnight_us(last + timedelta(1))
                ),
            ),
        ):
            times = []
            for _ in range(max(5, args.reads // 10)):
                started = time.perf_counter()
                call()
                times.append((time.perf_counter() - started) * 1000)
            print(f"{size:>11,} events: {label}: p50 {statistics.median(times):.1f} ms")
    finally:
        store.close()
        cluster.drop_database(database)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sizes", nargs="+", type=int)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--single", action="store_true", help="one server, not the cluster")
    args = parser.parse_args()
    cluster = ClickHouseCluster()
    try:
        for size in args.sizes:
            run(size, cluster, args)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
