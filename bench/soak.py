"""Soak probe: N clients for T seconds against a real ``tally serve``, then every acknowledged
event checked stored exactly once (issue 19).

    PYTHONPATH=src .venv/bin/python bench/soak.py --clients 20 --seconds 60

Starts ``tally serve`` on a free loopback port over a new DuckDB file (``--db``, default a
temp file), on the machine's clock (``TALLY_NOW`` pinned would freeze the app usage rate
limiter's clock too: a key would get one call), the app usage rate limit ON at its default (1
request per second per key: every client has its own key and calls it at least 1.1 s after its
last answer, so a 429 should not happen; one would be counted as expected all the same), and
``TALLY_MAX_BODY_BYTES_IN_FLIGHT`` = ``--in-flight-mib`` (8 MiB by default, so that the bursts
of large bodies meet the budget). Seeds a small directory through the API, then runs
``--clients`` async clients (httpx, one keep-alive connection each) that mix:

* ``ingest``: a batch of ``--batch`` events with fresh ids; ``ingest_one``: one fresh event;
* ``resend``: a batch this client had acknowledged, sent again (every event a duplicate);
* ``department_usage``, ``environment`` (``/api/statistics/``), ``app_usage``;

and, beside them, bursts of ``--large-burst`` concurrent bodies of ``--large-mib`` MiB (fresh
events) every ``--large-every`` seconds: a 503 with ``Retry-After`` is an expected answer to
those (counted apart, waited out and sent again). An unacknowledged batch (a transport error, a
5xx) is sent again until acknowledged. The server's RSS (``VmRSS``) is sampled every 0.2 s.

Afterwards every stored id is read back (``GET /api/v1/orgs/soak/events``, pages of 1,000) and
compared with the acknowledged ids: ``lost`` (acknowledged, not stored), ``doubled`` (listed
more than once), ``unknown`` (stored but never sent). Prints one JSON object; exits 1 when an
event was lost or doubled, a 5xx other than the expected 503s or a transport error happened, an
answer was inconsistent (``anomalies``), or nothing was acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec

from common import summarize_ms
from probe import (
    DOMAIN,
    ORG,
    TIMEZONE,
    WINDOW_DAYS,
    Directory,
    Serve,
    batch,
    check_stored,
    create_token,
    rss_bytes,
    seed,
    stored_ids,
)

SMALL_BODY_BYTES = 256 * 1024  # the server's TALLY_SMALL_BODY_BYTES default: never refused
MIB = 1024 * 1024


@dataclass
class Tally:
    """Everything the clients saw."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    acknowledged: set[str] = field(default_factory=set)
    sent: set[str] = field(default_factory=set)
    expected_503: int = 0
    expected_429: int = 0
    unexpected_5xx: Counter[str] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    anomalies: Counter[str] = field(default_factory=Counter)
    events_acknowledged: int = 0
    rss: list[int] = field(default_factory=list)

    def answered(self, kind: str, status: int, seconds: float) -> None:
        self.statuses.setdefault(kind, Counter())[status] += 1
        if status == 200:
            self.latencies.setdefault(kind, []).append(seconds)


@dataclass
class Context:
    args: argparse.Namespace
    url: str
    directory: Directory
    ingest_token: str
    read_token: str
    app_keys: list[str]
    today: date
    stop_at: float
    seen: Tally


