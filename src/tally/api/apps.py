"""The app resource usage API (``POST /api/v1/app/usage_stats``): per-app metrics for one day,
skip/limit paging, a per-key rate limit, and errors as ``{"code": <int>, "msg": "..."}``."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, ClassVar

import msgspec
from starlette.responses import Response

from tally.api.base import Call, Facade, JSONResponse, Operation, decode_json
from tally.engine.app_usage import (
    AppMetrics,
    AppUsage,
    AppUsagePage,
    AppUsageQuery,
    app_usage,
)
from tally.errors import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NotFound,
    RateLimited,
    StoreBusy,
    TallyError,
    TooLarge,
    Unauthorized,
)
from tally.ratelimit import RateLimiter
from tally.service import Tally
from tally.timeutil import format_instant, parse_date

PATH = "/api/v1/app/usage_stats"

#: The machine codes of this family (8303 is the vendor's; the others are Tally's choice).
ERROR_CODES: dict[type[TallyError], int] = {
    BadRequest: 4000,
    Unauthorized: 4010,
    InvalidToken: 4011,
    Forbidden: 4030,
    NotFound: 4040,
    TooLarge: 4130,
    RateLimited: 8303,
    StoreBusy: 5030,
}


def error_code(error: TallyError) -> int:
    """The code of the nearest class of ``error`` in the table, else its HTTP status x 10."""
    known = (ERROR_CODES[kind] for kind in type(error).__mro__ if kind in ERROR_CODES)
    return next(known, error.status * 10)


class AppUsageStatsRequest(msgspec.Struct, kw_only=True):
    """The request body; every field is optional and ``null`` means omitted."""

    date: str | None = None
    app_ids: list[str] | None = None
    skip: int | None = None
    limit: int | None = None


class AppUsageCreator(msgspec.Struct, kw_only=True):
    member_id: str
    name: str


class AppUsageItem(msgspec.Struct, kw_only=True):
    app_id: str
    app_name: str
    creator: AppUsageCreator
    created_at: str
    last_edit_at: str | None
    last_visit_at: str | None
    metrics: AppMetrics


class AppUsageStatsAnswer(msgspec.Struct, kw_only=True):
    date: str
    has_next: bool
    items: list[AppUsageItem]


class AppsAPI(Facade):
    name = "apps"
    tag = "App resource usage"
    error_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["code", "msg"],
        "properties": {"code": {"type": "integer"}, "msg": {"type": "string"}},
    }

    def __init__(self, tally: Tally) -> None:
        super().__init__(tally)
        settings = tally.settings
        self.limiter = RateLimiter(
            settings.apps_rate_limit_per_second,
            settings.rate_limit_clock or settings.clock,
            tally.rate_limit_state,
        )

    # -- errors ----------------------------------------------------------------------------
    def render_error(self, error: TallyError, call: Call | None, request_id: str) -> Response:
        return JSONResponse(
            {"code": error_code(error), "msg": error.detail}, status_code=error.status
        )

    # -- the operation ---------------------------------------------------------------------
    def usage_stats(self, call: Call) -> Response:
        token = self.tally.access.authenticate(call.bearer())
        self.limiter.hit(token.id)
        if token.org is None:
            raise Forbidden(
                "the environment admin's token names no organization: call this API with an"
                " organization token holding the read scope"
            )
        self.tally.access.authorize(token, token.org, "read", org_exists=True)
        directory = self.tally.directory.require(token.org)
        query = self._query(call.body)
        page = app_usage(
            self.tally.event_store,
            directory,
            query,
            now=self.tally.settings.clock(),
            max_days_back=self.tally.settings.apps_max_days_back,
        )
        return JSONResponse(_answer(page, directory.org.timezone))

    def _query(self, body: bytes) -> AppUsageQuery:
        """The body, validated: types by msgspec, ranges against the settings."""
        settings = self.tally.settings
        request = _decode(body, settings.apps_max_ids, settings.apps_page_max)
        skip = 0 if request.skip is None else request.skip
        limit = settings.apps_page_default if request.limit is None else request.limit
        app_ids = tuple(request.app_ids or ())
        if skip < 0:
            raise BadRequest(_RULES["skip"], field="skip")
        if not 1 <= limit <= settings.apps_page_max:
            raise BadRequest(_RULES["limit"].format(high=settings.apps_page_max), field="limit")
        if len(app_ids) > settings.apps_max_ids:
            raise BadRequest(_RULES["app_ids"].format(most=settings.apps_max_ids), field="app_ids")
        return AppUsageQuery(day=_day(request.date), app_ids=app_ids, skip=skip, limit=limit)

    # -- the table -------------------------------------------------------------------------
    def operations(self) -> list[Operation]:
        return [
            Operation(
                "POST",
                PATH,
                self.usage_stats,
                "App resource usage of the token's organization for one day (T-1 by default)",
                body=AppUsageStatsRequest,
                response=AppUsageStatsAnswer,
                max_body=self.tally.settings.apps_max_body_bytes,
                errors=(429,),
                body_required=False,  # every field is optional; no body: the defaults
            )
        ]

    @classmethod
    def demo_curl(
        cls, *, base: str, org: str, domain: str, department: str, token: str, today: date
    ) -> str:
        """One ready curl line: the first five apps of yesterday."""
        day = (today - timedelta(days=1)).isoformat()
        return (
            f"curl -s -X POST -H 'Authorization: Bearer {token}'"
            f" -H 'Content-Type: application/json'"
            f""" -d '{{"date": "{day}", "skip": 0, "limit": 5}}' {base}{PATH}"""
        )


_RULES = {
    "date": "date must be a string in yyyy-MM-dd format (empty or null: T-1)",
    "app_ids": "app_ids must be an array of at most {most} app id strings",
    "skip": "skip must be an integer >= 0",
    "limit": "limit must be an integer from 1 to {high}",
}


def _decode(body: bytes, most: int, high: int) -> AppUsageStatsRequest:
    """Decode the body (empty means ``{}``); a type error names the field and its rule."""
    try:
        return decode_json(body if body.strip() else b"{}", AppUsageStatsRequest)
    except BadRequest as exc:
        if exc.field not in _RULES:
            not_json = exc.detail.startswith("the body")
            raise BadRequest(exc.detail if not_json else "the body must be a JSON object") from exc
        rule = _RULES[exc.field].format(most=most, high=high)
        raise BadRequest(rule, field=exc.field) from exc


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return parse_date(text)
    except ValueError as exc:
        raise BadRequest(
            f'date "{text}" is not a valid date in yyyy-MM-dd format', field="date"
        ) from exc


def _answer(page: AppUsagePage, tz: str) -> AppUsageStatsAnswer:
    return AppUsageStatsAnswer(
        date=page.day.isoformat(),
        has_next=page.has_next,
        items=[_item(usage, tz) for usage in page.items],
    )


def _item(usage: AppUsage, tz: str) -> AppUsageItem:
    app = usage.app
    return AppUsageItem(
        app_id=app.id,
        app_name=app.name,
        creator=AppUsageCreator(member_id=app.creator, name=usage.creator_name),
        created_at=format_instant(app.created_at, tz),
        last_edit_at=_time(usage.last_edit_at, tz),
        last_visit_at=_time(usage.last_visit_at, tz),
        metrics=usage.metrics,
    )


def _time(instant: datetime | None, tz: str) -> str | None:
    return None if instant is None else format_instant(instant, tz)
