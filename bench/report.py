"""The bench's output: one table (each figure beside its target and the ratio or gap) and the
JSON file ``bench/results/<YYYY-MM-DD>-<n>.json`` with every figure, the machine and versions.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
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
    "member_subtree_31d": (15.0, ("10M", "100M")),
    "member_one_365d": (15.0, ("10M", "100M")),
}
#: The questions whose p99 may grow at most ``SCALING_TARGET`` times from 10M to 100M.
GROWTH_KEYS = ("dept_subtree_31d", "member_subtree_31d", "member_one_365d")
PG_SPEEDUP_TARGET = ("dept_subtree_31d", 20.0)
IMPORT_TARGET = 1_000_000.0
INGEST_TARGET = 150_000.0
INGEST_CEILING_SHARE = 0.5
RSS_TARGET = GIB
SCALING_TARGET = 2.0
#: Targets of the scale-out configuration (PostgreSQL + 2-shard ClickHouse, issue 15).
SO_IMPORT_TARGET = 500_000.0
SO_INGEST_TARGET = 100_000.0  # with 2 workers
SO_WORKER_SPEEDUP = 1.6  # 2 workers over 1
SO_LATENCY_TARGETS: dict[str, tuple[float, tuple[str, ...]]] = {
    "dept_subtree_31d": (20.0, ("100M",)),
    "member_subtree_31d": (15.0, ("10M", "100M")),
    "member_one_365d": (15.0, ("10M", "100M")),
}


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
        "clickhouse-driver",
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
        if "scale_out" in data:
            _evaluate_scale_out(size, data["scale_out"], add)
    for key in GROWTH_KEYS:
        low = (sizes.get("10M", {}).get("api", {}).get(key) or {}).get("p99_ms")
        high = (sizes.get("100M", {}).get("api", {}).get(key) or {}).get("p99_ms")
        if low and high:
            add(
                "100M/10M",
                f"{key} p99 growth",
                high / low,
                "<= 2x",
                high / low <= SCALING_TARGET,
                high / low,
            )
    return checks


def _ingest_rate(scale_out: dict[str, Any], workers: int) -> float | None:
    rate = (scale_out.get(f"workers_{workers}") or {}).get("http_ingest", {}).get("events_per_s")
    return None if rate is None else float(rate)


def _evaluate_scale_out(size: str, so: dict[str, Any], add: Callable[..., None]) -> None:
    """The scale-out configuration's figures with a target (their names start "scale-out")."""
    rate = (so.get("import") or {}).get("events_per_s")
    add(
        size,
        "scale-out tally import events/s",
        rate,
        ">= 500,000/s",
        None if rate is None else rate >= SO_IMPORT_TARGET,
        None if rate is None else rate / SO_IMPORT_TARGET,
    )
    one, two = _ingest_rate(so, 1), _ingest_rate(so, 2)
    add(
        size,
        "scale-out HTTP ingest 2 workers events/s",
        two,
        ">= 100,000/s",
        None if two is None else two >= SO_INGEST_TARGET,
        None if two is None else two / SO_INGEST_TARGET,
    )
    speedup = two / one if one and two else None
    add(
        size,
        "scale-out HTTP ingest 2 workers / 1 worker",
        speedup,
        ">= 1.6x",
        None if speedup is None else speedup >= SO_WORKER_SPEEDUP,
        None if speedup is None else speedup / SO_WORKER_SPEEDUP,
    )
    api = so.get("api", {})
    for key, (limit, only) in SO_LATENCY_TARGETS.items():
        p99 = (api.get(key) or {}).get("p99_ms")
        applies = not only or size in only
        add(
            size,
            f"scale-out {key} p99 ms",
            p99,
            f"<= {limit:g} ms" + (f" (at {', '.join(only)})" if only else ""),
            None if p99 is None or not applies else p99 <= limit,
            None if p99 is None else p99 / limit,
        )


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def _peak(so: dict[str, Any], role: str) -> dict[str, Any]:
    return dict((so.get("peak_rss") or {}).get(role) or {})


