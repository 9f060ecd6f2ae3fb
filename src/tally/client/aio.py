"""The asyncio client (``httpx.AsyncClient``): :class:`AsyncTallyClient`, the same calls as
:class:`tally.client.TallyClient`, driving the same generators of :mod:`tally.client.core`."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
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
    Sleep,
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


async def run_async(call: Call[T], send: Callable[[Send], Awaitable[Outcome]]) -> T:
    """Drive ``call`` with an awaited ``send`` and ``asyncio.sleep``."""
    try:
        step = next(call)
        while True:
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                step = call.send(None)
            else:
                step = call.send(await send(step))
    except StopIteration as done:
        result: T = done.value
        return result


class AsyncTallyClient:
    """:class:`tally.client.TallyClient` for asyncio: every call is awaited, every
    ``iter_*`` is an async iterator. Use ``async with AsyncTallyClient(...) as tally:``."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        seed: int | None = None,
    ) -> None:
        self.token = token
        self.retry = retry or RetryPolicy()
        self._rng = random.Random(seed)
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"), timeout=timeout, transport=transport
        )

    # -- plumbing ------------------------------------------------------------------------
    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncTallyClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, step: Send, stream: bool = False) -> Outcome:
        request = self._http.build_request(
            step.method,
            step.path,
            params=step.params,
            content=step.content,
            headers=core.headers_for(step, self.token),
        )
        try:
            response = await self._http.send(request, stream=stream)
            if stream and not response.is_success:
                await response.aread()
            return response
        except httpx.TransportError as exc:
            return exc

    async def _stream(self, step: Send) -> Outcome:
        return await self._send(step, stream=True)

    async def _run(self, call: Call[T]) -> T:
        return await run_async(call, self._send)

    async def _json(self, step: Send, kind: type[T]) -> T:
        return await self._run(core.call_json(step, kind, self.retry, self._rng))

    async def _page(self, step: Send, kind: type[T]) -> Page[T]:
        return await self._run(core.call_page(step, kind, self.retry, self._rng))

    # -- the directory -------------------------------------------------------------------
    async def put_org(
        self, org: str, *, name: str, domain: str, timezone: str = "Asia/Shanghai"
    ) -> Organization:
        return await self._json(core.put_org(org, name, domain, timezone), Organization)

    async def put_department(
        self, org: str, department: str, *, name: str, parent: str | None = None
    ) -> Department:
        return await self._json(core.put_department(org, department, name, parent), Department)

    async def put_member(
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
        return await self._json(step, Member)

    async def put_workspace(
        self,
        org: str,
        workspace: str,
        *,
        name: str,
        created_at: datetime | str,
        deleted_at: datetime | str | None = None,
        members: Iterable[Mapping[str, Any]] = (),
    ) -> Workspace:
        step = core.put_workspace(
            org, workspace, name=name, created_at=created_at, deleted_at=deleted_at, members=members
        )
        return await self._json(step, Workspace)

    async def put_app(
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
        return await self._json(step, App)

    async def create_token(self, org: str, scopes: Sequence[str]) -> str:
        """Not retried: a second request would make a second token."""
        call = core.call_json(core.create_token(org, scopes), core.TokenAnswer, ONCE, self._rng)
        return (await self._run(call)).token

    # -- events --------------------------------------------------------------------------
    async def send_events(
        self,
        org: str,
        events: Iterable[Any],
        *,
        batch_events: int = DEFAULT_BATCH_EVENTS,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> SendSummary:
        """As :meth:`tally.client.TallyClient.send_events` (``events``: a plain iterable)."""
        call = core.send_events(
            org,
            events,
            max_events=batch_events,
            max_bytes=batch_bytes,
            policy=self.retry,
            rng=self._rng,
        )
        return await self._run(call)

    async def iter_events(
        self,
        org: str,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[Event]:
        cursor: str | None = None
        while True:
            step = core.list_events(org, start, end, page_size, cursor)
            page = await self._run(core.event_page(step, self.retry, self._rng))
            for event in page.events:
                yield event
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # -- the AI assistant's usage, members and departments -------------------------------
    async def department_usage(
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
        return await self._page(step, DepartmentUsageRow)

    async def iter_department_usage(
        self, org: str, department: str, start: date | str, end: date | str, per_page: int = 100
    ) -> AsyncIterator[DepartmentUsageRow]:
        number: int | None = 1
        while number is not None:
            page = await self.department_usage(
                org, department, start, end, page=number, per_page=per_page
            )
            for row in page.rows:
                yield row
            number = page.next_page if page.rows else None

    async def developer_usage(
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
        return await self._page(step, DeveloperUsageRow)

    async def iter_developer_usage(
        self,
        org: str,
        start: date | str,
        end: date | str,
        *,
        user_id: str | None = None,
        department: str | None = None,
        per_page: int = 100,
    ) -> AsyncIterator[DeveloperUsageRow]:
        number: int | None = 1
        while number is not None:
            page = await self.developer_usage(
                org,
                start,
                end,
                user_id=user_id,
                department=department,
                page=number,
                per_page=per_page,
            )
            for row in page.rows:
                yield row
            number = page.next_page if page.rows else None

    async def members(self, org: str, *, page: int = 1, per_page: int = 100) -> Page[MemberItem]:
        return await self._page(core.members(org, page, per_page), MemberItem)

    async def iter_members(self, org: str, per_page: int = 100) -> AsyncIterator[MemberItem]:
        number: int | None = 1
        while number is not None:
            page = await self.members(org, page=number, per_page=per_page)
            for row in page.rows:
                yield row
            number = page.next_page if page.rows else None

    async def departments(
        self, org: str, *, parent: str | None = None, page: int = 1, per_page: int = 100
    ) -> Page[DepartmentItem]:
        return await self._page(core.departments(org, parent, page, per_page), DepartmentItem)

    async def iter_departments(
        self, org: str, *, parent: str | None = None, per_page: int = 100
    ) -> AsyncIterator[DepartmentItem]:
        number: int | None = 1
        while number is not None:
            page = await self.departments(org, parent=parent, page=number, per_page=per_page)
            for row in page.rows:
                yield row
            number = page.next_page if page.rows else None

    async def department(self, org: str, department: str) -> DepartmentItem:
        return await self._json(core.department(org, department), DepartmentItem)

    # -- environment statistics and app usage --------------------------------------------
    async def environment_statistics(
        self,
        stats_type: StatsType,
        start: datetime | date | str,
        end: datetime | date | str,
        *,
        org_domain: str | None = None,
    ) -> Statistics:
        step = core.environment_statistics(stats_type, start, end, org_domain)
        return await self._json(step, Statistics)

    async def app_usage_stats(
        self,
        *,
        day: date | str | None = None,
        app_ids: Sequence[str] | None = None,
        skip: int = 0,
        limit: int = 20,
    ) -> AppUsageStats:
        return await self._json(core.app_usage_stats(day, app_ids, skip, limit), AppUsageStats)

    async def iter_app_usage(
        self,
        *,
        day: date | str | None = None,
        app_ids: Sequence[str] | None = None,
        limit: int = 100,
    ) -> AsyncIterator[AppUsageItem]:
        skip = 0
        while True:
            page = await self.app_usage_stats(day=day, app_ids=app_ids, skip=skip, limit=limit)
            for item in page.items:
                yield item
            if not page.has_next or not page.items:
                return
            skip += len(page.items)

    # -- export --------------------------------------------------------------------------
    @overload
    async def export(
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
    async def export(
        self,
        org: str,
        dataset: str,
        *,
        to: str | os.PathLike[str],
        start: date | str,
        end: date | str,
        format: ExportFormat = "parquet",
    ) -> Path: ...

    async def export(
        self,
        org: str,
        dataset: str,
        *,
        to: str | os.PathLike[str],
        start: date | str,
        end: date | str,
        format: ExportFormat = "parquet",
    ) -> Any:
        """As :meth:`tally.client.TallyClient.export` (the file is written as the body
        streams in; the blocking file writes are small chunks)."""
        step = core.export(org, dataset, start, end, format)
        response = await run_async(core.opened(step, self.retry, self._rng), self._stream)
        try:
            core.check(response)
            if to in ("arrow", "pandas"):
                return core.read_table(await response.aread(), format, to == "pandas")
            target = Path(to)
            if target.is_dir():
                target = target / core.export_file_name(response, dataset, format)
            with target.open("wb") as sink:
                async for chunk in response.aiter_bytes():
                    sink.write(chunk)
            return target
        finally:
            await response.aclose()
