"""The AI coding assistant's department usage API (``/oapi/v1/lingma/...``), byte-compatible with
the vendor page: ``x-yunxiao-token``, day rows, ``x-*`` paging headers, ``errorCode`` bodies."""

from __future__ import annotations

import re
from datetime import date, timedelta

import msgspec
from starlette.responses import Response

from tally.api.base import Call, Facade, JSONResponse, Operation, Param
from tally.engine.department_usage import (
    DepartmentDay,
    DepartmentUsagePage,
    DepartmentUsageQuery,
    department_usage,
)
from tally.errors import BadRequest, TallyError
from tally.timeutil import parse_date, to_micros

PATH = "/oapi/v1/lingma/organizations/{organizationId}/departmentUsage"
ERROR_CODES = frozenset(
    {
        "BadRequest",
        "Unauthorized",
        "InvalidTokenError",
        "Forbidden",
        "NotFound",
        "TooManyRequests",
        "InternalServerError",
    }
)
PER_PAGE_MAX = 100
_DIGITS = re.compile(r"^[0-9]+$")


# The wire shapes: fields in the vendor example's (alphabetical) order, camelCase on the wire.
class ChattingEntry(msgspec.Struct, rename="camel"):
    active_developer: int
    chat_turns: int
    chat_turns_accepted: int
    chat_type: str
    ide: str


class CodingEntry(msgspec.Struct, rename="camel"):
    accept_assistant_newline_count: int
    active_developer: int
    language: str
    lines_accepted: int
    lines_changed: int


class CompletionEntry(msgspec.Struct, rename="camel"):
    active_developer: int
    count_accepted: int
    count_suggested: int
    ide: str
    language: str
    lines_accepted: int
    lines_suggested: int


class Breakdown(msgspec.Struct):
    chatting: list[ChattingEntry]
    coding: list[CodingEntry]
    completion: list[CompletionEntry]


class DepartmentUsageRow(msgspec.Struct, rename="camel"):
    active_developer: int
    active_developer_chat: int
    active_developer_completion: int
    breakdown: Breakdown
    date: int
    department_id: str
    total_chat_turns: int
    total_chat_turns_accepted: int
    total_count_accepted_completion: int
    total_count_suggested_completion: int
    total_lines_accepted: int
    total_lines_accepted_chat: int
    total_lines_accepted_completion: int
    total_lines_changed: int
    total_lines_suggested_completion: int


class LingmaAPI(Facade):
    name = "lingma"
    tag = "Lingma"

    def render_error(self, error: TallyError, call: Call | None, request_id: str) -> Response:
        code = error.code if error.code in ERROR_CODES else "InternalServerError"
        body = {"errorCode": code, "errorMessage": error.detail, "requestId": request_id}
        return JSONResponse(body, status_code=error.status)

    def department_usage(self, call: Call) -> Response:
        org_id = call.path("organizationId")
        token = self.tally.access.authenticate(call.header("x-yunxiao-token"))
        exists = token.org is not None or self.tally.directory.get(org_id) is not None
        self.tally.access.authorize(token, org_id, "read", org_exists=exists)
        query = self._query(call)
        page = department_usage(self.tally.event_store, self.tally.directory.require(org_id), query)
        rows = [_row(day, query.department_id) for day in page.days]
        return JSONResponse(rows, headers=_headers(query, page))

    def _query(self, call: Call) -> DepartmentUsageQuery:
        department_id = _required(call, "departmentId")
        first, last = _date(call, "startTime"), _date(call, "endTime")
        if last < first:
            raise BadRequest("endTime must not be before startTime", field="endTime")
        max_days = self.tally.settings.lingma_max_days
        if (last - first).days >= max_days:
            raise BadRequest(
                f"the window from startTime to endTime may span at most {max_days} days",
                field="endTime",
            )
        return DepartmentUsageQuery(
            department_id=department_id,
            first_day=first,
            last_day=last,
            page=_integer(call, "page", 1, 1, None),
            per_page=_integer(call, "perPage", PER_PAGE_MAX, 1, PER_PAGE_MAX),
        )

    def operations(self) -> list[Operation]:
        return [
            Operation(
                "GET",
                PATH,
                self.department_usage,
                "AI coding assistant usage of a department (and its sub-departments) per day",
                params=[
                    Param("organizationId", "path", True, "Organization id"),
                    Param("departmentId", required=True, description="Department id"),
                    Param("startTime", required=True, description="First day, YYYY-MM-DD"),
                    Param("endTime", required=True, description="Last day, YYYY-MM-DD"),
                    Param(
                        "page",
                        description="Page number (default 1)",
                        schema={"type": "integer", "minimum": 1, "default": 1},
                    ),
                    Param(
                        "perPage",
                        description="Rows per page (default 100)",
                        schema={"type": "integer", "minimum": 1, "maximum": 100, "default": 100},
                    ),
                ],
                response=list[DepartmentUsageRow],
                auth="x-yunxiao-token",
            )
        ]

    @classmethod
    def demo_curl(
        cls, *, base: str, org: str, domain: str, department: str, token: str, today: date
    ) -> str:
        path = PATH.replace("{organizationId}", org)
        week = f"startTime={today - timedelta(days=6)}&endTime={today}"
        query = f"departmentId={department}&{week}"
        return f"curl -si -H 'x-yunxiao-token: {token}' '{base}{path}?{query}&page=1&perPage=100'"