def _so_rss_rows(so: dict[str, Any]) -> list[tuple[str, str]]:
    """(figure, scale-out cell) of the peak-RSS rows: each tally process, each store."""
    rows: list[tuple[str, str]] = []
    for workers in (1, 2):
        label = f"tally serve {workers}w"
        if workers == 1:
            cell = f"{_mib(_peak(so, label).get('max_bytes'))} MiB"
        else:
            peaks = _peak(so, f"{label} worker").get("peaks_bytes", {})
            each = " + ".join(_mib(v) for v in peaks.values()) or "-"
            cell = f"{each} MiB (+{_mib(_peak(so, label).get('max_bytes'))} supervisor)"
        rows.append((f"  tally serve, {workers} worker(s)", cell))
    clickhouse = [_mib(_peak(so, f"clickhouse s{i}").get("max_bytes")) for i in (0, 1)]
    rows.append(("  ClickHouse s0 / s1", f"{' / '.join(clickhouse)} MiB"))
    postmaster = _peak(so, "postgresql")
    backends = _peak(so, "postgresql child")
    rows.append(
        (
            "  PostgreSQL: postmaster / largest other",
            f"{_mib(postmaster.get('max_bytes'))} / {_mib(backends.get('max_bytes'))} MiB"
            f" ({backends.get('processes', 0)} others)",
        )
    )
    return rows


def _cores(http: dict[str, Any]) -> str:
    """Cores used during HTTP ingest: tally / ClickHouse / PostgreSQL (scale-out), or the
    server alone (DuckDB)."""
    shares = http.get("cpu_share") or {}
    server = http.get("server_cpu_share")
    if not shares:
        return "" if server is None else f"{server:.2f}"
    cells = [shares.get(k) for k in ("server", "clickhouse", "postgresql")]
    return " / ".join("-" if v is None else f"{v:.2f}" for v in cells)


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
        if question.family == "member" and total is not None and raw_rows:
            same = int(total) == raw_rows[0][2]
            found.append(
                f"{key}: Tally x-total {total} {'==' if same else '!='}"
                f" raw (day, member) pairs {raw_rows[0][2]}"
            )
    so_api = (data.get("scale_out") or {}).get("api", {})
    for question in QUESTIONS:  # the scale-out answers against the DuckDB ones (same data)
        duck = ((api.get(question.key) or {}).get("answer")) or None
        scaled = ((so_api.get(question.key) or {}).get("answer")) or None
        if duck is not None and scaled is not None:
            facts = ", ".join(f"{k} {v}" for k, v in scaled.items())
            if duck == scaled:
                found.append(f"{question.key}: scale-out answer == DuckDB's ({facts})")
            else:
                found.append(f"{question.key}: scale-out answer ({facts}) != DuckDB's {duck}")
    return found


