"""The blocking client (``httpx.Client``): :class:`TallyClient`. Every call is one of
:mod:`tally.client.core`'s generators, driven here with blocking sends and sleeps."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

import httpx

from tally.client import core
from tally.client.core import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_BATCH_EVENTS,
    ONCE,
    Call,
    ExportFormat,
    Outcome,
    RetryPolicy,
    Send,
    StatsType,
)
from tally.client.shapes import (
    App,
    AppUsageItem,
    AppUsageStats,
    Department,
    DepartmentItem,
    DepartmentUsageRow,
    DeveloperUsageRow,
    Event,
    Member,
    MemberItem,
    Organization,
    Page,
    SendSummary,
    Statistics,
    Workspace,
)

T = TypeVar("T")


class TallyClient:
    """A client of one Tally server. ``token``: an organization token with the scopes the
    calls need (``admin`` for the directory, ``ingest`` for events, ``read`` for statistics),
    or the environment admin's. ``retry`` decides how connection errors, 429 and 5xx are
    retried (every call but :meth:`create_token` is safe to send again: PUTs replace, events
    carry their ids, the rest only read)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        seed: int | None = None,
    ) -> None:
        self.token = token
        self.retry = retry or RetryPolicy()
        self._rng = random.Random(seed)
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, transport=transport)

    # -- plumbing ------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TallyClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, step: Send, stream: bool = False) -> Outcome:
        request = self._http.build_request(
            step.method,
            step.path,
            params=step.params,
            content=step.content,
            headers=core.headers_for(step, self.token),
        )
        try:
            response = self._http.send(request, stream=stream)
            if stream and not response.is_success:
                response.read()
            return response
        except httpx.TransportError as exc:
            return exc

    def _run(self, call: Call[T]) -> T:
        return core.run_sync(call, self._send, time.sleep)

    def _json(self, step: Send, kind: type[T]) -> T:
        return self._run(core.call_json(step, kind, self.retry, self._rng))

    def _page(self, step: Send, kind: type[T]) -> Page[T]:
        return self._run(core.call_page(step, kind, self.retry, self._rng))

    # -- the directory -------------------------------------------------------------------
    def put_org(
        self, org: str, *, name: str, domain: str, timezone: str = "Asia/Shanghai"
    ) -> Organization:
        """Create or replace an organization (the environment admin's token)."""
        return self._json(core.put_org(org, name, domain, timezone), Organization)

    def put_department(
        self, org: str, department: str, *, name: str, parent: str | None = None
    ) -> Department:
        return self._json(core.put_department(org, department, name, parent), Department)

    def put_member(
        self,
        org: str,
        member: str,
        *,
        name: str,
        email: str,
        developer: bool,
        departments: Sequence[str],
        created_at: datetime | str,
        deleted_at: datetime | str | None = None,
        effective_at: datetime | str | None = None,
    ) -> Member:
        step = core.put_member(
            org,
            member,
            name=name,
            email=email,
            developer=developer,
            departments=departments,
            created_at=created_at,
            deleted_at=deleted_at,
            effective_at=effective_at,
        )
        return self._json(step, Member)

    def put_workspace(
        self,
        org: str,
        workspace: str,
        *,
        name: str,
        created_at: datetime | str,
        deleted_at: datetime | str | None = None,
        members: Iterable[Mapping[str, Any]] = (),
    ) -> Workspace:
        """``members``: ``{"member", "since", "until"}`` mappings (``until`` optional)."""
        step = core.put_workspace(
            org, workspace, name=name, created_at=created_at, deleted_at=deleted_at, members=members
        )
        return self._json(step, Workspace)

    def put_app(
        self,
        org: str,
        app: str,
        *,
        name: str,
        creator: str,
        created_at: datetime | str,
        deleted_at: datetime | str | None = None,
    ) -> App:
        step = core.put_app(
            org, app, name=name, creator=creator, created_at=created_at, deleted_at=deleted_at
        )
        return self._json(step, App)

    def create_token(self, org: str, scopes: Sequence[str]) -> str:
        """A new token of ``org`` with ``scopes`` (its secret: shown this once). Not retried:
        a second request would make a second token."""
        call = core.call_json(core.create_token(org, scopes), core.TokenAnswer, ONCE, self._rng)
        return self._run(call).token

    # -- events --------------------------------------------------------------------------
    def send_events(
        self,
        org: str,
        events: Iterable[Any],
        *,
        batch_events: int = DEFAULT_BATCH_EVENTS,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> SendSummary:
        """Send ``events`` (mappings or msgspec structs, each with its ``id``) in batches of
        at most ``batch_events`` events and ``batch_bytes`` bytes, retrying each batch
        unchanged on connection errors, 429 and 5xx. Raises :class:`RetriesExhausted` (with
        the summary so far) when a batch cannot be delivered."""
        call = core.send_events(
            org,
            events,
            max_events=batch_events,
            max_bytes=batch_bytes,
            policy=self.retry,
            rng=self._rng,
        )
        return self._run(call)

    def iter_events(
        self,
        org: str,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        page_size: int = 1000,
    ) -> Iterator[Event]:
        """The stored events with ``start <= time < end``, by time, following ``next_cursor``."""
        cursor: str | None = None
        while True:
            step = core.list_events(org, start, end, page_size, cursor)
            page = self._run(core.event_page(step, self.retry, self._rng))
            yield from page.events
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # -- the AI assistant's usage, members and departments -------------------------------
    def department_usage(
        self,
        org: str,
        department: str,
        start: date | str,
        end: date | str,
        *,
        page: int = 1,
        per_page: int = 100,
    ) -> Page[DepartmentUsageRow]:
        step = core.department_usage(org, department, start, end, page, per_page)
        return self._page(step, DepartmentUsageRow)

    def iter_department_usage(
        self, org: str, department: str, start: date | str, end: date | str, per_page: int = 100
    ) -> Iterator[DepartmentUsageRow]:
        """Every row of the window, following ``x-next-page`` until an empty page."""
        return self._follow(
            lambda p: self.department_usage(org, department, start, end, page=p, per_page=per_page)
        )

    def developer_usage(
        self,
        org: str,
        start: date | str,
        end: date | str,
        *,
        user_id: str | None = None,
        department: str | None = None,
        page: int = 1,
        per_page: int = 100,
    ) -> Page[DeveloperUsageRow]:
        step = core.developer_usage(org, start, end, user_id, department, page, per_page)
        return self._page(step, DeveloperUsageRow)

    def iter_developer_usage(
        self,
        org: str,
        start: date | str,
        end: date | str,
        *,
        user_id: str | None = None,
        department: str | None = None,
        per_page: int = 100,
    ) -> Iterator[DeveloperUsageRow]:
        return self._follow(
            lambda p: self.developer_usage(
                org, start, end, user_id=user_id, department=department, page=p, per_page=per_page
            )
        )

    def members(self, org: str, *, page: int = 1, per_page: int = 100) -> Page[MemberItem]:
        return self._page(core.members(org, page, per_page), MemberItem)

    def iter_members(self, org: str, per_page: int = 100) -> Iterator[MemberItem]:
        return self._follow(lambda p: self.members(org, page=p, per_page=per_page))

    def departments(
        self, org: str, *, parent: str | None = None, page: int = 1, per_page: int = 100
    ) -> Page[DepartmentItem]:
        """The direct children of ``parent``, or the root departments."""
        return self._page(core.departments(org, parent, page, per_page), DepartmentItem)

    def iter_departments(
        self, org: str, *, parent: str | None = None, per_page: int = 100
    ) -> Iterator[DepartmentItem]:
        return self._follow(
            lambda p: self.departments(org, parent=parent, page=p, per_page=per_page)
        )

    def department(self, org: str, department: str) -> DepartmentItem:
        return self._json(core.department(org, department), DepartmentItem)

    @staticmethod
    def _follow(fetch: Any) -> Iterator[Any]:
        number: int | None = 1
        while number is not None:
            page: Page[Any] = fetch(number)
            yield from page.rows
            number = page.next_page if page.rows else None

    # -- environment statistics and app usage --------------------------------------------
    def environment_statistics(
        self,
        stats_type: StatsType,
        start: datetime | date | str,
        end: datetime | date | str,
        *,
        org_domain: str | None = None,
    ) -> Statistics:
        """``users``, ``developers`` or ``workspaces``; without ``org_domain``: the whole
        environment (the environment admin's token)."""
        step = core.environment_statistics(stats_type, start, end, org_domain)
        return self._json(step, Statistics)

    def app_usage_stats(
        self,
        *,
        day: date | str | None = None,
        app_ids: Sequence[str] | None = None,
        skip: int = 0,
        limit: int = 20,
    ) -> AppUsageStats:
        """One page of the token's organization's app usage on ``day`` (default T-1). The
        server allows one call per second per key: a 429 is waited out (``Retry-After``)."""
        return self._json(core.app_usage_stats(day, app_ids, skip, limit), AppUsageStats)

    def iter_app_usage(
        self,
        *,
        day: date | str | None = None,
        app_ids: Sequence[str] | None = None,
        limit: int = 100,
    ) -> Iterator[AppUsageItem]:
        """Every item of the day, following ``has_next``."""
        skip = 0
        while True:
            page = self.app_usage_stats(day=day, app_ids=app_ids, skip=skip, limit=limit)
            yield from page.items
            if not page.has_next or not page.items:
                return
            skip += len(page.items)

    # -- export --------------------------------------------------------------------------
    @overload
    def export(
        self,
        org: str,
        dataset: str,
        *,
        to: Literal["arrow", "pandas"],
        start: date | str,
        end: date | str,
        format: ExportFormat = "parquet",
    ) -> Any: ...

    @overload
    def export(
        self,
        org: str,
        dataset: str,
        *,
        to: str | os.PathLike[str],
        start: date | str,
        end: date | str,
        format: ExportFormat = "parquet",
    ) -> Path: ...

    def export(
        self,
        org: str,
        dataset: str,
        *,
        to: str | os.PathLike[str],
        start: date | str,
        end: date | str,
        format: ExportFormat = "parquet",
    ) -> Any:
        """``GET /api/v1/orgs/{org}/export/{dataset}``: streamed to the file ``to`` (a
        directory: the file the server names in ``Content-Disposition``), answering its path;
        or, with ``to="arrow"`` / ``"pandas"``, read into a pyarrow Table / pandas DataFrame
        (ImportError naming the package when it is not installed)."""
        step = core.export(org, dataset, start, end, format)
        response = core.run_sync(core.opened(step, self.retry, self._rng), self._stream, time.sleep)
        try:
            core.check(response)
            if to in ("arrow", "pandas"):
                return core.read_table(response.read(), format, to == "pandas")
            target = Path(to)
            if target.is_dir():
                target = target / core.export_file_name(response, dataset, format)
            with target.open("wb") as sink:
                for chunk in response.iter_bytes():
                    sink.write(chunk)
            return target
        finally:
            response.close()

    def _stream(self, step: Send) -> Outcome:
        return self._send(step, stream=True)
