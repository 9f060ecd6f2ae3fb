"""The bench's output: one table (each figure beside its target and the ratio or gap) and the
JSON file ``bench/results/<YYYY-MM-DD>-<n>.json`` with every figure, the machine and versions.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from common import REPO_DIR, RESULTS_DIR
from queries import QUESTIONS

GIB = 1024**3
#: Latency targets (p99, ms) per question and the sizes they apply to.
LATENCY_TARGETS: dict[str, tuple[float, tuple[str, ...]]] = {
    "dept_subtree_31d": (10.0, ("10M", "100M")),
    "env_users_365d": (50.0, ()),
    "env_developers_365d": (50.0, ()),
    "env_workspaces_365d": (50.0, ()),
}
PG_SPEEDUP_TARGET = ("dept_subtree_31d", 20.0)
IMPORT_TARGET = 1_000_000.0
INGEST_TARGET = 150_000.0
INGEST_CEILING_SHARE = 0.5
RSS_TARGET = GIB
SCALING_TARGET = 2.0


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"nproc": os.cpu_count(), "platform": platform.platform()}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_bytes"] = int(line.split()[1]) * 1024
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def versions(postgres: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {"python": sys.version.split()[0], "postgresql": postgres}
    for name in (
        "tally-stats",
        "duckdb",
        "pyarrow",
        "numpy",
        "psycopg",
        "httpx",
        "uvicorn",
        "starlette",
        "msgspec",
    ):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    try:
        found["git_commit"] = subprocess.run(
            ["git", "-C", str(REPO_DIR), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found["git_commit"] = None
    return found


def results_path(today: date) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    n = 1
    while (RESULTS_DIR / f"{today.isoformat()}-{n}.json").exists():
        n += 1
    return RESULTS_DIR / f"{today.isoformat()}-{n}.json"


def write_json(path: Path, results: dict[str, Any]) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(results, indent=2, default=str) + "\n")
    partial.replace(path)


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e6:.2f}M/s" if value >= 1e6 else f"{value / 1e3:.1f}k/s"


def _lat(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "-"
    if stats.get("available") is False:
        return "n/a (no route)"
    if stats.get("error"):
        return "error"
    if stats.get("p50_ms") is None:
        return "-"
    return f"{stats['p50_ms']:.1f} / {stats['p99_ms']:.1f} ms (n={stats['n']})"


def _verdict(ok: bool | None, detail: str) -> str:
    mark = "-" if ok is None else ("MET" if ok else "SHORT")
    return f"{mark} {detail}".strip()


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every figure with a target: value, target, ratio, met or short."""
    checks: list[dict[str, Any]] = []
    sizes: dict[str, Any] = results.get("sizes", {})

    def add(
        size: str,
        figure: str,
        value: float | None,
        target: str,
        ok: bool | None,
        ratio: float | None,
    ) -> None:
        checks.append(
            {
                "size": size,
                "figure": figure,
                "value": value,
                "target": target,
                "met": ok,
                "ratio": None if ratio is None else round(ratio, 3),
            }
        )

    for size, data in sizes.items():
        rate = data.get("import", {}).get("events_per_s")
        add(
            size,
            "tally import events/s",
            rate,
            ">= 1,000,000/s",
            None if rate is None else rate >= IMPORT_TARGET,
            None if rate is None else rate / IMPORT_TARGET,
        )
        http = data.get("http_ingest", {}).get("events_per_s")
        add(
            size,
            "HTTP ingest events/s",
            http,
            ">= 150,000/s",
            None if http is None else http >= INGEST_TARGET,
            None if http is None else http / INGEST_TARGET,
        )
        ceiling = data.get("ceiling", {}).get("events_per_s")
        share = http / ceiling if http and ceiling else None
        add(
            size,
            "HTTP ingest / in-process ceiling",
            share,
            ">= 50%",
            None if share is None else share >= INGEST_CEILING_SHARE,
            None if share is None else share / INGEST_CEILING_SHARE,
        )
        api = data.get("api", {})
        for key, (limit, only) in LATENCY_TARGETS.items():
            p99 = (api.get(key) or {}).get("p99_ms")
            applies = not only or size in only
            add(
                size,
                f"{key} p99 ms",
                p99,
                f"<= {limit:g} ms" + ("" if applies else " (n/a here)"),
                None if p99 is None or not applies else p99 <= limit,
                None if p99 is None else p99 / limit,
            )
        key, factor = PG_SPEEDUP_TARGET
        api_p50 = (api.get(key) or {}).get("p50_ms")
        pg_p50 = (data.get("postgres", {}).get("questions", {}).get(key) or {}).get("p50_ms")
        speedup = pg_p50 / api_p50 if api_p50 and pg_p50 else None
        add(
            size,
            f"{key}: PostgreSQL p50 / Tally p50",
            speedup,
            f">= {factor:g}x",
            None if speedup is None else speedup >= factor,
            speedup,
        )
        rss = data.get("server_peak_rss_bytes")
        add(
            size,
            "server peak RSS bytes",
            rss,
            "<= 1 GiB (at 100M)",
            None if rss is None or size != "100M" else rss <= RSS_TARGET,
            None if rss is None else rss / RSS_TARGET,
        )
    low = (sizes.get("10M", {}).get("api", {}).get("dept_subtree_31d") or {}).get("p99_ms")
    high = (sizes.get("100M", {}).get("api", {}).get("dept_subtree_31d") or {}).get("p99_ms")
    if low and high:
        add(
            "100M/10M",
            "dept_subtree_31d p99 growth",
            high / low,
            "<= 2x",
            high / low <= SCALING_TARGET,
            high / low,
        )
    return checks


