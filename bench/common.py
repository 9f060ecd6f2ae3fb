"""Small shared pieces: bounded timing loops, percentiles, process memory, free ports."""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / "work"
RESULTS_DIR = BENCH_DIR / "results"


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``samples`` (with fewer than 100 samples, p99 is the max)."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize_ms(samples: list[float]) -> dict[str, Any]:
    """Latency samples in seconds → n, p50, p99, mean, max in milliseconds."""
    if not samples:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "mean_ms": None, "max_ms": None}
    return {
        "n": len(samples),
        "p50_ms": round(percentile(samples, 0.50) * 1000, 3),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 3),
        "mean_ms": round(sum(samples) / len(samples) * 1000, 3),
        "max_ms": round(max(samples) * 1000, 3),
    }


def measure(
    call: Callable[[], object], *, warmup: int, count: int, seconds: float
) -> dict[str, Any]:
    """Time ``call`` sequentially: ``warmup`` untimed calls, then up to ``count`` timed calls
    or until ``seconds`` have passed (at least one timed call). Bounded in count and time."""
    deadline = time.perf_counter() + seconds
    for _ in range(warmup):
        call()
        if time.perf_counter() > deadline:
            break
    deadline = time.perf_counter() + seconds
    samples: list[float] = []
    while len(samples) < count:
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
        if time.perf_counter() > deadline:
            break
    return summarize_ms(samples)


def vm_hwm_bytes(pid: int) -> int | None:
    """Peak resident set size (VmHWM) of a running process, in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
