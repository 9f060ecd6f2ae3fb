"""Client-side latency of Tally's three statistics APIs over loopback, one keep-alive client.

Each question is one HTTP request (the first page where the API pages), asked sequentially:
a few untimed warm-up requests, then up to ``count`` timed ones or ``seconds`` of them. Beside
the client's figures, each question reports the server's own time for the same requests (its
``Server-Timing`` header): the difference is the HTTP exchange and the client's parsing. A
question whose route is not there yet (404 with no JSON body of the API's family) is reported
as unavailable rather than timed; any other non-200 answer, or a request that times out
(``timeout`` seconds), is an error in the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from common import measure, summarize_ms
from plan import ORG_DOMAIN, ORG_ID
from queries import QUESTIONS, Question


@dataclass(frozen=True)
class Tokens:
    read: str
    ingest: str


def request_for(
    question: Question, end_day: date, subtree: str, root: str, token: str, member: str = ""
) -> tuple[str, str, dict[str, Any]]:
    """(method, path, httpx keyword arguments) of the API call that answers ``question``
    (``member``: the member of the one-member questions)."""
    start, end = question.window(end_day)
    if question.family == "member":
        who = {"userId": member} if question.scope == "member" else {"departmentId": subtree}
        return (
            "GET",
            f"/oapi/v1/lingma/organizations/{ORG_ID}/developerUsage",
            {
                "params": {
                    **who,
                    "startTime": start.isoformat(),
                    "endTime": end.isoformat(),
                    "page": 1,
                    "perPage": 100,
                },
                "headers": {"x-yunxiao-token": token},
            },
        )
    if question.family == "department":
        dept = subtree if question.scope == "subtree" else root
        return (
            "GET",
            f"/oapi/v1/lingma/organizations/{ORG_ID}/departmentUsage",
            {
                "params": {
                    "departmentId": dept,
                    "startTime": start.isoformat(),
                    "endTime": end.isoformat(),
                    "page": 1,
                    "perPage": 100,
                },
                "headers": {"x-yunxiao-token": token},
            },
        )
    if question.family == "environment":
        return (
            "GET",
            "/api/statistics/",
            {
                "params": {
                    "stats_type": question.scope,
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "org_domain": ORG_DOMAIN,
                },
                "headers": {"Authorization": f"Bearer {token}"},
            },
        )
    return (
        "POST",
        "/api/v1/app/usage_stats",
        {
            "json": {"date": end_day.isoformat(), "skip": 0, "limit": 20},
            "headers": {"Authorization": f"Bearer {token}"},
        },
    )


def _summary(question: Question, response: httpx.Response) -> dict[str, Any]:
    """A few facts of one answer, to check the API and the raw SQL looked at the same data."""
    body = response.json()
    if question.family in ("department", "member"):
        return {"x_total": response.headers.get("x-total"), "rows_on_page": len(body)}
    if question.family == "environment":
        inner = body.get(question.scope, {}) if isinstance(body, dict) else {}
        return {"keys": sorted(inner)[:8]}
    data = body.get("data", body) if isinstance(body, dict) else {}
    items = data.get("items", []) if isinstance(data, dict) else []
    has_next = data.get("has_next") if isinstance(data, dict) else None
    return {"items": len(items), "has_next": has_next}


def _server_seconds(response: httpx.Response) -> float:
    """The ``dur`` of the answer's ``Server-Timing: app;dur=<ms>`` header, in seconds."""
    header = response.headers.get("server-timing", "")
    _, _, milliseconds = header.partition("dur=")
    if not milliseconds:
        raise RuntimeError(f"the server sent no Server-Timing duration (got {header!r})")
    return float(milliseconds) / 1000


def time_apis(
    base_url: str,
    token: str,
    *,
    end_day: date,
    subtree: str,
    root: str,
    warmup: int,
    count: int,
    seconds: float,
    keys: set[str] | None = None,
    timeout: float = 120.0,
    member: str = "",
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        for question in QUESTIONS:
            if keys and question.key not in keys:
                continue
            method, path, kwargs = request_for(question, end_day, subtree, root, token, member)
            try:
                first = client.request(method, path, **kwargs)
            except httpx.HTTPError as exc:  # a timeout: report it, go on with the others
                results[question.key] = {"available": True, "error": repr(exc)}
                continue
            if first.status_code == 404 and "json" not in first.headers.get("content-type", ""):
                results[question.key] = {"available": False, "status": 404}
                continue
            if first.status_code != 200:
                results[question.key] = {
                    "available": True,
                    "error": f"HTTP {first.status_code}: {first.text[:300]}",
                }
                continue
            statuses: dict[int, int] = {}
            server_seconds: list[float] = []

            def ask(
                method: str = method,
                path: str = path,
                kwargs: dict[str, Any] = kwargs,
                statuses: dict[int, int] = statuses,
                server_seconds: list[float] = server_seconds,
            ) -> None:
                response = client.request(method, path, **kwargs)
                response.read()
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                server_seconds.append(_server_seconds(response))

            try:
                stats = measure(ask, warmup=warmup, count=count, seconds=seconds)
            except httpx.HTTPError as exc:
                results[question.key] = {"available": True, "error": repr(exc)}
                continue
            stats["server"] = summarize_ms(server_seconds[len(server_seconds) - stats["n"] :])
            stats["available"] = True
            stats["statuses"] = {str(k): v for k, v in statuses.items()}
            stats["answer"] = _summary(question, first)
            results[question.key] = stats
    return results
