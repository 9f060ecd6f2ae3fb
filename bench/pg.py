"""PostgreSQL 15 for the comparison: a throw-away cluster in a temp dir, the same raw events, the
same questions.

The cluster listens on a unix socket inside its own temp dir only (no TCP port at all); as root
it runs as the ``postgres`` user (``runuser -u postgres --``), and the temp dir is owned by it.
:class:`Postgres` is a context manager: the server is stopped and the dir removed on leaving,
also on an error or Ctrl-C. Settings are those of a dedicated analytics box of this size
(shared_buffers 4 GB, work_mem 256 MB, parallel workers on), with durability off for the load
(fsync, full_page_writes), which changes no query plan.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from common import measure
from queries import (
    EVENT_COLUMNS,
    HELPER_TABLES,
    PG_INDEXES,
    QUESTIONS,
    Question,
    shape,
    statements,
)

PORT = 5432  # only names the socket file inside the private dir
SETTINGS = {
    "listen_addresses": "''",
    "shared_buffers": "'4GB'",
    "effective_cache_size": "'16GB'",
    "work_mem": "'256MB'",
    "maintenance_work_mem": "'2GB'",
    "max_wal_size": "'16GB'",
    "checkpoint_timeout": "'30min'",
    "random_page_cost": "1.1",
    "max_parallel_workers_per_gather": "2",
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "autovacuum": "off",
}


def bin_dir() -> Path:
    """Debian's PostgreSQL server binaries (the newest installed major version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run `bash scripts/bench-deps.sh`")
    return Path(found[-1]).parent


def _major(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


class Postgres:
    """A PostgreSQL cluster in a temp dir, started on entry and removed on exit."""

    def __init__(self, parent: Path | None = None) -> None:
        self.parent = parent
        self.bin = bin_dir()
        self.dir: Path | None = None
        self.started = False
        self.version = ""

    @property
    def data(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    def _as_postgres(self, *command: str, timeout: float = 120.0) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*prefix, *command], check=True, timeout=timeout, capture_output=True, text=True
        )

    def __enter__(self) -> Postgres:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self.parent is not None:
            self.parent.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="tally-bench-pg-", dir=self.parent))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        initdb = str(self.bin / "initdb")
        self._as_postgres(
            initdb,
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
        )
        lines = [f"{key} = {value}" for key, value in SETTINGS.items()]
        lines += [f"unix_socket_directories = '{self.dir}'", f"port = {PORT}"]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tally bench\n" + "\n".join(lines) + "\n")
        self._as_postgres(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-t",
            "120",
            "start",
        )
        self.started = True
        with self.connect() as conn:
            self.version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]

    def stop(self) -> None:
        if self.dir is None:
            return
        try:
            if self.started:
                self._as_postgres(
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "120",
                    "stop",
                )
        finally:
            self.started = False
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=str(self.dir), port=PORT, user="postgres", dbname="postgres", autocommit=True
        )

    def disk_bytes(self) -> int:
        with self.connect() as conn:
            row = conn.execute("SELECT pg_database_size('postgres')").fetchone()
        return int(row[0]) if row else 0


def _copy_file(conn: psycopg.Connection[Any], table: str, path: Path) -> None:
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY {table} FROM STDIN (FORMAT csv)") as copy,
        path.open("rb") as handle,
    ):
        while block := handle.read(4 << 20):
            copy.write(block)


def load(pg: Postgres, csv_dir: Path) -> dict[str, float]:
    """(Re)create the tables from the CSV files, index them, VACUUM ANALYZE; timings in s."""
    timings: dict[str, float] = {}
    with pg.connect() as conn:
        started = time.perf_counter()
        for table, columns in {"events": EVENT_COLUMNS, **HELPER_TABLES}.items():
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} ({columns})")
            _copy_file(conn, table, csv_dir / f"{table}.csv")
        timings["copy_s"] = time.perf_counter() - started
        started = time.perf_counter()
        for sql in PG_INDEXES:
            conn.execute(sql)
        timings["index_s"] = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("VACUUM (ANALYZE)")
        timings["vacuum_analyze_s"] = time.perf_counter() - started
    return timings


def time_questions(
    pg: Postgres,
    *,
    end_day: date,
    subtree: str,
    root: str,
    app_end_us: int,
    warmup: int,
    count: int,
    seconds: float,
    keys: set[str] | None = None,
    member: str = "",
) -> dict[str, Any]:
    """Latency of each question on PostgreSQL, timed like the others (sequential, one conn);
    ``member``: the member of the one-member questions."""
    results: dict[str, Any] = {}
    with pg.connect() as conn:
        for question in QUESTIONS:
            if keys and question.key not in keys:
                continue
            work = statements(question, "pg", end_day, subtree, root, app_end_us, member)
            rows: list[list[int]] = []

            def ask(
                work: list[tuple[str, list[Any]]] = work,
                rows: list[list[int]] = rows,
                question: Question = question,
            ) -> None:
                rows[:] = [shape(conn.execute(sql, p).fetchall(), question) for sql, p in work]

            stats = measure(ask, warmup=warmup, count=count, seconds=seconds)
            stats["rows"] = list(rows)
            results[question.key] = stats
    return results


@contextmanager
def csv_export_dir(parent: Path) -> Iterator[Path]:
    """A temp dir for the CSV hand-over, removed afterwards."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="pg-csv-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
