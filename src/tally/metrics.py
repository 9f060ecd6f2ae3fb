"""Operational metrics (``GET /metrics``, Prometheus text format) and the access log: one
ASGI middleware that times every request, counts it by route template and status, and writes
one log line; gauges about the stores are computed when the metrics are scraped.

Nothing here exposes an organization's data beyond counts: route labels are templates
(``/api/v1/orgs/{org}/events``, never a real org id), and only the events counters carry the
org id. With ``tally serve --workers N`` the counters of every worker are summed through
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set up by the parent
process), so whichever worker answers a scrape answers for all of them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tally.service import Tally
from tally.timeutil import zone

#: Where each request's id is kept in ``scope["state"]``: the facades answer it as
#: ``x-request-id`` (and in their error bodies), the access log writes it.
REQUEST_ID = "request_id"
#: Where the events API leaves ``(org id, IngestResult)`` for the events counters.
INGESTED = "ingested"
ACCESS_LOG_FORMATS = ("off", "text", "json")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Latency buckets, in seconds: from a cached answer to a cold year-long window.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: The second-level rollup families whose stale days are reported, and how a store tells.
ROLLUP_FAMILIES = {
    "department_days": "stale_department_days",
    "activity_days": "stale_activity_days",
}

access_log = logging.getLogger("tally.access")


def request_id(scope: Scope) -> str:
    """The request's id: the one the middleware gave it, else a fresh one (kept, so the
    facade and the log agree)."""
    state = scope.setdefault("state", {})
    found = state.get(REQUEST_ID)
    if not found:
        found = state[REQUEST_ID] = str(uuid.uuid4())
    return str(found)


class Metrics:
    """The metrics of one app: the counters, the histogram, and the store gauges."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
        #: What the metrics are registered with: nothing in multiprocess mode (their values
        #: go to files that the scrape reads for every worker).
        own = None if self.multiprocess else CollectorRegistry(auto_describe=True)
        self._own = own
        self.requests = Counter(
            "tally_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=own,
        )
        self.latency = Histogram(
            "tally_http_request_duration_seconds",
            "Time from the request to the end of the answer, by API family",
            ["api"],
            buckets=BUCKETS,
            registry=own,
        )
        self.events = Counter(
            "tally_events",
            "Events sent to the events API, by organization and outcome"
            " (accepted, duplicate, rejected)",
            ["org", "outcome"],
            registry=own,
        )
        self.rate_limited = Counter(
            "tally_rate_limit_refusals",
            "Requests refused by a rate limit (HTTP 429), by API family",
            ["api"],
            registry=own,
        )

    def render(self) -> bytes:
        registry = CollectorRegistry(auto_describe=True)
        if self.multiprocess:
            prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            assert self._own is not None
            registry.register(_Registered(self._own))
        registry.register(StoreCollector(self.tally))
        return generate_latest(registry)

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        route, api = route_of(scope)
        self.requests.labels(route, scope.get("method", ""), str(status)).inc()
        self.latency.labels(api).observe(seconds)
        if status == 429:
            self.rate_limited.labels(api).inc()
        ingested = scope.get("state", {}).get(INGESTED)
        if ingested is not None:
            org_id, result = ingested
            self.events.labels(org_id, "accepted").inc(result.accepted)
            self.events.labels(org_id, "duplicate").inc(result.duplicates)
            self.events.labels(org_id, "rejected").inc(len(result.rejected))