def render(results: dict[str, Any]) -> str:
    """The one printed table; with scale-out figures (``--store scale-out``) it gains a
    "Tally scale-out" column beside Tally's (DuckDB) and a verdict column for its targets."""
    lines: list[str] = []
    both = any("scale_out" in data for data in results.get("sizes", {}).values())
    width: tuple[int, ...] = (8, 40, 30, 30, 30, 30)
    header: tuple[str, ...] = ("size", "figure", "Tally", "raw DuckDB", "PostgreSQL 15")
    header += ("target / verdict",)
    if both:
        width = (8, 40, 30, 34, 30, 30, 40, 30)
        header = ("size", "figure", "Tally (DuckDB)", "Tally scale-out (PG + 2 CH)")
        header += ("raw DuckDB", "PostgreSQL 15", "target / verdict (DuckDB)")
        header += ("scale-out target / verdict",)

    def row(
        size: str,
        figure: str,
        tally: str,
        raw: str,
        pg: str,
        target: str,
        so: str = "",
        so_target: str = "",
    ) -> None:
        cells = (size, figure, tally, raw, pg, target)
        if both:
            cells = (size, figure, tally, so, raw, pg, target, so_target)
        lines.append(" | ".join(c.ljust(w) for c, w in zip(cells, width, strict=True)).rstrip())

    lines.append(" | ".join(c.ljust(w) for c, w in zip(header, width, strict=True)).rstrip())
    lines.append("-+-".join("-" * w for w in width))
    checks = {(c["size"], c["figure"]): c for c in evaluate(results)}

    def verdict(size: str, figure: str, fmt: str = "{:.2f}") -> str:
        check = checks.get((size, figure))
        if not check:
            return ""
        ratio = "" if check["ratio"] is None else f"(x{fmt.format(check['ratio'])} of target)"
        return _verdict(check["met"], f"{check['target']} {ratio}")

    for size, data in results.get("sizes", {}).items():
        so: dict[str, Any] = data.get("scale_out") or {}
        so_api = so.get("api", {})
        so_http = {w: (so.get(f"workers_{w}") or {}).get("http_ingest") or {} for w in (1, 2)}
        if so.get("error"):
            row(size, "scale-out: FAILED", "", "", "", "", so["error"][:34])
        imp = data.get("import", {})
        so_imp = so.get("import") or {}
        row(
            size,
            "tally import",
            _rate(imp.get("events_per_s")),
            "",
            "",
            verdict(size, "tally import events/s"),
            _rate(so_imp.get("events_per_s")) + (" (into ClickHouse)" if so_imp else ""),
            verdict(size, "scale-out tally import events/s"),
        )
        if both:
            migrate = so.get("migrate") or {}
            seconds = migrate.get("seconds")
            row(size, "  directory copy (tally migrate)", "", "", "", "",
                "-" if seconds is None else f"{seconds:.1f} s")  # fmt: skip
        http = data.get("http_ingest", {})
        lat = http.get("latency") or {}
        row(
            size,
            "HTTP ingest (8 clients x 1,000 events)",
            _rate(http.get("events_per_s")),
            "",
            "",
            verdict(size, "HTTP ingest events/s"),
            _rate(so_http[1].get("events_per_s")) + (" (1 worker)" if so_http[1] else ""),
        )
        if lat.get("p50_ms") is not None or both:
            row(
                size,
                "  batch latency p50 / p99",
                _pair(lat),
                "",
                "",
                "",
                _pair(so_http[1].get("latency") or {}),
            )
        if both:
            row(size, "  cores: tally / ClickHouse / PostgreSQL", _cores(http), "", "", "",
                _cores(so_http[1]))  # fmt: skip
            row(size, "HTTP ingest, 2 workers", "", "", "", "",
                _rate(so_http[2].get("events_per_s")),
                verdict(size, "scale-out HTTP ingest 2 workers events/s"))  # fmt: skip
            row(size, "  batch latency p50 / p99", "", "", "", "",
                _pair(so_http[2].get("latency") or {}))  # fmt: skip
            row(size, "  cores: tally / ClickHouse / PostgreSQL", "", "", "", "",
                _cores(so_http[2]))  # fmt: skip
            check = checks.get((size, "scale-out HTTP ingest 2 workers / 1 worker")) or {}
            value = check.get("value")
            row(size, "  2 workers / 1 worker", "", "", "", "",
                "-" if value is None else f"{value:.2f}x",
                verdict(size, "scale-out HTTP ingest 2 workers / 1 worker"))  # fmt: skip
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
            so_target = ""
            if key in SO_LATENCY_TARGETS:
                so_target = verdict(size, f"scale-out {key} p99 ms")
            row(
                size,
                question.label + " p50/p99",
                _lat(api.get(key)),
                _lat(raw.get(key)),
                _lat(pg.get(key)),
                target,
                _lat(so_api.get(key)) if so else "",
                so_target,
            )
            server = (api.get(key) or {}).get("server") or {}
            so_server = (so_api.get(key) or {}).get("server") or {}
            if server.get("p50_ms") is not None or so_server.get("p50_ms") is not None:
                row(
                    size,
                    "  the server's own time p50/p99",
                    _pair(server),
                    "",
                    "",
                    "",
                    _pair(so_server) if so else "",
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
        if both:
            so_peak = so_imp.get("peak_rss_bytes")
            row(size, "  tally import", f"{_mib(imp.get('peak_rss_bytes'))} MiB", "", "", "",
                f"{_mib(so_peak)} MiB")  # fmt: skip
            for figure, cell in _so_rss_rows(so):
                row(size, figure, "", "", "", "", cell)
    for question in QUESTIONS:
        growth = checks.get(("100M/10M", f"{question.key} p99 growth"))
        if growth:
            row(
                "100M/10M",
                f"{question.label} p99 growth",
                f"{growth['value']:.2f}x",
                "",
                "",
                _verdict(growth["met"], "<= 2x"),
            )
    return "\n".join(lines)


def _pair(stats: dict[str, Any]) -> str:
    """``p50 / p99 ms`` of a summary, or empty."""
    if stats.get("p50_ms") is None:
        return ""
    return f"{stats['p50_ms']:.1f} / {stats['p99_ms']:.1f} ms"
