"""Event ingest: every rule of the contract's section 2, idempotency, size limit, listing."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from tally.api.app import create_app
from tally.service import Tally
from tally.settings import Settings
from tests.conftest import ADMIN, Admin, bearer

T = "2026-03-01T10:00:00+08:00"


@pytest.fixture
def org(admin: Admin) -> Admin:
    admin.org("acme")
    admin.put("acme/members/m1", {"name": "Ann", "created_at": "2026-01-01T00:00:00+08:00"})
    admin.put("acme/workspaces/w1", {"name": "W", "created_at": "2026-01-01T00:00:00+08:00"})
    admin.put(
        "acme/apps/a1", {"name": "CRM", "creator": "m1", "created_at": "2026-01-01T00:00:00+08:00"}
    )
    return admin


def ev(event_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"id": event_id, "time": T, "type": kind, "member": "m1", **fields}


VALID = [
    ev(
        "c1",
        "completion",
        ide="vscode",
        language="python",
        lines_suggested=4,
        accepted=True,
        lines_accepted=3,
    ),
    ev("c2", "completion", ide="vscode", language="python", lines_suggested=4, accepted=False),
    ev("h1", "chat", ide="jetbrains", chat_type="EXPLAIN_CODE", accepted=True),
    ev("h2", "chat", ide="jetbrains", chat_type="my-command", accepted=False),
    ev("k1", "code", language="java", source="chat", lines_accepted=5, lines_changed=7),
    ev("a1", "activity"),
    ev("w1", "workspace_activity", workspace="w1"),
    ev("v1", "app_visit", app="a1"),
    ev("v2", "app_edit", app="a1"),
    ev("r1", "app_resource", app="a1", resource="dash", delta=-2),
    ev("d1", "app_data", app="a1", records=1200),
]

INVALID = [
    (
        ev(
            "x1",
            "completion",
            ide="vscode",
            language="py",
            lines_suggested=1,
            accepted=True,
            lines_accepted=-1,
        ),
        "lines_accepted must be an integer >= 0",
    ),
    (
        ev(
            "x2",
            "completion",
            ide="vscode",
            language="py",
            lines_suggested=1,
            accepted="yes",
            lines_accepted=0,
        ),
        "accepted must be a boolean (true or false)",
    ),
    (
        ev("x3", "completion", ide="vscode", language="py", lines_suggested=1.5, accepted=True),
        "lines_suggested must be an integer >= 0",
    ),
    (
        ev(
            "x4",
            "completion",
            ide="vscode",
            language="py",
            lines_suggested=3,
            accepted=False,
            lines_accepted=2,
        ),
        "lines_accepted must be 0 when accepted is false",
    ),
    (
        ev("x5", "chat", ide="vscode", chat_type="WRITE_POEM", accepted=True),
        'chat_type "WRITE_POEM" is neither one of CODE_GENERATE_COMMENT, EXPLAIN_CODE, FREE_INPUT, '
        "GENERATE_TESTCASE, OPTIMIZE_CODE nor a lower-case custom command",
    ),
    (
        ev("x6", "code", language="go", source="paste", lines_accepted=1, lines_changed=1),
        "source must be one of: completion, chat",
    ),
    (
        ev("x7", "app_resource", app="a1", resource="widgets", delta=1),
        "resource must be one of: form_coop, form_workflow, dash, etl, aggregate, public_link, "
        "data_trigger, automation, bpa",
    ),
    ({**ev("x8", "activity"), "member": "m-17"}, 'unknown member "m-17"'),
    (ev("x9", "workspace_activity", workspace="nope"), 'unknown workspace "nope"'),
    (ev("x10", "app_visit", app="nope"), 'unknown app "nope"'),
    (
        {**ev("x11", "activity"), "time": "2026-03-01T10:00:00"},
        "time must be an RFC 3339 date-time with an offset, e.g. 2026-03-01T09:15:02+08:00",
    ),
    (
        {**ev("x12", "activity"), "time": "2026-03-15T12:05:01+08:00"},
        "time is more than 5 minutes in the future",
    ),
    (
        ev("x13", "teleport"),
        "type must be one of: completion, chat, code, activity, "
        "workspace_activity, app_visit, app_edit, app_resource, app_data",
    ),
    ({"id": "x14", "time": T, "member": "m1"}, "type is required"),
    ({**ev("x15", "activity"), "mood": "happy"}, 'unknown field "mood" for this event type'),
    (ev("x16", "chat", ide="vscode", accepted=True), "chat_type is required"),
    ("just a string", "each event must be a JSON object"),
    (ev("x18", "app_data", app="a1", records=-5), "records must be an integer >= 0"),
    (
        {**ev("x19", "activity"), "id": ""},
        "id must be a non-empty string of at most 200 characters, without control characters",
    ),
]


def post(client: TestClient, body: Any, **headers: str) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(
        "/api/v1/orgs/acme/events",
        content=content,
        headers={**bearer(ADMIN), "content-type": "application/json", **headers},
    )
    return response


def stored_ids(client: TestClient) -> list[str]:
    events = client.get("/api/v1/orgs/acme/events?limit=1000", headers=bearer(ADMIN)).json()
    return sorted(e["id"] for e in events["events"])


def test_every_valid_type_is_stored(client: TestClient, org: Admin) -> None:
    assert post(client, VALID).json() == {"accepted": 11, "duplicates": 0, "rejected": []}
    assert stored_ids(client) == sorted(e["id"] for e in VALID)


def test_stored_events_read_back_as_sent(client: TestClient, org: Admin) -> None:
    post(client, [VALID[0], VALID[9]])
    listed = client.get("/api/v1/orgs/acme/events", headers=bearer(ADMIN)).json()
    assert listed == {
        "events": [
            {
                "id": "c1",
                "time": T,
                "type": "completion",
                "member": "m1",
                "ide": "vscode",
                "language": "python",
                "accepted": True,
                "lines_suggested": 4,
                "lines_accepted": 3,
            },
            {
                "id": "r1",
                "time": T,
                "type": "app_resource",
                "member": "m1",
                "app": "a1",
                "resource": "dash",
                "delta": -2,
            },
        ],
        "next_cursor": None,
    }


@pytest.mark.parametrize(("item", "reason"), INVALID)
def test_each_bad_item_gets_its_reason_and_the_rest_is_stored(
    client: TestClient, org: Admin, item: Any, reason: str
) -> None:
    answer = post(client, [VALID[5], item, VALID[6]]).json()
    item_id = item.get("id") if isinstance(item, dict) else None
    assert answer == {
        "accepted": 2,
        "duplicates": 0,
        "rejected": [{"index": 1, "id": item_id, "error": reason}],
    }
    assert stored_ids(client) == ["a1", "w1"]


def test_same_batch_twice_stores_each_event_once(client: TestClient, org: Admin) -> None:
    assert post(client, VALID).json()["accepted"] == 11
    assert post(client, VALID).json() == {"accepted": 0, "duplicates": 11, "rejected": []}
    assert len(stored_ids(client)) == 11


def test_known_id_is_a_duplicate_even_with_other_content(client: TestClient, org: Admin) -> None:
    post(client, [ev("same", "activity")])
    changed = {**ev("same", "workspace_activity", workspace="w1")}
    assert post(client, [changed]).json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    listed = client.get("/api/v1/orgs/acme/events", headers=bearer(ADMIN)).json()["events"]
    assert [e["type"] for e in listed] == ["activity"]  # the first stays


def test_duplicate_inside_one_batch(client: TestClient, org: Admin) -> None:
    answer = post(client, [ev("e", "activity"), ev("e", "activity"), ev("f", "activity")]).json()
    assert answer == {"accepted": 2, "duplicates": 1, "rejected": []}


def test_ids_are_per_organization(client: TestClient, org: Admin) -> None:
    org.org("globex")
    org.put("globex/members/m1", {"name": "G"})
    post(client, [ev("e", "activity")])
    assert org.events("globex", [ev("e", "activity")])["accepted"] == 1


def test_duplicates_survive_a_restart(org: Admin, client: TestClient) -> None:
    post(client, VALID[:5])
    first: Tally = client.app.state.tally  # type: ignore[attr-defined]
    settings = first.settings  # the same stores, whichever configuration
    first.close()
    with Tally(settings) as reopened:
        reopened.access.bootstrap_admin(settings.admin_token)
        with TestClient(create_app(reopened)) as again:
            answer = post(again, VALID)
            assert answer.json() == {"accepted": 6, "duplicates": 5, "rejected": []}
            assert len(stored_ids(again)) == 11


def test_ndjson_with_blank_and_malformed_lines(client: TestClient, org: Admin) -> None:
    lines = [
        json.dumps(ev("n1", "activity")),
        "",
        "{not json",
        json.dumps(ev("n2", "activity")),
        "",
    ]
    answer = post(client, "\n".join(lines).encode(), **{"content-type": "application/x-ndjson"})
    assert answer.json() == {
        "accepted": 2,
        "duplicates": 0,
        "rejected": [{"index": 2, "id": None, "error": "the item is not valid JSON"}],
    }


def test_body_that_is_not_an_array_changes_nothing(client: TestClient, org: Admin) -> None:
    for body in (b'{"id": "x"}', b"[1, 2", b""):
        response = post(client, body)
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
    assert stored_ids(client) == []


def test_unsupported_media_type(client: TestClient, org: Admin) -> None:
    response = post(client, b"<events/>", **{"content-type": "application/xml"})
    assert response.status_code == 415
    assert stored_ids(client) == []


def test_body_over_the_limit_is_413_and_stores_nothing(
    settings: Settings, org: Admin, client: TestClient
) -> None:
    body = json.dumps([ev(f"big{i}", "activity") for i in range(40)]).encode()
    small = dataclasses.replace(settings, max_body_bytes=len(body) - 1)
    tally: Tally = client.app.state.tally  # type: ignore[attr-defined]
    tally.settings = small
    with TestClient(create_app(tally)) as limited:
        response = post(limited, body)
        assert response.status_code == 413
        assert response.json()["title"] == "Payload too large"
        chunked = limited.post(
            "/api/v1/orgs/acme/events",
            content=iter([body[:100], body[100:]]),
            headers={**bearer(ADMIN), "content-type": "application/json"},
        )
        assert chunked.status_code == 413
    assert stored_ids(client) == []


def test_events_list_pages_with_a_cursor(client: TestClient, org: Admin) -> None:
    post(client, VALID)
    first = client.get("/api/v1/orgs/acme/events?limit=4", headers=bearer(ADMIN)).json()
    assert len(first["events"]) == 4
    second = client.get(
        f"/api/v1/orgs/acme/events?limit=100&cursor={first['next_cursor']}", headers=bearer(ADMIN)
    ).json()
    assert len(second["events"]) == 7
    assert second["next_cursor"] is None
    ids = [e["id"] for e in first["events"] + second["events"]]
    assert sorted(ids) == sorted(e["id"] for e in VALID)


def test_events_list_validates_its_parameters(client: TestClient, org: Admin) -> None:
    for query in ("limit=0", "limit=abc", "start=yesterday", "cursor=zzz"):
        response = client.get(f"/api/v1/orgs/acme/events?{query}", headers=bearer(ADMIN))
        assert response.status_code == 400, query
