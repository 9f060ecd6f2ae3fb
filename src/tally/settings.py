"""One settings object for the whole service: environment variables, then CLI flags, then code.

Every limit the APIs enforce lives here, so a deployment can see and change them in one place.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The current instant, timezone-aware (UTC)."""
    return datetime.now(UTC)


def fixed_clock(instant: datetime) -> Clock:
    """A clock that always answers ``instant``: tests and reproducible builds pin "now"."""

    def clock() -> datetime:
        return instant

    return clock


def _instant(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise ValueError(
            f"environment variable TALLY_NOW: not an RFC 3339 instant with an offset: {raw!r}"
        )
    return value


@dataclasses.dataclass(frozen=True)
class Settings:
    """Configuration of one Tally process. Build it with :meth:`from_env`."""

    db_path: Path = Path("tally.duckdb")
    #: The embedded store as a URL, ``duckdb:///path/to/file.duckdb`` (``--store``); wins over
    #: ``db_path`` when set.
    store: str = ""
    #: The scale-out stores (set both, or neither): the directory and tokens in PostgreSQL
    #: (``postgresql://user@host:port/db``, ``--directory``) and the events in ClickHouse
    #: (``clickhouse://host:9000/db``, ``?cluster=NAME`` for a sharded cluster; ``chdb:///dir``
    #: in-process; ``--events``).
    directory_url: str = ""
    events_url: str = ""
    #: ``tally serve`` worker processes; more than one needs the scale-out stores.
    workers: int = 1
    host: str = "127.0.0.1"
    port: int = 8000
    #: The environment admin's token in clear text; when empty, one is generated at first start.
    admin_token: str = ""
    #: Largest accepted request body for event ingest, in bytes (past it: 413).
    max_body_bytes: int = 16 * 1024 * 1024
    #: How far in the future an event's time may lie (clock skew of the sending platform).
    max_future_seconds: int = 300
    #: Largest window of the department usage API, in days.
    lingma_max_days: int = 366
    #: Largest window of the environment statistics API, in days.
    environment_max_days: int = 3 * 366
    #: How far back the app resource usage API answers (T-180 .. T-1).
    apps_max_days_back: int = 180
    #: Requests per second per key on the app resource usage API; 0 switches the limit off.
    apps_rate_limit_per_second: float = 1.0
    #: Default and largest page size (``limit``) of the app resource usage API.
    apps_page_default: int = 20
    apps_page_max: int = 100
    #: Most ``app_ids`` one app resource usage request may name.
    apps_max_ids: int = 10
    #: Largest request body of the app resource usage API, in bytes (past it: 413).
    apps_max_body_bytes: int = 64 * 1024
    #: Seconds a client may take to send a request's line and headers (past it: 408, closed).
    header_timeout_seconds: float = 10.0
    #: Seconds a client may take to send a request's body (past it: 408 in the API's shape).
    body_timeout_seconds: float = 30.0
    #: Seconds an idle keep-alive connection stays open.
    keep_alive_seconds: int = 5
    #: Most connections (and requests in progress) one process holds; past it: 503.
    max_connections: int = 1000
    #: Most bytes of a request's line and headers (past it: 431, closed).
    max_header_bytes: int = 64 * 1024
    #: Most request-body bytes one process holds at once, read or being worked on (past it:
    #: 503 with ``Retry-After``). Bodies up to ``small_body_bytes`` are never refused by it.
    max_body_bytes_in_flight: int = 64 * 1024 * 1024
    small_body_bytes: int = 256 * 1024
    #: Rows per events list page of Tally's own API.
    events_page_max: int = 1000
    #: Largest window of an export (``GET .../export/{dataset}``, ``tally export``), in days.
    export_max_days: int = 366
    #: Cap on the store's buffer memory (DuckDB ``memory_limit``, e.g. ``1GB``; empty: default).
    store_memory_limit: str = ""
    #: Write-ahead log size past which the store checkpoints into the file (DuckDB
    #: ``checkpoint_threshold``). DuckDB rewrites the whole primary-key index at every
    #: checkpoint, so its 16MB default makes appends to a large store slower the larger it is;
    #: a larger log costs a longer replay after a crash (only then).
    store_checkpoint_threshold: str = "1GB"
    #: Seconds between the server's background refreshes of the second-level rollups (per
    #: department, activity counts); 0 switches them off (stale days are then answered, more
    #: slowly, from the member-day rollups). Each refresh holds appends off while it writes.
    rollup_refresh_seconds: float = 10.0
    #: Seconds without a write after which the server folds the DuckDB write-ahead log into
    #: the file (so a restart or a crash replays nothing); 0 switches it off.
    idle_checkpoint_seconds: float = 60.0
    #: Add a ``Server-Timing: app;dur=<ms>`` header to every API answer: the server's own time
    #: from reading the request to the answer's body, which browsers' developer tools show and
    #: the bench reports beside what its client measures. Off by default (it tells a caller
    #: how long the server worked).
    server_timing: bool = False
    #: Serve ``GET /metrics`` (Prometheus text format: request counts and latencies, events per
    #: org, rollup staleness, store size, rate-limit refusals); off by default.
    metrics: bool = False
    #: One access log line per request on stderr: ``off``, ``text`` or ``json`` (JSON lines).
    access_log: str = "off"
    #: The source of "now"; tests pin it (``TALLY_NOW``: one fixed RFC 3339 instant).
    clock: Clock = system_clock
    #: What the app usage rate limit measures intervals with (``None``: ``clock``). A pinned
    #: ``TALLY_NOW`` fixes the calendar, not the passage of time: with it the limit keeps the
    #: real clock, else a key would be refused for ever after its first call.
    rate_limit_clock: Clock | None = None

    #: Fields that are code, never read from the environment nor passed on to workers.
    CODE_FIELDS = ("clock", "rate_limit_clock")

    ENV_PREFIX = "TALLY_"

    @property
    def scale_out(self) -> bool:
        """Whether the stores are the shared ones (PostgreSQL and ClickHouse)."""
        return bool(self.directory_url or self.events_url)

    def duckdb_path(self) -> Path:
        """The embedded store's file: ``store``'s path when given, else ``db_path``."""
        if not self.store:
            return self.db_path
        prefix = "duckdb://"
        if not self.store.startswith(prefix):
            raise ValueError(f"--store must be a duckdb:///path URL, not {self.store!r}")
        path = self.store[len(prefix) :]
        return Path(path[1:] if path.startswith("//") else path)

    def environment(self) -> dict[str, str]:
        """The ``TALLY_*`` variables that give these settings to another process (a worker);
        the clock is not carried over."""
        values: dict[str, str] = {}
        for field in dataclasses.fields(self):
            if field.name in self.CODE_FIELDS:
                continue
            value = getattr(self, field.name)
            if isinstance(value, bool):
                value = "1" if value else "0"
            values[self.ENV_PREFIX + field.name.upper()] = str(value)
        return values

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``TALLY_*`` variables, then ``overrides`` (CLI flags; ``None`` means unset)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        pinned = env.get(cls.ENV_PREFIX + "NOW")
        if pinned:
            values["clock"] = fixed_clock(_instant(pinned))
            values["rate_limit_clock"] = system_clock
        for field in dataclasses.fields(cls):
            if field.name in cls.CODE_FIELDS:
                continue
            raw = env.get(cls.ENV_PREFIX + field.name.upper())
            if raw is not None and raw != "":
                values[field.name] = _coerce(field.type, raw, field.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _coerce(type_name: object, raw: str, name: str) -> object:
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
        if kind == "bool":
            return _boolean(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable TALLY_{name.upper()}: {exc}") from exc
    return raw


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLEANS.update({"0": False, "false": False, "no": False, "off": False})


def _boolean(raw: str) -> bool:
    try:
        return _BOOLEANS[raw.strip().lower()]
    except KeyError:
        hint = "use 1/0, true/false, yes/no or on/off"
        raise ValueError(f"not a boolean: {raw!r} ({hint})") from None
