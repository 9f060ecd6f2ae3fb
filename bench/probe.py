"""Shared pieces of the reliability probes (``soak.py``, ``crash.py``, ``startup.py``).

A :class:`Serve` is one ``tally serve`` subprocess on a free loopback port over one DuckDB file,
its output in a log file (never a pipe that could fill up), started with :meth:`Serve.start`
(which times the start until ``/healthz`` answers 200) and ended by its PID: :meth:`Serve.stop`
(SIGTERM, the clean stop) or :meth:`Serve.kill` (SIGKILL, a crash). :func:`seed` writes a small
directory through the HTTP API; :func:`event` / :func:`batch` build valid events of it with
given ids; :func:`stored_ids` pages through ``GET /api/v1/orgs/{org}/events`` and returns every
stored id with its count.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from common import free_port

ADMIN_TOKEN = "probe-admin-token-not-secret"
ORG = "soak"
DOMAIN = "soak.example"
TIMEZONE = "Asia/Shanghai"
WINDOW_DAYS = 30
IDES = ("vscode", "intellij", "pycharm")
LANGUAGES = ("python", "java", "go", "typescript")


def rss_bytes(pid: int, key: str = "VmRSS") -> int | None:
    """``VmRSS`` (or ``VmHWM``, the peak) of a running process, in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def wal_bytes(db: Path) -> int:
    wal = db.with_name(db.name + ".wal")
    return wal.stat().st_size if wal.exists() else 0


@dataclass
class Serve:
    """``tally serve --db DB`` on a free loopback port (see the module docstring)."""

    db: Path
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    #: Pin the server's clock at this instant (``TALLY_NOW``); ``None``: the machine's clock.
    #: (A pinned clock also stops the app usage rate limiter's: a key then gets one call.)
    pin_now: datetime | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    #: Seconds from spawning the process to the first 200 of ``/healthz``.
    start_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 300.0) -> float:
        """Spawn the server (a new free port each time) and wait for ``/healthz``; returns the
        start time in seconds. Raises when it exits or does not answer within ``timeout``."""
        self.port = free_port()
        environment = {**os.environ, "TALLY_ADMIN_TOKEN": ADMIN_TOKEN}
        environment.pop("TALLY_NOW", None)
        if self.pin_now is not None:
            environment["TALLY_NOW"] = self.pin_now.isoformat()
        environment.update(self.env)
        command = [sys.executable, "-m", "tally", "serve", "--db", str(self.db)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as out:
            began = time.perf_counter()
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=environment
            )
        deadline = began + timeout
        with httpx.Client(timeout=1.0) as http:
            while time.perf_counter() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"tally serve exited early; see {self.log}")
                try:
                    if http.get(self.url + "/healthz").status_code == 200:
                        self.start_seconds = time.perf_counter() - began
                        return self.start_seconds
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"tally serve did not answer /healthz within {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL by PID (a crash), and reap it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 120.0) -> float:
        """SIGTERM by PID (the clean stop: the server checkpoints its log); SIGKILL after
        ``timeout`` seconds. Returns the seconds the stop took."""
        began = time.perf_counter()
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return time.perf_counter() - began


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass(frozen=True)
class Directory:
    """What :func:`seed` created: ids the events and queries name, and the instant the
    event window ends at (events lie in the ``WINDOW_DAYS`` days before it)."""

    now: datetime
    departments: tuple[str, ...]
    members: tuple[str, ...]
    workspaces: tuple[str, ...]
    apps: tuple[str, ...]