def _required(call: Call, name: str) -> str:
    value = call.query(name)
    if not value:
        raise BadRequest(f"{name} is required", field=name)
    return value


def _date(call: Call, name: str) -> date:
    try:
        return parse_date(_required(call, name))
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}", field=name) from exc


def _integer(call: Call, name: str, default: int, low: int, high: int | None) -> int:
    raw = call.query(name)
    if raw is None:
        return default
    bounds = f"from {low} to {high}" if high is not None else f">= {low}"
    problem = BadRequest(f"{name} must be an integer {bounds}", field=name)
    try:
        value = int(raw) if _DIGITS.match(raw) else None
    except ValueError as exc:  # more digits than Python converts
        raise problem from exc
    if value is None or value < low or (high is not None and value > high):
        raise problem
    return value


def _headers(query: DepartmentUsageQuery, page: DepartmentUsagePage) -> dict[str, str]:
    """The vendor's paging headers (``x-request-id`` is added for every answer by the base)."""
    return {
        "x-next-page": str(query.page + 1) if page.days else "",
        "x-page": str(query.page),
        "x-per-page": str(query.per_page),
        "x-prev-page": str(query.page - 1),
        "x-total": str(page.total),
        "x-total-pages": str(page.total_pages),
    }


def _row(day: DepartmentDay, department_id: str) -> DepartmentUsageRow:
    usage, totals = day.usage, day.totals
    return DepartmentUsageRow(
        active_developer=usage.active_developers,
        active_developer_chat=usage.active_chat,
        active_developer_completion=usage.active_completion,
        breakdown=Breakdown(
            chatting=[
                ChattingEntry(
                    active_developer=c.active_developers,
                    chat_turns=c.turns,
                    chat_turns_accepted=c.turns_accepted,
                    chat_type=c.chat_type,
                    ide=c.ide,
                )
                for c in usage.chatting
            ],
            coding=[
                CodingEntry(
                    accept_assistant_newline_count=c.lines_accepted_chat,
                    active_developer=c.active_developers,
                    language=c.language,
                    lines_accepted=c.lines_accepted,
                    lines_changed=c.lines_changed,
                )
                for c in usage.coding
            ],
            completion=[
                CompletionEntry(
                    active_developer=c.active_developers,
                    count_accepted=c.count_accepted,
                    count_suggested=c.count_suggested,
                    ide=c.ide,
                    language=c.language,
                    lines_accepted=c.lines_accepted,
                    lines_suggested=c.lines_suggested,
                )
                for c in usage.completion
            ],
        ),
        date=to_micros(day.starts_at) // 1000,
        department_id=department_id,
        total_chat_turns=totals.chat_turns,
        total_chat_turns_accepted=totals.chat_turns_accepted,
        total_count_accepted_completion=totals.count_accepted_completion,
        total_count_suggested_completion=totals.count_suggested_completion,
        total_lines_accepted=totals.lines_accepted,
        total_lines_accepted_chat=totals.lines_accepted_chat,
        total_lines_accepted_completion=totals.lines_accepted_completion,
        total_lines_changed=totals.lines_changed,
        total_lines_suggested_completion=totals.lines_suggested_completion,
    )