async def send_until_acknowledged(
    ctx: Context,
    http: httpx.AsyncClient,
    kind: str,
    events: list[dict[str, Any]] | bytes,
    *,
    fresh: bool,
) -> None:
    """POST ``events`` (or their encoded JSON array) until a 200 (at most ``--max-tries``);
    check the answer's counts."""
    seen = ctx.seen
    if isinstance(events, bytes):
        body, ids = events, [e["id"] for e in msgspec.json.decode(events)]
    else:
        body, ids = msgspec.json.encode(events), [e["id"] for e in events]
    seen.sent.update(ids)
    headers = {"Authorization": f"Bearer {ctx.ingest_token}", "Content-Type": "application/json"}
    url = f"{ctx.url}/api/v1/orgs/{ORG}/events"
    for attempt in range(ctx.args.max_tries):
        began = time.perf_counter()
        try:
            answer = await http.post(url, content=body, headers=headers)
        except httpx.TransportError as exc:
            seen.transport_errors[f"{kind}: {type(exc).__name__}"] += 1
            await asyncio.sleep(0.5)
            continue
        seen.answered(kind, answer.status_code, time.perf_counter() - began)
        if answer.status_code == 200:
            result = answer.json()
            if result["rejected"]:
                seen.anomalies[f"{kind}: rejected items"] += 1
            if result["accepted"] + result["duplicates"] != len(ids):
                seen.anomalies[f"{kind}: accepted + duplicates != sent"] += 1
            if fresh and attempt == 0 and result["duplicates"]:
                seen.anomalies[f"{kind}: fresh ids reported as duplicates"] += 1
            if not fresh and result["accepted"]:
                seen.anomalies[f"{kind}: a resent event was accepted again"] += 1
            seen.acknowledged.update(ids)
            if fresh:
                seen.events_acknowledged += len(ids)
            return
        retry_after = answer.headers.get("retry-after")
        if answer.status_code == 503 and retry_after and len(body) > SMALL_BODY_BYTES:
            seen.expected_503 += 1
            await asyncio.sleep(float(retry_after))
            continue
        if answer.status_code >= 500:
            seen.unexpected_5xx[f"{kind}: {answer.status_code}"] += 1
            await asyncio.sleep(0.5)
            continue
        seen.anomalies[f"{kind}: HTTP {answer.status_code}"] += 1
        return
    seen.anomalies[f"{kind}: not acknowledged after {ctx.args.max_tries} tries"] += 1


async def query(
    ctx: Context,
    http: httpx.AsyncClient,
    kind: str,
    method: str,
    url: str,
    headers: dict[str, str],
    **kwargs: Any,
) -> None:
    seen = ctx.seen
    began = time.perf_counter()
    try:
        answer = await http.request(method, url, headers=headers, **kwargs)
    except httpx.TransportError as exc:
        seen.transport_errors[f"{kind}: {type(exc).__name__}"] += 1
        return
    seen.answered(kind, answer.status_code, time.perf_counter() - began)
    if answer.status_code == 429 and kind == "app_usage" and answer.headers.get("retry-after"):
        seen.expected_429 += 1
    elif answer.status_code >= 500:
        seen.unexpected_5xx[f"{kind}: {answer.status_code}"] += 1
    elif answer.status_code != 200:
        seen.anomalies[f"{kind}: HTTP {answer.status_code}"] += 1


def _window(rng: random.Random, today: date) -> tuple[date, date]:
    first = today - timedelta(days=rng.randint(1, WINDOW_DAYS))
    last = first + timedelta(days=rng.randint(0, (today - first).days - 1))
    return first, last


