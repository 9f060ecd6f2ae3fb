"""The scale-out configuration in the bench (issue 15): the directory and tokens in PostgreSQL,
the events in a 2-shard ClickHouse cluster, ``tally serve --workers N`` over them.

Per size, after the DuckDB figures (``run.py --store scale-out``), on the same generated events
and the same directory:

1. fresh servers: one PostgreSQL 15 cluster and two ClickHouse 18.16 servers forming the
   cluster ``tally`` (two shards), started by ``tests/services.py`` on free loopback ports in
   temp dirs, and stopped by their PIDs at the end of the size (also on an error or Ctrl-C);
2. ``tally migrate`` copies the directory (the cached directory template: no events) into them;
3. ``tally import`` loads the Parquet files into ClickHouse (timed like the DuckDB import);
4. ``tally serve --workers 1``: every question through its API, then HTTP ingest (``load.py``);
5. ``tally serve --workers 2``: HTTP ingest again.

Meanwhile :class:`RssWatch` reads ``VmHWM`` (peak RSS) of every process of the configuration
once a second: the tally processes (supervisor and workers), both ClickHouse servers,
PostgreSQL's postmaster and its backends. The import's peak comes from ``wait4``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from apis import time_apis
from common import BENCH_DIR, REPO_DIR, cpu_seconds, vm_hwm_bytes
from plan import ORG_ID, OrgPlan
from server import TALLY, Server, create_token, run_import, serving, tally_env

if str(REPO_DIR) not in sys.path:  # tests/services.py starts and stops the servers
    sys.path.insert(0, str(REPO_DIR))

#: Worker counts whose HTTP ingest is measured; the APIs are timed on the first.
WORKER_COUNTS = (1, 2)
SAMPLE_SECONDS = 1.0
#: An untimed HTTP ingest run before each timed one, at most this long (see :func:`_run`).
WARMUP_INGEST_SECONDS = 10.0


# -- processes and their peak RSS ----------------------------------------------------------


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process now running."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def descendants(pid: int, parents: dict[int, int] | None = None) -> list[int]:
    """Every process below ``pid`` (children, their children, ...)."""
    parents = _parents() if parents is None else parents
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _role(label: str, pid: int, root: int) -> str:
    """What one process of a watched tree is: the root, a tally worker, a backend..."""
    if pid == root:
        return label
    if label.startswith("tally serve"):
        command = _cmdline(pid)
        if "resource_tracker" in command:
            return f"{label} resource tracker"
        return f"{label} worker"
    return f"{label} child"


class RssWatch:
    """Peak RSS (``VmHWM``) of every process under the watched roots, sampled once a second
    in a thread (and by :meth:`sample` on demand, e.g. just before a server stops); a process
    that exits keeps the last peak read."""

    def __init__(self, interval: float = SAMPLE_SECONDS) -> None:
        self.interval = interval
        self.roots: dict[str, int] = {}
        self.peaks: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-watch", daemon=True)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def watch(self, label: str, pid: int) -> None:
        with self._lock:
            self.roots[label] = pid
        self.sample()

    def forget(self, label: str) -> None:
        """Stop watching ``label`` (its processes are gone; their peaks stay)."""
        with self._lock:
            self.roots.pop(label, None)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        parents = _parents()
        with self._lock:
            roots = dict(self.roots)
        for label, root in roots.items():
            for pid in (root, *descendants(root, parents)):
                peak = vm_hwm_bytes(pid)
                if peak is None:
                    continue
                with self._lock:
                    seen = self.peaks.get(pid)
                    if seen is None:
                        seen = self.peaks[pid] = {
                            "role": _role(label, pid, root),
                            "command": _cmdline(pid)[:160],
                            "peak_rss_bytes": 0,
                        }
                    seen["peak_rss_bytes"] = max(seen["peak_rss_bytes"], peak)

    def pids(self, label: str) -> list[int]:
        """The root of ``label`` and its processes running now."""
        root = self.roots.get(label)
        return [] if root is None else [root, *descendants(root)]

    def summary(self) -> dict[str, Any]:
        """Per role: the largest peak, the peaks of each process (bytes), how many."""
        roles: dict[str, dict[str, Any]] = {}
        with self._lock:
            peaks = sorted(self.peaks.items())
        for pid, seen in peaks:
            role = roles.setdefault(
                seen["role"], {"max_bytes": 0, "processes": 0, "peaks_bytes": {}}
            )
            role["max_bytes"] = max(role["max_bytes"], seen["peak_rss_bytes"])
            role["processes"] += 1
            role["peaks_bytes"][str(pid)] = seen["peak_rss_bytes"]
        return roles


# -- the servers -----------------------------------------------------------------------------


@contextmanager
def stores(watch: RssWatch) -> Iterator[dict[str, Any]]:
    """Fresh PostgreSQL and 2-shard ClickHouse servers with an empty database on each, for the
    length of the ``with`` block; they are stopped by PID on leaving (tests/services.py)."""
    from tests.services import ClickHouseCluster, PostgresServer

    with ExitStack() as stack:
        pg = PostgresServer()
        stack.callback(pg.stop)
        cluster = ClickHouseCluster(shards=2)
        stack.callback(cluster.stop)
        directory = pg.dsn(pg.create_database())
        events = cluster.url(cluster.create_database())
        assert pg.pid is not None
        watch.watch("postgresql", pg.pid)
        for i, server in enumerate(cluster.servers):
            assert server.pid is not None
            watch.watch(f"clickhouse s{i}", server.pid)
        yield {
            "directory": directory,
            "events": events,
            "flags": ["--directory", directory, "--events", events],
            "clickhouse_pids": [s.pid for s in cluster.servers],
            "postgres_pid": pg.pid,
            "clickhouse_dirs": [str(s.dir) for s in cluster.servers],
            "postgres_dir": str(pg.base),
            "cluster": cluster,
        }
        watch.sample()  # the last peaks before the servers stop


def _store_versions(store: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    try:
        rows: Any = store["cluster"].execute(0, "SELECT version()")
        found["clickhouse"] = rows[0][0]
    except Exception as exc:  # the version is a detail; the bench goes on
        found["clickhouse"] = repr(exc)[:200]
    try:
        done = subprocess.run(
            ["/usr/lib/postgresql/15/bin/postgres", "--version"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        found["postgresql"] = done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found["postgresql"] = None
    return found


def clickhouse_state(cluster: Any) -> list[dict[str, Any]]:
    """Per server: its insert throttling counters so far (``DelayedInserts``: inserts ClickHouse
    slowed down because a partition had too many parts; ``RejectedInserts``) and its largest
    partitions by active parts (what the background merges have not caught up with)."""
    found: list[dict[str, Any]] = []
    for shard in range(len(cluster.servers)):
        state: dict[str, Any] = {}
        try:
            rows: Any = cluster.execute(
                shard,
                "SELECT event, value FROM system.events WHERE event IN ('DelayedInserts',"
                " 'DelayedInsertsMilliseconds', 'RejectedInserts', 'InsertQuery', 'Query')",
            )
            state["events"] = {name: int(value) for name, value in rows}
            rows = cluster.execute(
                shard,
                "SELECT table, partition, count() AS parts FROM system.parts WHERE active"
                " AND database NOT IN ('system') GROUP BY table, partition"
                " ORDER BY parts DESC LIMIT 3",
            )
            state["most_parts"] = [list(row) for row in rows]
        except Exception as exc:  # a detail of the figures; never the bench's failure
            state["error"] = repr(exc)[:300]
        found.append(state)
    return found


def _disk_bytes(paths: list[str]) -> int:
    total = 0
    for path in paths:
        for file in Path(path).rglob("*"):
            try:
                if file.is_file() and not file.is_symlink():
                    total += file.stat().st_size
            except OSError:
                continue
    return total


def _cpu(pids: dict[str, list[int]]) -> dict[str, float | None]:
    """CPU seconds used so far, summed per label."""
    found: dict[str, float | None] = {}
    for label, group in pids.items():
        values = [cpu_seconds(pid) for pid in group]
        found[label] = round(sum(v for v in values if v is not None), 3)
    return found


def _store_pids(watch: RssWatch) -> dict[str, list[int]]:
    return {
        "clickhouse": [*watch.pids("clickhouse s0"), *watch.pids("clickhouse s1")],
        "postgresql": watch.pids("postgresql"),
    }


def _worker_pids(server: Server, workers: int, timeout: float = 60.0) -> list[int]:
    """The server's processes (the supervisor, and its workers when more than one), once all
    ``workers`` workers are up; a worker answers ``/healthz`` only after loading its stores."""
    if workers == 1:
        return [server.pid]
    deadline = time.monotonic() + timeout
    while True:
        found = [pid for pid in descendants(server.pid) if "resource_tracker" not in _cmdline(pid)]
        if len(found) >= workers or time.monotonic() > deadline:
            return [server.pid, *found]
        time.sleep(0.2)


def _stop_left(pids: list[int], timeout: float = 20.0) -> list[int]:
    """SIGTERM, then SIGKILL, each of ``pids`` still running (a worker its supervisor did not
    take down); returns those that had to be stopped here."""
    left = [pid for pid in pids if _alive(pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while any(_alive(pid) for pid in left) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not any(_alive(pid) for pid in left):
            break
    return left


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _warm(url: str, rounds: int = 20) -> None:
    """``/healthz`` on fresh connections, so that every worker has taken a request."""
    import httpx

    for _ in range(rounds):
        try:
            httpx.get(f"{url}/healthz", timeout=10.0)
        except httpx.HTTPError:
            time.sleep(0.2)


def _ingest_command(
    args: argparse.Namespace, url: str, token: str, tally_pids: list[int], watch: RssWatch
) -> list[str]:
    """``load.py`` against ``url`` (without ``--seconds`` and ``--tag``), reporting the CPU
    share of the tally processes, the ClickHouse servers and PostgreSQL's processes."""
    watched = [f"{k}={pid}" for k, group in _store_pids(watch).items() for pid in group]
    return [
        sys.executable,
        str(BENCH_DIR / "load.py"),
        "--url",
        url,
        "--org",
        ORG_ID,
        "--token",
        token,
        "--clients",
        str(args.clients),
        *(f"--server-pid={pid}" for pid in tally_pids),
        *(f"--watch-pid={w}" for w in watched),
    ]


