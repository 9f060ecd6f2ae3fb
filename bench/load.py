"""HTTP ingest load: N concurrent clients posting 1,000-event JSON batches to ``tally serve``.

Run as its own process (``python bench/load.py --url ... --token ...``) so that its CPU is not
the bench driver's; prints one JSON object: events/s acknowledged, requests, p50/p99 batch
latency, and the share of a core the load process, the server (``--server-pid``, repeated for
each worker process) and other watched processes (``--watch-pid LABEL=PID``: the stores) used.
Only loopback URLs are accepted. Bounded: new batches stop after ``--seconds`` and after
``--max-batches``; every request has a timeout.

:func:`batch_maker` is shared with ``ceiling.py``: every batch has fresh ids (a run tag, the
batch number and the position), times a minute in the past, known members/workspaces, and the
mix of a developer-heavy org (completion, chat, code, activity, workspace_activity).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import httpx
import msgspec

from common import cpu_seconds, summarize_ms
from plan import IDES, LANGUAGES, MEMBERS, WORKSPACES

PLACEHOLDER = b"@@BATCH@@"


def _event(rng: random.Random, tag: str, j: int, when: str) -> dict[str, Any]:
    member = f"m{rng.randrange(MEMBERS):05d}"
    base = {"id": f"{tag}-@@BATCH@@-{j}", "time": when, "member": member}
    kind = rng.random()
    if kind < 0.62:
        suggested = rng.randint(1, 12)
        accepted = rng.random() < 0.3
        return base | {
            "type": "completion",
            "ide": rng.choice(IDES),
            "language": rng.choice(LANGUAGES),
            "lines_suggested": suggested,
            "accepted": accepted,
            "lines_accepted": rng.randint(1, suggested) if accepted else 0,
        }
    if kind < 0.74:
        return base | {
            "type": "chat",
            "ide": rng.choice(IDES),
            "chat_type": rng.choice(("FREE_INPUT", "EXPLAIN_CODE", "OPTIMIZE_CODE")),
            "accepted": rng.random() < 0.4,
        }
    if kind < 0.88:
        lines = rng.randint(1, 30)
        return base | {
            "type": "code",
            "language": rng.choice(LANGUAGES),
            "source": rng.choice(("completion", "chat")),
            "lines_accepted": lines,
            "lines_changed": lines + rng.randint(0, 10),
        }
    if kind < 0.94:
        return base | {"type": "activity"}
    return base | {"type": "workspace_activity", "workspace": f"ws-{rng.randrange(WORKSPACES):04d}"}


def batch_maker(tag: str, size: int = 1000, seed: int = 11) -> Callable[[int], bytes]:
    """A function from a batch number to a JSON array body of ``size`` fresh events."""
    rng = random.Random(seed)
    when = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="milliseconds")
    template = msgspec.json.encode([_event(rng, tag, j, when) for j in range(size)])

    def make(number: int) -> bytes:
        return template.replace(PLACEHOLDER, str(number).encode())

    return make


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    make = batch_maker(args.tag, args.batch_size)
    next_batch = 0
    latencies: list[float] = []
    accepted = 0
    errors: dict[str, int] = {}
    url = f"{args.url}/api/v1/orgs/{args.org}/events"
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
    started = time.perf_counter()
    stop_at = started + args.seconds
    last_done = started

    async def client_loop() -> None:
        nonlocal next_batch, accepted, last_done
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(limits=limits, timeout=args.timeout) as client:
            while time.perf_counter() < stop_at and next_batch < args.max_batches:
                body = make(next_batch)
                next_batch += 1
                sent = time.perf_counter()
                try:
                    response = await client.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                done = time.perf_counter()
                if response.status_code != 200:
                    key = f"HTTP {response.status_code}"
                    errors[key] = errors.get(key, 0) + 1
                    continue
                latencies.append(done - sent)
                accepted += int(response.json().get("accepted", 0))
                last_done = done

    groups = {"server": args.server_pid, **_watched(args.watch_pid)}
    cpu_before = {label: _cpu(pids) for label, pids in groups.items()}
    own_before = time.process_time()
    await asyncio.gather(*(client_loop() for _ in range(args.clients)))
    elapsed = max(last_done - started, 1e-9)
    cpu_after = {label: _cpu(pids) for label, pids in groups.items()}
    shares = {
        label: round((cpu_after[label] - before) / elapsed, 3)
        for label, before in cpu_before.items()
        if before is not None and cpu_after[label] is not None
    }
    return {
        "clients": args.clients,
        "batch_size": args.batch_size,
        "seconds": round(elapsed, 3),
        "batches": len(latencies),
        "events_accepted": accepted,
        "events_per_s": round(accepted / elapsed, 1),
        "latency": summarize_ms(latencies),
        "errors": errors,
        "load_cpu_share": round((time.process_time() - own_before) / elapsed, 3),
        "server_cpu_share": shares.get("server"),
        **({"cpu_share": shares} if args.watch_pid else {}),
    }


def _watched(specs: list[str]) -> dict[str, list[int]]:
    """``LABEL=PID`` specs grouped by label."""
    groups: dict[str, list[int]] = {}
    for spec in specs:
        label, _, pid = spec.rpartition("=")
        groups.setdefault(label or "other", []).append(int(pid))
    return groups


def _cpu(pids: list[int]) -> float | None:
    """CPU seconds used so far by ``pids`` together (those that exited count no more)."""
    values = [cpu_seconds(pid) for pid in pids]
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--org", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-batches", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument(
        "--server-pid",
        type=int,
        action="append",
        default=[],
        help="a server process whose CPU share to report (repeat for each worker)",
    )
    parser.add_argument(
        "--watch-pid",
        action="append",
        default=[],
        help="LABEL=PID: another process whose CPU share to report under LABEL (repeatable)",
    )
    parser.add_argument("--tag", default=f"h{int(time.time())}")
    args = parser.parse_args(argv)
    host = urlparse(args.url).hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        parser.error("the load generator only targets loopback addresses")
    json.dump(asyncio.run(_run(args)), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
