"""Whatever a client sends, no API answers 5xx: random parameters and bodies on every route."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.conftest import ADMIN, Admin, bearer

TEXT = st.text(max_size=30) | st.sampled_from(
    [
        "2026-03-01",
        "2026-02-30",
        "0001-01-01",
        "9999-12-31",
        "2026-03-01T10:00:00+08:00",
        "-1",
        "0",
        "1",
        "100",
        "101",
        "1e3",
        "users",
        "developers",
        "workspaces",
        "d",
        "acme.example",
        "",
        " ",
        "null",
        "2026-03-01T10:00:00",
        "99999999999999999999",
    ]
)
PARAMS = st.dictionaries(
    st.sampled_from(
        [
            "departmentId",
            "startTime",
            "endTime",
            "page",
            "perPage",
            "stats_type",
            "start",
            "end",
            "org_domain",
            "limit",
            "cursor",
        ]
    ),
    TEXT,
    max_size=6,
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "date",
                    "app_ids",
                    "skip",
                    "limit",
                    "id",
                    "time",
                    "type",
                    "member",
                    "name",
                    "domain",
                    "timezone",
                    "scopes",
                    "parent",
                    "departments",
                    "created_at",
                    "deleted_at",
                    "effective_at",
                    "members",
                    "creator",
                ]
            ),
            inner,
            max_size=6,
        )
    ),
    max_leaves=12,
)
GETS = [
    "/oapi/v1/lingma/organizations/acme/departmentUsage",
    "/api/statistics/",
    "/api/v1/orgs/acme/events",
    "/api/v1/orgs/acme/members",
]
BODIES = [
    ("POST", "/api/v1/app/usage_stats"),
    ("POST", "/api/v1/orgs/acme/events"),
    ("PUT", "/api/v1/orgs/acme/members/m9"),
    ("PUT", "/api/v1/orgs/acme/workspaces/w9"),
    ("PUT", "/api/v1/orgs/acme/apps/a9"),
    ("POST", "/api/v1/orgs/acme/tokens"),
    ("PUT", "/api/v1/orgs/acme/departments/d9"),
]
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _org(admin: Admin) -> str:
    admin.org("acme")
    admin.put("acme/departments/d", {"name": "D"})
    admin.put("acme/members/m1", {"name": "A", "departments": ["d"]})
    return admin.token("acme", "read", "ingest", "admin")


def _headers(token: str) -> dict[str, str]:
    return {**bearer(token), "x-yunxiao-token": token}


@FUZZ
@given(path=st.sampled_from(GETS), params=PARAMS)
def test_random_query_parameters_never_give_5xx(
    client: TestClient, admin: Admin, path: str, params: dict[str, str]
) -> None:
    token = _org(admin) if not client.get("/api/v1/orgs", headers=bearer(ADMIN)).json() else ""
    for auth in (ADMIN, token or ADMIN):
        response = client.get(path, params=params, headers=_headers(auth))
        assert response.status_code < 500, response.text


@FUZZ
@given(route=st.sampled_from(BODIES), body=JSON)
def test_random_bodies_never_give_5xx(
    client: TestClient, admin: Admin, route: tuple[str, str], body: Any
) -> None:
    if not client.get("/api/v1/orgs", headers=bearer(ADMIN)).json():
        _org(admin)
    token = admin.token("acme", "read", "ingest", "admin")
    method, path = route
    response = client.request(method, path, json=body, headers=_headers(token))
    assert response.status_code < 500, response.text


VALUE = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | TEXT
EVENT = st.fixed_dictionaries(
    {
        "id": TEXT,
        "type": st.sampled_from(
            [
                "completion",
                "chat",
                "code",
                "activity",
                "workspace_activity",
                "app_visit",
                "app_resource",
                "app_data",
            ]
        ),
        "member": st.sampled_from(["m1", "m2"]),
        "time": st.sampled_from(
            [
                "2026-03-01T10:00:00+08:00",
                "2026-03-01T10:00:00Z",
                "1969-12-31T23:59:59Z",
                "2026-03-01",
                "10:00",
            ]
        ),
    },
    optional=dict.fromkeys(
        (
            "ide",
            "language",
            "lines_suggested",
            "accepted",
            "lines_accepted",
            "chat_type",
            "source",
            "lines_changed",
            "workspace",
            "app",
            "resource",
            "delta",
            "records",
        ),
        VALUE,
    ),
)


@FUZZ
@given(events=st.lists(EVENT, max_size=8))
def test_random_events_are_stored_or_rejected_never_5xx(
    client: TestClient, admin: Admin, events: list[dict[str, Any]]
) -> None:
    if not client.get("/api/v1/orgs", headers=bearer(ADMIN)).json():
        _org(admin)
    response = client.post("/api/v1/orgs/acme/events", json=events, headers=bearer(ADMIN))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] + answer["duplicates"] + len(answer["rejected"]) == len(events)