class _Registered(Collector):
    """The app's own registry, as one collector of the scrape's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


class StoreCollector(Collector):
    """Gauges read from the stores at scrape time: their size on disk, and the stale days of
    the second-level rollups (how many, and how old the oldest is)."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    def collect(self) -> Iterator[Metric]:
        size = GaugeMetricFamily(
            "tally_store_size_bytes", "What each store takes on disk", labels=["store"]
        )
        tally = self.tally
        if id(tally.directory_store) == id(tally.event_store):  # one backend holding both
            parts = [("events+directory", tally.event_store.size_bytes())]
        else:
            parts = [
                ("events", tally.event_store.size_bytes()),
                ("directory", tally.directory_store.size_bytes()),
            ]
        for name, value in parts:
            if value is not None:
                size.add_metric([name], value)
        yield size
        stale = GaugeMetricFamily(
            "tally_rollup_stale_days",
            "Org days whose second-level rollups wait for the background refresh (every org)",
            labels=["rollup"],
        )
        oldest = GaugeMetricFamily(
            "tally_rollup_oldest_stale_day_age_seconds",
            "Seconds from the start of the oldest stale org day to now (0: none stale)",
            labels=["rollup"],
        )
        now = tally.settings.clock()
        orgs = tally.directory.orgs()
        for family, method in ROLLUP_FAMILIES.items():
            count, age = 0, 0.0
            for org in orgs:
                days: list[date] = getattr(tally.event_store, method)(org.id)
                count += len(days)
                if days:
                    age = max(age, (now - _day_start(days[0], org.timezone)).total_seconds())
            stale.add_metric([family], count)
            oldest.add_metric([family], max(age, 0.0))
        yield stale
        yield oldest


def _day_start(day: date, timezone: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone(timezone))


def route_of(scope: Scope) -> tuple[str, str]:
    """The route template (never the raw path: no org ids) and the API family of a request."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return "(unmatched)", "none"
    name = str(getattr(route, "name", ""))
    family, colon, _ = name.partition(":")
    return str(path), family if colon else "service"


def org_of(scope: Scope) -> str | None:
    """The organization the request names in its path, or the events API ingested for."""
    ingested = scope.get("state", {}).get(INGESTED)
    if ingested is not None:
        return str(ingested[0])
    params = scope.get("path_params", {})
    found = params.get("org") or params.get("organizationId")
    return None if found is None else str(found)


class Observer:
    """ASGI middleware: a request id for every request, then the metrics and the access log
    once the answer is sent."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None, log_format: str) -> None:
        self.app = app
        self.metrics = metrics
        self.log_format = log_format

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        ident = request_id(scope)
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            seconds = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.observe(scope, status, seconds)
            if self.log_format != "off":
                self.log(scope, status, seconds, ident)

    def log(self, scope: Scope, status: int, seconds: float, ident: str) -> None:
        route, _ = route_of(scope)
        record: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "method": scope.get("method", ""),
            "path": scope.get("path", ""),
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "request_id": ident,
            "org": org_of(scope),
        }
        if self.log_format == "json":
            access_log.info(json.dumps(record, ensure_ascii=False))
        else:
            access_log.info(
                "%s %s %s %.1fms %s org=%s",
                record["method"],
                record["path"],
                status,
                record["duration_ms"],
                ident,
                record["org"] or "-",
            )


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each line (not at setup)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _setup_access_log() -> None:
    """Access lines go to stderr, bare (a JSON line stays one JSON document), once."""
    if not any(isinstance(h, _StderrHandler) for h in access_log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False


def observability(tally: Tally) -> tuple[list[Route], list[Middleware]]:
    """What ``create_app`` adds for the settings' ``metrics`` and ``access_log``: the
    ``/metrics`` route and the middleware (nothing when both are off)."""
    settings = tally.settings
    log_format = settings.access_log.strip().lower() or "off"
    if log_format not in ACCESS_LOG_FORMATS:
        raise ValueError(
            f"TALLY_ACCESS_LOG must be one of {', '.join(ACCESS_LOG_FORMATS)},"
            f" not {settings.access_log!r}"
        )
    if not settings.metrics and log_format == "off":
        return [], []
    if log_format != "off":
        _setup_access_log()
    metrics = Metrics(tally) if settings.metrics else None
    routes: list[Route] = []
    if metrics is not None:

        async def scrape(request: Request) -> Response:
            from starlette.concurrency import run_in_threadpool

            body = await run_in_threadpool(metrics.render)
            return Response(body, media_type=CONTENT_TYPE_LATEST)

        routes.append(Route("/metrics", scrape, methods=["GET"], name="metrics"))
    return routes, [Middleware(Observer, metrics=metrics, log_format=log_format)]


def prepare_workers() -> None:
    """Before ``tally serve --workers N`` starts its workers: prometheus-client's multiprocess
    mode, in a fresh directory (unless ``PROMETHEUS_MULTIPROC_DIR`` names one already), so
    each worker's ``/metrics`` answers the sums over every worker. The store gauges are read
    by the worker that answers the scrape."""
    if not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="tally-metrics-")