def seed(
    url: str, now: datetime | None = None, members: int = 60, workspaces: int = 6, apps: int = 24
) -> Directory:
    """An org (``soak``), a department tree (root, 4 children, 2 grandchildren each),
    ``members`` developers spread over the leaves, ``workspaces`` workspaces holding them, and
    ``apps`` apps, all created before the event window (which ends at ``now``, by default the
    machine's time), through Tally's own API."""
    now = now or datetime.now(UTC).replace(microsecond=0)
    created = (now - timedelta(days=WINDOW_DAYS + 30)).isoformat()
    api = f"{url}/api/v1/orgs/{ORG}"
    departments = ["root"]
    with httpx.Client(headers=admin_headers(), timeout=60.0) as http:

        def put(path: str, body: dict[str, Any]) -> None:
            answer = http.put(api + path, json=body)
            if answer.status_code != 200:
                raise RuntimeError(f"PUT {path}: {answer.status_code} {answer.text[:300]}")

        put("", {"name": "Soak Org", "domain": DOMAIN, "timezone": TIMEZONE})
        put("/departments/root", {"name": "Root", "parent": None})
        leaves = []
        for i in range(4):
            put(f"/departments/d{i}", {"name": f"Dept {i}", "parent": "root"})
            departments.append(f"d{i}")
            for j in range(2):
                put(f"/departments/d{i}-{j}", {"name": f"Dept {i}.{j}", "parent": f"d{i}"})
                departments.append(f"d{i}-{j}")
                leaves.append(f"d{i}-{j}")
        member_ids = [f"m{i:03d}" for i in range(members)]
        for i, member in enumerate(member_ids):
            put(
                f"/members/{member}",
                {
                    "name": f"Member {i}",
                    "email": f"{member}@{DOMAIN}",
                    "developer": i % 5 != 4,
                    "departments": [leaves[i % len(leaves)]],
                    "created_at": created,
                },
            )
        workspace_ids = [f"ws{i}" for i in range(workspaces)]
        for i, workspace in enumerate(workspace_ids):
            holders = member_ids[i::workspaces]
            put(
                f"/workspaces/{workspace}",
                {
                    "name": f"Workspace {i}",
                    "created_at": created,
                    "members": [{"member": m, "since": created} for m in holders],
                },
            )
        app_ids = [f"app{i:02d}" for i in range(apps)]
        for i, app in enumerate(app_ids):
            creator = member_ids[i % len(member_ids)]
            put(f"/apps/{app}", {"name": f"App {i}", "creator": creator, "created_at": created})
    return Directory(
        now, tuple(departments), tuple(member_ids), tuple(workspace_ids), tuple(app_ids)
    )


def create_token(url: str, scopes: tuple[str, ...]) -> str:
    answer = httpx.post(
        f"{url}/api/v1/orgs/{ORG}/tokens",
        json={"scopes": list(scopes)},
        headers=admin_headers(),
        timeout=60.0,
    )
    answer.raise_for_status()
    return str(answer.json()["token"])


def event(directory: Directory, event_id: str, n: int) -> dict[str, Any]:
    """A valid event with id ``event_id``; ``n`` (any int) picks its member, type, time."""
    member = directory.members[n % len(directory.members)]
    seconds = (n * 7919) % (WINDOW_DAYS * 86_400)
    when = (directory.now - timedelta(days=WINDOW_DAYS) + timedelta(seconds=seconds)).isoformat()
    base: dict[str, Any] = {"id": event_id, "time": when, "member": member}
    kind = n % 10
    if kind < 5:
        accepted = n % 3 == 0
        return base | {
            "type": "completion",
            "ide": IDES[n % len(IDES)],
            "language": LANGUAGES[n % len(LANGUAGES)],
            "lines_suggested": 1 + n % 9,
            "accepted": accepted,
            "lines_accepted": 1 if accepted else 0,
        }
    if kind == 5:
        chat = {"type": "chat", "ide": IDES[n % 3], "chat_type": "FREE_INPUT", "accepted": True}
        return base | chat
    if kind == 6:
        return base | {
            "type": "code",
            "language": LANGUAGES[n % len(LANGUAGES)],
            "source": "chat" if n % 2 else "completion",
            "lines_accepted": 3,
            "lines_changed": 5,
        }
    if kind == 7:
        return base | {"type": "activity"}
    if kind == 8:
        return base | {
            "type": "workspace_activity",
            "workspace": directory.workspaces[n % len(directory.workspaces)],
        }
    app = directory.apps[n % len(directory.apps)]
    return base | {"type": "app_visit", "app": app}


def batch(directory: Directory, prefix: str, count: int, salt: int = 0) -> list[dict[str, Any]]:
    """``count`` events with the ids ``{prefix}-0`` .. ``{prefix}-{count-1}``."""
    return [event(directory, f"{prefix}-{i}", salt * 100_003 + i) for i in range(count)]


def stored_ids(url: str, page: int = 1000) -> Counter[str]:
    """Every stored event id of the org, with how many times the listing returned it."""
    found: Counter[str] = Counter()
    cursor = ""
    with httpx.Client(headers=admin_headers(), timeout=120.0) as http:
        while True:
            params = {"limit": str(page)}
            if cursor:
                params["cursor"] = cursor
            answer = http.get(f"{url}/api/v1/orgs/{ORG}/events", params=params)
            answer.raise_for_status()
            body = answer.json()
            found.update(e["id"] for e in body["events"])
            cursor = body.get("next_cursor") or ""
            if not cursor:
                return found


def check_stored(acknowledged: set[str], found: Counter[str]) -> dict[str, int]:
    """Lost: acknowledged ids not stored; doubled: ids stored (listed) more than once."""
    return {
        "acknowledged": len(acknowledged),
        "stored": sum(found.values()),
        "stored_distinct": len(found),
        "lost": len(acknowledged - found.keys()),
        "doubled": sum(1 for count in found.values() if count > 1),
    }