# -- one size ------------------------------------------------------------------------------


def run_size(
    name: str,
    total: int,
    args: argparse.Namespace,
    plan: OrgPlan,
    template: Path,
    files: list[Path],
    out: dict[str, Any],
    json_subprocess: Callable[[list[str], float], dict[str, Any]],
    log: Callable[[str], None],
) -> None:
    """The scale-out figures of one size into ``out`` (kept as they come if a step fails)."""
    work: Path = args.work_dir
    with RssWatch() as watch:
        try:
            _run(name, total, args, plan, template, files, out, json_subprocess, log, watch, work)
        finally:
            watch.sample()
            out["peak_rss"] = watch.summary()


def _run(
    name: str,
    total: int,
    args: argparse.Namespace,
    plan: OrgPlan,
    template: Path,
    files: list[Path],
    out: dict[str, Any],
    json_subprocess: Callable[[list[str], float], dict[str, Any]],
    log: Callable[[str], None],
    watch: RssWatch,
    work: Path,
) -> None:
    log(f"{name} scale-out: starting PostgreSQL 15 and 2 ClickHouse servers")
    with stores(watch) as store:
        out["versions"] = _store_versions(store)
        flags: list[str] = store["flags"]
        out["urls"] = {"directory": store["directory"], "events": store["events"]}

        log(f"{name} scale-out: tally migrate (the directory, no events)")
        source = work / f"scaleout-directory-{name}.duckdb"
        shutil.copyfile(template, source)
        started = time.perf_counter()
        done = subprocess.run(
            [TALLY, "migrate", "--from", str(source), *flags],
            capture_output=True,
            text=True,
            timeout=1800,
            env=tally_env(),
        )
        out["migrate"] = {
            "seconds": round(time.perf_counter() - started, 2),
            "returncode": done.returncode,
            "output": (done.stdout + done.stderr[-1000:]).strip()[-500:],
        }
        source.unlink(missing_ok=True)
        Path(f"{source}.wal").unlink(missing_ok=True)
        if done.returncode != 0:
            raise RuntimeError(f"tally migrate failed: {done.stderr[-800:]}")
        read_token = create_token(flags, ORG_ID, ("read",))
        ingest_token = create_token(flags, ORG_ID, ("ingest",))

        log(f"{name} scale-out: tally import of {total:,} events into ClickHouse")
        before = _cpu(_store_pids(watch))
        imported = run_import(flags, ORG_ID, files, timeout=max(600.0, total / 5_000))
        after = _cpu(_store_pids(watch))
        seconds = imported.seconds
        out["import"] = {
            "seconds": round(seconds, 2),
            "events_per_s": round(total / seconds, 1) if imported.returncode == 0 else None,
            "returncode": imported.returncode,
            "output": imported.output[-500:],
            "peak_rss_bytes": imported.peak_rss_bytes,
            "cpu_share": {
                "tally import": (
                    None if imported.cpu_seconds is None
                    else round(imported.cpu_seconds / seconds, 3)
                ),
                **{
                    k: round(((after[k] or 0) - (before[k] or 0)) / seconds, 3)
                    for k in before
                },
            },
            "clickhouse_disk_bytes": _disk_bytes(store["clickhouse_dirs"]),
        }  # fmt: skip
        log(f"{name} scale-out: import {seconds:.1f} s (exit {imported.returncode})")
        if imported.returncode != 0:
            raise RuntimeError(f"tally import (scale-out) failed: {imported.output[-800:]}")
        watch.sample()
        out["peak_rss_after_import"] = watch.summary()
        out["clickhouse_after_import"] = clickhouse_state(store["cluster"])

        for workers in WORKER_COUNTS:
            key = f"workers_{workers}"
            result = out.setdefault(key, {"workers": workers})
            label = f"tally serve {workers}w"
            log(f"{name} scale-out: tally serve --workers {workers}")
            with serving(
                flags, work / f"serve-scaleout-{name}-{workers}w.log", workers=workers
            ) as server:
                tally_pids = _worker_pids(server, workers)
                watch.watch(label, server.pid)
                _warm(server.url)
                result["pids"] = tally_pids
                if workers == WORKER_COUNTS[0]:
                    log(f"{name} scale-out: API latency ({workers} worker)")
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
                # A worker loads the org's directory at the first request that needs it
                # (seconds, from PostgreSQL): an untimed run first, so that every worker has.
                ingest = _ingest_command(args, server.url, ingest_token, tally_pids, watch)
                warm = min(WARMUP_INGEST_SECONDS, args.ingest_seconds)
                log(f"{name} scale-out: HTTP ingest ({workers} worker(s)): {warm:g} s untimed")
                tag = f"so{workers}w{int(time.time())}"
                result["warmup_ingest"] = json_subprocess(
                    [*ingest, "--seconds", str(warm), "--tag", f"{tag}warm"], warm + 300
                )
                log(f"{name} scale-out: HTTP ingest ({workers} worker(s))")
                result["http_ingest"] = json_subprocess(
                    [*ingest, "--seconds", str(args.ingest_seconds), "--tag", tag],
                    args.ingest_seconds + 300,
                )
                watch.sample()
                result["clickhouse_after"] = clickhouse_state(store["cluster"])
            watch.forget(label)
            result["stopped_by_bench"] = _stop_left(tally_pids)
            result["server_cpu_seconds"] = server.cpu_seconds
            result["log"] = str(server.log)
        out["clickhouse_disk_bytes"] = _disk_bytes(store["clickhouse_dirs"])
