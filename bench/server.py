"""``tally serve`` and ``tally import`` / ``tally token create`` as real subprocesses.

The server listens on 127.0.0.1 on a free port; :func:`serving` stops it by its PID (SIGINT,
then SIGTERM, then SIGKILL) on leaving, also on an error or Ctrl-C, and reports its peak RSS
(VmHWM) read just before the stop. Each command takes the store as a DuckDB file's path or as
command-line flags (the scale-out stores: ``["--directory", URL, "--events", URL]``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from common import cpu_seconds, free_port, vm_hwm_bytes

TALLY = str(Path(sys.executable).with_name("tally"))
ADMIN_TOKEN = "bench-admin-token-not-secret"


def tally_env(store_memory_limit: str = "") -> dict[str, str]:
    """The environment of every ``tally`` subprocess: a known admin token, no app rate limit,
    and (when given) a cap on the store's buffer memory (``TALLY_STORE_MEMORY_LIMIT``)."""
    env = dict(os.environ)
    env["TALLY_ADMIN_TOKEN"] = ADMIN_TOKEN
    env["TALLY_APPS_RATE_LIMIT_PER_SECOND"] = "0"
    if store_memory_limit:
        env["TALLY_STORE_MEMORY_LIMIT"] = store_memory_limit
    return env


def store_flags(store: Path | list[str]) -> list[str]:
    """``--db PATH`` for a DuckDB file, else the given flags (``--directory ... --events ...``)."""
    return ["--db", str(store)] if isinstance(store, Path) else list(store)


def create_token(store: Path | list[str], org: str, scopes: tuple[str, ...]) -> str:
    command = [TALLY, "token", "create", *store_flags(store), "--org", org]
    for scope in scopes:
        command += ["--scope", scope]
    done = subprocess.run(
        command, check=True, capture_output=True, text=True, timeout=120, env=tally_env()
    )
    return done.stdout.strip().splitlines()[-1]


@dataclass
class ImportRun:
    seconds: float
    output: str
    returncode: int
    #: The command's own peak RSS and CPU time (from ``wait4``).
    peak_rss_bytes: int | None = None
    cpu_seconds: float | None = None


def run_import(store: Path | list[str], org: str, files: list[Path], timeout: float) -> ImportRun:
    """``tally import --db DB --org ORG files...``, timed from spawn to exit (killed by its PID
    after ``timeout`` seconds)."""
    command = [TALLY, "import", *store_flags(store), "--org", org, *map(str, files)]
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=tally_env()
        )
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # Ctrl-C: the import goes too
            process.kill()
            process.wait()
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        output.seek(0)
        text = output.read().decode(errors="replace")
    return ImportRun(
        seconds,
        text[-2500:].strip(),
        process.returncode,
        peak_rss_bytes=usage.ru_maxrss * 1024,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    peak_rss_bytes: int | None = None
    cpu_seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"tally serve exited early; see {server.log}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"tally serve did not answer /healthz within {timeout:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGINT, 15.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def serving(
    store: Path | list[str],
    log: Path,
    ready_timeout: float = 300.0,
    store_memory_limit: str = "",
    workers: int = 1,
) -> Iterator[Server]:
    """``tally serve`` on a free loopback port, for the length of the ``with`` block; its
    answers carry ``Server-Timing`` (the server's own time, which the bench reports). With
    ``workers`` above 1 (scale-out stores only) the process is uvicorn's supervisor."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [TALLY, "serve", *store_flags(store), "--host", "127.0.0.1", "--port", str(port)]
    if workers != 1:
        command += ["--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**tally_env(store_memory_limit), "TALLY_SERVER_TIMING": "1"},
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_ready(server, ready_timeout)
        yield server
    finally:
        server.peak_rss_bytes = vm_hwm_bytes(process.pid)
        server.cpu_seconds = cpu_seconds(process.pid)
        _stop(process)