async def client(ctx: Context, number: int) -> None:
    args = ctx.args
    rng = random.Random(args.seed * 1000 + number)
    mine: list[list[dict[str, Any]]] = []  # batches acknowledged, for resending
    made = 0
    last_app = -10.0
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(limits=limits, timeout=args.timeout) as http:
        while time.perf_counter() < ctx.stop_at:
            pick = rng.random()
            if pick < 0.40:
                events = batch(ctx.directory, f"c{number}-{made}", args.batch, salt=made)
                made += 1
                await send_until_acknowledged(ctx, http, "ingest", events, fresh=True)
                if len(mine) < 50:
                    mine.append(events)
            elif pick < 0.50:
                events = batch(ctx.directory, f"c{number}-{made}", 1, salt=made)
                made += 1
                await send_until_acknowledged(ctx, http, "ingest_one", events, fresh=True)
            elif pick < 0.57 and mine:
                await send_until_acknowledged(ctx, http, "resend", rng.choice(mine), fresh=False)
            elif pick < 0.90 or time.perf_counter() - last_app < 1.1:
                first, last = _window(rng, ctx.today)
                if pick < 0.75:
                    department = rng.choice(ctx.directory.departments)
                    await query(
                        ctx,
                        http,
                        "department_usage",
                        "GET",
                        f"{ctx.url}/oapi/v1/lingma/organizations/{ORG}/departmentUsage",
                        {"x-yunxiao-token": ctx.read_token},
                        params={
                            "departmentId": department,
                            "startTime": first.isoformat(),
                            "endTime": last.isoformat(),
                            "page": "1",
                            "perPage": "100",
                        },
                    )
                else:
                    await query(
                        ctx,
                        http,
                        "environment",
                        "GET",
                        f"{ctx.url}/api/statistics/",
                        {"Authorization": f"Bearer {ctx.read_token}"},
                        params={
                            "start": first.isoformat(),
                            "end": last.isoformat(),
                            "stats_type": rng.choice(("users", "developers", "workspaces")),
                            "org_domain": DOMAIN,
                        },
                    )
            else:
                day = ctx.today - timedelta(days=rng.randint(1, WINDOW_DAYS))
                await query(
                    ctx,
                    http,
                    "app_usage",
                    "POST",
                    f"{ctx.url}/api/v1/app/usage_stats",
                    {"Authorization": f"Bearer {ctx.app_keys[number]}"},
                    json={"date": day.isoformat(), "skip": rng.randint(0, 10), "limit": 20},
                )
                last_app = time.perf_counter()  # spaced from the answer: the server's clock


async def large_bodies(ctx: Context) -> None:
    """Bursts of large fresh bodies, each sent until acknowledged (503s waited out). The
    bodies are one encoded template whose id marker is replaced per body (no client work
    while the others run)."""
    args = ctx.args
    sample = batch(ctx.directory, "L@@-sample", 100)
    per_event = len(msgspec.json.encode(sample)) / len(sample)
    count = int(args.large_mib * MIB / per_event)
    template = msgspec.json.encode(batch(ctx.directory, "L@@", count, salt=7_000))
    burst = 0
    async with httpx.AsyncClient(timeout=args.timeout) as http:
        while time.perf_counter() < ctx.stop_at and args.large_burst > 0:
            bodies = [
                template.replace(b"L@@", f"L{burst}-{k}".encode()) for k in range(args.large_burst)
            ]
            await asyncio.gather(
                *(send_until_acknowledged(ctx, http, "large", body, fresh=True) for body in bodies)
            )
            burst += 1
            wait = min(args.large_every, ctx.stop_at - time.perf_counter())
            if wait > 0:
                await asyncio.sleep(wait)


async def sample_rss(ctx: Context, pid: int, done: asyncio.Event) -> None:
    while not done.is_set():
        value = rss_bytes(pid)
        if value is not None:
            ctx.seen.rss.append(value)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.2)


async def drive(ctx: Context, pid: int) -> float:
    """Run the clients; returns the wall time they took."""
    done = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(ctx, pid, done))
    began = time.perf_counter()
    ctx.stop_at = began + ctx.args.seconds
    await asyncio.gather(*(client(ctx, i) for i in range(ctx.args.clients)), large_bodies(ctx))
    elapsed = time.perf_counter() - began
    done.set()
    await sampler
    return elapsed


def _mib(value: int | float | None) -> float | None:
    return None if value is None else round(value / MIB, 1)