def consistency(data: dict[str, Any]) -> list[str]:
    """Whether Tally's API and the raw engines saw the same data: a department answer's
    ``x-total`` (days with usage) against the raw answer's distinct days; the raw engines'
    result shapes against each other."""
    found: list[str] = []
    api = data.get("api", {})
    raw = data.get("raw_duckdb", {})
    pg = data.get("postgres", {}).get("questions", {})
    for question in QUESTIONS:
        key = question.key
        raw_rows = (raw.get(key) or {}).get("rows")
        pg_rows = (pg.get(key) or {}).get("rows")
        if raw_rows and pg_rows and raw_rows != pg_rows:
            found.append(f"{key}: raw DuckDB rows {raw_rows} != PostgreSQL rows {pg_rows}")
        total = ((api.get(key) or {}).get("answer") or {}).get("x_total")
        if question.family == "department" and total is not None and raw_rows:
            same = int(total) == raw_rows[0][1]
            found.append(
                f"{key}: Tally x-total {total} {'==' if same else '!='} raw days {raw_rows[0][1]}"
            )
    return found


def render(results: dict[str, Any]) -> str:
    """The one printed table."""
    lines: list[str] = []
    width = (8, 40, 30, 30, 30, 30)
    header = ("size", "figure", "Tally", "raw DuckDB", "PostgreSQL 15", "target / verdict")

    def row(*cells: str) -> None:
        lines.append(" | ".join(c.ljust(w) for c, w in zip(cells, width, strict=True)).rstrip())

    row(*header)
    lines.append("-+-".join("-" * w for w in width))
    checks = {(c["size"], c["figure"]): c for c in evaluate(results)}

    def verdict(size: str, figure: str, fmt: str = "{:.2f}") -> str:
        check = checks.get((size, figure))
        if not check:
            return ""
        ratio = "" if check["ratio"] is None else f"(x{fmt.format(check['ratio'])} of target)"
        return _verdict(check["met"], f"{check['target']} {ratio}")

    for size, data in results.get("sizes", {}).items():
        imp = data.get("import", {})
        row(
            size,
            "tally import",
            _rate(imp.get("events_per_s")),
            "",
            "",
            verdict(size, "tally import events/s"),
        )
        http = data.get("http_ingest", {})
        lat = http.get("latency") or {}
        row(
            size,
            "HTTP ingest (8 clients x 1,000 events)",
            _rate(http.get("events_per_s")),
            "",
            "",
            verdict(size, "HTTP ingest events/s"),
        )
        if lat.get("p50_ms") is not None:
            row(
                size,
                "  batch latency p50 / p99",
                f"{lat['p50_ms']:.1f} / {lat['p99_ms']:.1f} ms",
                "",
                "",
                "",
            )
        ceiling = data.get("ceiling", {})
        one, many = ceiling.get("one_loop") or {}, ceiling.get("threads") or {}
        if one or many:
            row(size, "in-process: 1 loop / threads", f"{_rate(one.get('events_per_s'))} / "
                f"{_rate(many.get('events_per_s'))}", "", "", "")  # fmt: skip
        row(
            size,
            "in-process ceiling (no HTTP, the best)",
            _rate(ceiling.get("events_per_s")),
            "",
            "",
            verdict(size, "HTTP ingest / in-process ceiling"),
        )
        api = data.get("api", {})
        raw = data.get("raw_duckdb", {})
        pg = data.get("postgres", {}).get("questions", {})
        for question in QUESTIONS:
            key = question.key
            target = ""
            if key in LATENCY_TARGETS:
                target = verdict(size, f"{key} p99 ms")
            row(
                size,
                question.label + " p50/p99",
                _lat(api.get(key)),
                _lat(raw.get(key)),
                _lat(pg.get(key)),
                target,
            )
            server = (api.get(key) or {}).get("server") or {}
            if server.get("p50_ms") is not None:
                row(
                    size,
                    "  the server's own time p50/p99",
                    f"{server['p50_ms']:.1f} / {server['p99_ms']:.1f} ms",
                    "",
                    "",
                    "",
                )
            if key == PG_SPEEDUP_TARGET[0]:
                check = checks.get((size, f"{key}: PostgreSQL p50 / Tally p50"))
                value = check["value"] if check else None
                row(
                    size,
                    "  PostgreSQL p50 / Tally p50",
                    "-" if value is None else f"{value:.1f}x",
                    "",
                    "",
                    verdict(size, f"{key}: PostgreSQL p50 / Tally p50"),
                )
        rss = data.get("server_peak_rss_bytes")
        row(
            size,
            "server peak RSS (VmHWM)",
            "-" if rss is None else f"{rss / 2**20:.0f} MiB",
            "",
            "",
            verdict(size, "server peak RSS bytes"),
        )
    growth = checks.get(("100M/10M", "dept_subtree_31d p99 growth"))
    if growth:
        row(
            "100M/10M",
            "dept subtree 31 d p99 growth",
            f"{growth['value']:.2f}x",
            "",
            "",
            _verdict(growth["met"], "<= 2x"),
        )
    return "\n".join(lines)
