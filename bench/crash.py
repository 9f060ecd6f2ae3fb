"""Crash probe: K trials of ``kill -9`` during ingest, restart on the same file, and check that
every acknowledged event is stored exactly once (issue 19).

    PYTHONPATH=src .venv/bin/python bench/crash.py --trials 10

One DuckDB file (``--db``, default a temp file) for the whole run; ``tally serve`` on a free
loopback port (the machine's clock) and the default idle checkpoint (60 s: within a trial
the write-ahead log is never folded, so each restart replays it). A directory is seeded once.
Each trial:

1. ``--clients`` async clients post batches of ``--batch`` events with fresh ids (one in ten a
   resend of a batch already acknowledged) as fast as the server answers;
2. at a random moment, uniform in [``--min-kill``, ``--max-kill``] seconds, the server is
   killed by its PID with SIGKILL; a batch answered 200 before that is *acknowledged*, any other
   (no answer, an error) is *unacknowledged*;
3. the server is started again on the same file: *restart* = seconds from spawning it to the
   first 200 of ``/healthz``;
4. every stored id is read back (``GET /api/v1/orgs/soak/events``): ``lost`` = acknowledged ids
   (of this and every earlier trial) not stored, ``doubled`` = ids listed more than once;
   ``unacked_stored`` = unacknowledged ids that were stored anyway (allowed);
5. the unacknowledged batches are sent again until acknowledged, and the store is read back
   again: now every id ever sent must be stored exactly once (``lost_after_resend``,
   ``doubled_after_resend``, ``unknown``: stored but never sent).

Prints one JSON object (per trial and overall: lost, doubled, restart p50/max, events);
exits 1 on any loss, double or unknown id, or when nothing was acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from common import percentile
from probe import (
    ORG,
    Directory,
    Serve,
    batch,
    check_stored,
    create_token,
    seed,
    stored_ids,
    wal_bytes,
)


@dataclass
class Trial:
    acknowledged: list[list[str]] = field(default_factory=list)
    unacknowledged: list[bytes] = field(default_factory=list)
    anomalies: int = 0
    killed: bool = False


async def ingest_until_killed(
    server: Serve,
    directory: Directory,
    token: str,
    args: argparse.Namespace,
    number: int,
    trial: Trial,
    rng: random.Random,
) -> None:
    url = f"{server.url}/api/v1/orgs/{ORG}/events"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    mine: list[tuple[bytes, list[str]]] = []
    made = 0
    async with httpx.AsyncClient(timeout=args.timeout) as http:
        while not trial.killed:
            if mine and rng.random() < 0.1:
                body, ids = rng.choice(mine)
                fresh = False
            else:
                events = batch(directory, f"t{number}-{made}", args.batch, salt=made)
                made += 1
                body, ids = msgspec.json.encode(events), [e["id"] for e in events]
                fresh = True
            try:
                answer = await http.post(url, content=body, headers=headers)
            except httpx.TransportError:
                trial.unacknowledged.append(body)
                continue
            if answer.status_code != 200:
                trial.unacknowledged.append(body)
                continue
            result = answer.json()
            if result["rejected"] or result["accepted"] + result["duplicates"] != len(ids):
                trial.anomalies += 1
            if not fresh and result["accepted"]:
                trial.anomalies += 1  # a resent (acknowledged) event stored again
            trial.acknowledged.append(ids)
            if fresh and len(mine) < 50:
                mine.append((body, ids))


async def run_trial(
    server: Serve, directory: Directory, token: str, args: argparse.Namespace, number: int
) -> tuple[Trial, float]:
    """The clients until the kill; returns what they saw and when the kill came."""
    trial = Trial()
    rng = random.Random(args.seed * 1000 + number)
    delay = rng.uniform(args.min_kill, args.max_kill)

    async def killer() -> None:
        await asyncio.sleep(delay)
        server.kill()
        trial.killed = True

    await asyncio.gather(
        killer(),
        *(
            ingest_until_killed(
                server, directory, token, args, number * 100 + c, trial, random.Random(rng.random())
            )
            for c in range(args.clients)
        ),
    )
    return trial, delay


def resend(url: str, token: str, bodies: list[bytes], tries: int = 50) -> int:
    """Send each body until a 200; returns the anomalies (never acknowledged, rejected)."""
    problems = 0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(headers=headers, timeout=120.0) as http:
        for body in bodies:
            for _ in range(tries):
                try:
                    answer = http.post(f"{url}/api/v1/orgs/{ORG}/events", content=body)
                except httpx.TransportError:
                    time.sleep(0.5)
                    continue
                if answer.status_code == 200:
                    problems += bool(answer.json()["rejected"])
                    break
                time.sleep(0.5)
            else:
                problems += 1
    return problems


def _ids(body: bytes) -> list[str]:
    return [e["id"] for e in msgspec.json.decode(body)]


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    db = args.db or work / "crash.duckdb"
    if db.exists():
        raise SystemExit(f"{db} exists: the probe needs a new file (it checks every stored id)")
    server = Serve(db, work / "crash-server.log")
    first_start = server.start()
    trials: list[dict[str, Any]] = []
    acknowledged: set[str] = set()
    sent: set[str] = set()
    anomalies = 0
    try:
        directory = seed(server.url)
        token = create_token(server.url, ("ingest",))
        for number in range(args.trials):
            trial, kill_at = asyncio.run(run_trial(server, directory, token, args, number))
            log_bytes = wal_bytes(db)
            restart = server.start()
            for ids in trial.acknowledged:
                acknowledged.update(ids)
                sent.update(ids)
            unacked = {i for body in trial.unacknowledged for i in _ids(body)} - acknowledged
            sent.update(unacked)
            found = stored_ids(server.url)
            before = check_stored(acknowledged, found)
            problems = trial.anomalies + resend(server.url, token, trial.unacknowledged)
            acknowledged |= unacked
            found_after = stored_ids(server.url)
            after = check_stored(acknowledged, found_after)
            unknown = len(found_after.keys() - sent)
            anomalies += problems
            trials.append(
                {
                    "trial": number + 1,
                    "killed_after_s": round(kill_at, 2),
                    "batches_acknowledged": len(trial.acknowledged),
                    "batches_unacknowledged": len(trial.unacknowledged),
                    "wal_bytes_at_restart": log_bytes,
                    "restart_s": round(restart, 3),
                    "stored": before["stored_distinct"],
                    "lost": before["lost"],
                    "doubled": before["doubled"],
                    "unacked_stored": len(unacked & found.keys()),
                    "unacked_ids": len(unacked),
                    "lost_after_resend": after["lost"],
                    "doubled_after_resend": after["doubled"],
                    "unknown": unknown,
                    "anomalies": problems,
                }
            )
            print(json.dumps(trials[-1]), file=sys.stderr, flush=True)
    finally:
        stop_s = server.stop()
    restarts = [t["restart_s"] for t in trials]
    total = {
        key: sum(t[key] for t in trials)
        for key in ("lost", "doubled", "lost_after_resend", "doubled_after_resend", "unknown")
    }
    out: dict[str, Any] = {
        "trials": len(trials),
        "clients": args.clients,
        "batch": args.batch,
        "first_start_s": round(first_start, 3),
        "restart_p50_s": round(percentile(restarts, 0.5), 3) if restarts else None,
        "restart_max_s": max(restarts, default=None),
        "events_acknowledged": len(acknowledged),
        **total,
        "anomalies": anomalies,
        "clean_stop_s": round(stop_s, 3),
        "per_trial": trials,
    }
    out["ok"] = not any(total.values()) and anomalies == 0 and len(acknowledged) > 0
    if not out["ok"]:
        tail = server.log.read_text(errors="replace")[-4000:]
        print(f"--- the end of the server's log ---\n{tail}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100, help="events per batch")
    parser.add_argument("--min-kill", type=float, default=0.5, help="earliest kill, seconds")
    parser.add_argument("--max-kill", type=float, default=3.0, help="latest kill, seconds")
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", type=Path, default=None, help="a new DuckDB file (kept)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tally-crash-") as tmp:
        out = run(args, Path(tmp))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