def report(
    args: argparse.Namespace, seen: Tally, elapsed: float, extra: dict[str, Any]
) -> dict[str, Any]:
    kinds = {}
    for kind in sorted(seen.statuses):
        statuses = seen.statuses[kind]
        kinds[kind] = {
            "requests": sum(statuses.values()),
            "per_s": round(sum(statuses.values()) / elapsed, 1),
            "statuses": {str(s): n for s, n in sorted(statuses.items())},
            **{k: v for k, v in summarize_ms(seen.latencies.get(kind, [])).items() if k != "n"},
        }
    statuses: Counter[int] = Counter()
    for counter in seen.statuses.values():
        statuses.update(counter)
    requests = sum(statuses.values())
    return {
        "clients": args.clients,
        "seconds": round(elapsed, 2),
        "settings": {
            "batch": args.batch,
            "large_mib": args.large_mib,
            "large_burst": args.large_burst,
            "large_every_s": args.large_every,
            "TALLY_MAX_BODY_BYTES_IN_FLIGHT": args.in_flight_mib * MIB,
            "TALLY_APPS_RATE_LIMIT_PER_SECOND": "default (1)",
            "clock": "machine (TALLY_NOW unset)",
        },
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 1),
        "events_acknowledged": seen.events_acknowledged,
        "events_per_s": round(seen.events_acknowledged / elapsed, 1),
        "kinds": kinds,
        "statuses": {str(s): n for s, n in sorted(statuses.items())},
        "expected_503": seen.expected_503,
        "expected_429": seen.expected_429,
        "unexpected_5xx": sum(seen.unexpected_5xx.values()),
        "unexpected_5xx_by_kind": dict(seen.unexpected_5xx),
        "transport_errors": dict(seen.transport_errors),
        "anomalies": dict(seen.anomalies),
        "rss": {
            "samples": len(seen.rss),
            "peak_mib": _mib(max(seen.rss, default=None)),
            "median_mib": _mib(sorted(seen.rss)[len(seen.rss) // 2] if seen.rss else None),
            **extra.pop("rss", {}),
        },
        **extra,
    }


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    db = args.db or work / "soak.duckdb"
    if db.exists():
        raise SystemExit(f"{db} exists: the soak needs a new file (it checks every stored id)")
    env = {"TALLY_MAX_BODY_BYTES_IN_FLIGHT": str(args.in_flight_mib * MIB)}
    server = Serve(db, work / "soak-server.log", env=env)
    start_s = server.start()
    try:
        directory = seed(server.url)
        ctx = Context(
            args=args,
            url=server.url,
            directory=directory,
            ingest_token=create_token(server.url, ("ingest",)),
            read_token=create_token(server.url, ("read",)),
            app_keys=[create_token(server.url, ("read",)) for _ in range(args.clients)],
            today=directory.now.astimezone(ZoneInfo(TIMEZONE)).date(),
            stop_at=0.0,
            seen=Tally(),
        )
        elapsed = asyncio.run(drive(ctx, server.pid))
        hwm = rss_bytes(server.pid, "VmHWM")
        began = time.perf_counter()
        found = stored_ids(server.url)
        verify_s = time.perf_counter() - began
    finally:
        stop_s = server.stop()
    seen = ctx.seen
    verified = check_stored(seen.acknowledged, found)
    verified["unknown"] = len(found.keys() - seen.sent)
    out = report(
        args,
        seen,
        elapsed,
        {
            "rss": {"hwm_mib": _mib(hwm)},
            "window_ends": directory.now.isoformat(),
            "verify": verified,
            "start_s": round(start_s, 3),
            "verify_s": round(verify_s, 2),
            "clean_stop_s": round(stop_s, 3),
        },
    )
    out["ok"] = not (
        verified["lost"]
        or verified["doubled"]
        or verified["unknown"]
        or out["unexpected_5xx"]
        or seen.transport_errors
        or seen.anomalies
        or seen.events_acknowledged == 0
    )
    if not out["ok"]:
        tail = server.log.read_text(errors="replace")[-4000:]
        print(f"--- the end of the server's log ---\n{tail}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=200, help="events per ingest batch")
    parser.add_argument("--large-mib", type=float, default=4.0, help="size of a large body")
    parser.add_argument("--large-burst", type=int, default=3, help="large bodies at once (0: none)")
    parser.add_argument("--large-every", type=float, default=20.0, help="seconds between bursts")
    parser.add_argument(
        "--in-flight-mib", type=int, default=8, help="TALLY_MAX_BODY_BYTES_IN_FLIGHT in MiB"
    )
    parser.add_argument("--max-tries", type=int, default=50, help="sends of one batch at most")
    parser.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", type=Path, default=None, help="a new DuckDB file (kept)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tally-soak-") as tmp:
        out = run(args, Path(tmp))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
