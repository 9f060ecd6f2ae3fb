"""Answer the benchmark's questions with DuckDB straight from Tally's raw ``events`` table.

Run as its own process on a Tally DuckDB file that no server holds (``run.py`` stops the server
first): ``python bench/rawduck.py time --db FILE ...`` prints one JSON object of latencies;
``python bench/rawduck.py export --db FILE --out DIR`` writes the events and the helper tables
as CSV for PostgreSQL. The helper tables are TEMP tables: the file is not changed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from common import measure
from plan import ORG_ID, midnight_us
from queries import DUCKDB_HELPERS, HELPER_TABLES, QUESTIONS, Question, shape, statements


def connect(db: Path, end_day: date, threads: int | None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(db), read_only=True)
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    for sql in DUCKDB_HELPERS:
        con.execute(sql, {"org": ORG_ID} if "$org" in sql else None)
    first = end_day - timedelta(days=400)
    days = [(first + timedelta(days=i)) for i in range(402)]
    con.executemany(
        "INSERT INTO bench_days VALUES (?, ?)",
        [[d, midnight_us(d + timedelta(days=1))] for d in days],
    )
    return con


def time_questions(args: argparse.Namespace) -> dict[str, Any]:
    end_day = date.fromisoformat(args.end_day)
    con = connect(Path(args.db), end_day, args.threads)
    results: dict[str, Any] = {}
    for question in QUESTIONS:
        if args.questions and question.key not in args.questions.split(","):
            continue
        work = statements(
            question, "duckdb", end_day, args.subtree, args.root, args.app_end_us, args.member
        )
        rows: list[list[int]] = []

        def ask(
            work: list[tuple[str, list[Any]]] = work,
            rows: list[list[int]] = rows,
            question: Question = question,
        ) -> None:
            rows[:] = [shape(con.execute(sql, p).fetchall(), question) for sql, p in work]

        stats = measure(ask, warmup=args.warmup, count=args.count, seconds=args.seconds)
        stats["rows"] = list(rows)
        results[question.key] = stats
    con.close()
    return results


def export(args: argparse.Namespace) -> dict[str, Any]:
    """Events and helper tables as CSV files in ``--out`` (for PostgreSQL's COPY)."""
    end_day = date.fromisoformat(args.end_day)
    con = connect(Path(args.db), end_day, args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    counts: dict[str, int] = {}
    for table in ("events", *HELPER_TABLES):
        target = out / f"{table}.csv"
        where = f"WHERE org = '{ORG_ID}'" if table == "events" else ""
        query = f"SELECT * FROM {table} {where}"
        con.execute(f"COPY ({query}) TO '{target}' (FORMAT csv, HEADER false)")
        counted = con.execute(f"SELECT count(*) FROM ({query})").fetchone()
        counts[table] = int(counted[0]) if counted else 0
    con.close()
    return {"seconds": time.perf_counter() - started, "rows": counts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("time", "export"))
    parser.add_argument("--db", required=True)
    parser.add_argument("--end-day", required=True)
    parser.add_argument("--subtree", default="")
    parser.add_argument("--root", default="")
    parser.add_argument("--member", default="", help="the member of the one-member questions")
    parser.add_argument("--app-end-us", type=int, default=0)
    parser.add_argument("--questions", default="")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    result = time_questions(args) if args.command == "time" else export(args)
    json.dump(result, sys.stdout, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
