"""Days that are not 24 hours long: the New York org's 2026-03-08 (23 h, clocks jump from 02:00
to 03:00) and 2026-11-01 (25 h, 02:00 comes back to 01:00).

"At the end of day D" is the instant of the next local midnight (contract section 1), not the
day's start plus 24 hours: on 03-08 that is 03-09T00:00-04:00 (04:00Z), on 11-01 it is
11-02T00:00-05:00 (05:00Z). Every fixture below sits within an hour of those instants, on the
side that a 24-hour day would get wrong.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.testclient import TestClient

from tests.conftest import Admin, FixedClock, bearer

NY = "America/New_York"
OLD = "2025-06-01T00:00:00-04:00"
APP_URL = "/api/v1/app/usage_stats"
ENV_URL = "/api/statistics/"


AUTUMN_NOW = datetime(2026, 11, 10, 17, 0, tzinfo=UTC)
SPRING_NOW = datetime(2026, 3, 15, 16, 0, tzinfo=UTC)  # T = 03-15 in New York: 03-08 is T-7


def build_globex(admin: Admin, clock: FixedClock) -> str:
    """Globex (New York). Apps and members created in the hour either side of the two ends;
    the clock is left on 2026-11-10 (every event lies in the past)."""
    clock.now = AUTUMN_NOW
    admin.org("globex", timezone=NY)
    admin.put("globex/members/tom", {"name": "Tom", "created_at": OLD})
    created = {
        # spring: the end of 03-08 is 03-09T00:00-04:00
        "spring_eve": "2026-03-08T23:30:00-04:00",  # exists at the end of 03-08
        "spring_dawn": "2026-03-09T00:30:00-04:00",  # does not (a 24 h day would end 01:00)
        # autumn: the end of 11-01 is 11-02T00:00-05:00
        "autumn_eve": "2026-11-01T23:30:00-05:00",  # exists (a 24 h day would end 23:00)
        "autumn_dawn": "2026-11-02T00:30:00-05:00",  # does not
    }
    for app_id, created_at in created.items():
        admin.put(
            f"globex/apps/{app_id}",
            {"name": app_id, "creator": "tom", "created_at": created_at},
        )
        admin.put(
            f"globex/members/{app_id}",
            {"name": app_id, "developer": True, "created_at": created_at},
        )
    events = [
        # spring_eve: a dash at 23:45 (counts on 03-08), another at 00:15 (the 9th's)
        _app("s1", "app_resource", "2026-03-08T23:45:00-04:00", "spring_eve", "dash", 1),
        _app("s2", "app_resource", "2026-03-09T00:15:00-04:00", "spring_eve", "dash", 1),
        # visits either side of the jump, written in the offset of their instant
        _app("s3", "app_visit", "2026-03-08T01:30:00-05:00", "spring_eve"),
        _app("s4", "app_edit", "2026-03-08T23:59:59.900-04:00", "spring_eve"),
        _app("s5", "app_visit", "2026-03-09T00:00:00-04:00", "spring_eve"),
        # autumn_eve: data at 23:50 (the 1st's, though 24 h after its midnight)
        _app("a1", "app_data", "2026-11-01T23:50:00-05:00", "autumn_eve", records=42),
        _app("a2", "app_visit", "2026-11-01T01:30:00-04:00", "autumn_eve"),  # before fall-back
        _app("a3", "app_edit", "2026-11-01T01:30:00-05:00", "autumn_eve"),  # the hour again
    ]
    response = admin.events("globex", events)
    assert response["rejected"] == [], response
    return admin.token("globex", "read")


def _app(event_id: str, kind: str, time: str, app: str, *extra: Any, **fields: Any) -> Any:
    body = {"id": event_id, "type": kind, "time": time, "member": "tom", "app": app, **fields}
    if extra:
        body["resource"], body["delta"] = extra
    return body


def app_usage(client: TestClient, token: str, day: str) -> Any:
    response = client.post(APP_URL, json={"date": day}, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


def metrics(**values: int) -> dict[str, int]:
    names = ["form_coop", "form_workflow", "dash", "etl", "aggregate", "public_link"]
    names += ["data_trigger", "automation", "bpa", "data"]
    return {"app": 1, **{name: values.get(name, 0) for name in names}}


def test_app_usage_on_the_short_spring_day(
    client: TestClient, admin: Admin, clock: FixedClock
) -> None:
    token = build_globex(admin, clock)
    clock.now = SPRING_NOW
    assert app_usage(client, token, "2026-03-08")["items"] == [
        {
            "app_id": "spring_eve",
            "app_name": "spring_eve",
            "creator": {"member_id": "tom", "name": "Tom"},
            "created_at": "2026-03-08T23:30:00-04:00",
            "last_edit_at": "2026-03-08T23:59:59-04:00",
            "last_visit_at": "2026-03-08T01:30:00-05:00",
            "metrics": metrics(dash=1),
        }
    ]
    next_day = app_usage(client, token, "2026-03-09")["items"]
    assert [(i["app_id"], i["metrics"]["dash"], i["last_visit_at"]) for i in next_day] == [
        ("spring_eve", 2, "2026-03-09T00:00:00-04:00"),
        ("spring_dawn", 0, None),
    ]


def test_app_usage_on_the_long_autumn_day(
    client: TestClient, admin: Admin, clock: FixedClock
) -> None:
    token = build_globex(admin, clock)
    items = app_usage(client, token, "2026-11-01")["items"]
    assert [i["app_id"] for i in items] == ["spring_eve", "spring_dawn", "autumn_eve"]
    autumn = items[2]
    assert autumn["created_at"] == "2026-11-01T23:30:00-05:00"
    assert autumn["metrics"] == metrics(data=42)
    assert autumn["last_visit_at"] == "2026-11-01T01:30:00-04:00"
    assert autumn["last_edit_at"] == "2026-11-01T01:30:00-05:00"


def environment(client: TestClient, token: str, kind: str, start: str, end: str) -> Any:
    params = {"stats_type": kind, "start": start, "end": end, "org_domain": "globex.example"}
    response = client.get(ENV_URL, params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


def test_total_users_at_the_end_of_each_dst_day(
    client: TestClient, admin: Admin, clock: FixedClock
) -> None:
    token = build_globex(admin, clock)
    spring = environment(client, token, "users", "2026-03-07", "2026-03-09")["users"]
    # tom, then spring_eve from the 8th, spring_dawn from the 9th
    assert [(r["day"], r["count"]) for r in spring["total_users"]] == [(7, 1), (8, 2), (9, 3)]
    autumn = environment(client, token, "developers", "2026-10-31", "2026-11-02")["developers"]
    # the four app-named members are developers; tom is not (no flag: false)
    assert [(r["day"], r["count"]) for r in autumn["total_developers"]] == [
        (31, 2),
        (1, 3),
        (2, 4),
    ]


def test_activity_late_on_a_dst_day_counts_on_that_day(
    client: TestClient, admin: Admin, clock: FixedClock
) -> None:
    token = build_globex(admin, clock)
    users = environment(client, token, "users", "2026-03-08", "2026-03-09")["users"]
    # tom's s1, s3, s4 are on the 8th; s2 and s5 on the 9th
    assert [(r["day"], r["count"]) for r in users["daily_active_users"]["per_day"]] == [
        (8, 1),
        (9, 1),
    ]
    autumn = environment(client, token, "users", "2026-11-01", "2026-11-02")["users"]
    assert [(r["day"], r["count"]) for r in autumn["daily_active_users"]["per_day"]] == [
        (1, 1),
        (2, 0),
    ]
