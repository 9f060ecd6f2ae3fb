"""The department usage API against hand-worked fixtures: every expected answer is written out
here, worked by hand from the events each test sends (dates are local midnights in epoch ms)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from tally.engine.department_usage import member_spans
from tally.model.directory import Member, MemberVersion
from tally.stores.base import MemberSpan
from tally.timeutil import from_micros
from tests.conftest import ADMIN, Admin

URL = "/oapi/v1/lingma/organizations/{org}/departmentUsage"

# Local midnights as epoch milliseconds, worked out once by hand.
SH_2026_01_20 = 1768838400000  # 2026-01-20T00:00:00+08:00
SH_2026_03_02 = 1772380800000  # 2026-03-02T00:00:00+08:00
SH_2026_03_03 = 1772467200000
SH_2026_03_04 = 1772553600000
SH_2026_03_05 = 1772640000000
SH_2026_03_06 = 1772726400000
NY_2026_02_10 = 1770699600000  # 2026-02-10T00:00:00-05:00
NY_2026_02_11 = 1770786000000  # 2026-02-11T00:00:00-05:00
NY_2026_03_08 = 1772946000000  # 2026-03-08T00:00:00-05:00 (clocks go forward at 02:00)
NY_2026_03_09 = 1773028800000  # 2026-03-09T00:00:00-04:00


# -- building fixtures through the real API ------------------------------------------------


def usage(client: TestClient, org: str, token: str | None, **params: str) -> httpx.Response:
    headers = {} if token is None else {"x-yunxiao-token": token}
    response: httpx.Response = client.get(URL.format(org=org), params=params, headers=headers)
    return response


def departments(admin: Admin, org: str, tree: dict[str, str | None]) -> None:
    """Departments by id -> parent, parents first."""
    for dept, parent in tree.items():
        admin.put(f"{org}/departments/{dept}", {"name": dept.title(), "parent": parent})


def member(
    admin: Admin, org: str, member_id: str, depts: list[str], effective_at: str | None = None
) -> None:
    body: dict[str, Any] = {
        "name": member_id.title(),
        "departments": depts,
        "created_at": "2026-01-01T00:00:00+08:00",
    }
    if effective_at is not None:
        body["effective_at"] = effective_at
    admin.put(f"{org}/members/{member_id}", body)


def send(admin: Admin, org: str, events: list[dict[str, Any]]) -> None:
    result = admin.events(org, events)
    assert result == {"accepted": len(events), "duplicates": 0, "rejected": []}


def completion(
    event_id: str,
    time: str,
    who: str,
    suggested: int = 1,
    accepted: int | None = None,
    ide: str = "vscode",
    language: str = "java",
) -> dict[str, Any]:
    """A completion; ``accepted`` is the lines accepted, ``None`` for a rejected suggestion."""
    return {
        "id": event_id,
        "time": time,
        "type": "completion",
        "member": who,
        "ide": ide,
        "language": language,
        "lines_suggested": suggested,
        "accepted": accepted is not None,
        "lines_accepted": accepted or 0,
    }


def chat(
    event_id: str, time: str, who: str, chat_type: str, accepted: bool, ide: str = "vscode"
) -> dict[str, Any]:
    return {
        "id": event_id,
        "time": time,
        "type": "chat",
        "member": who,
        "ide": ide,
        "chat_type": chat_type,
        "accepted": accepted,
    }


def code(
    event_id: str, time: str, who: str, source: str, accepted: int, changed: int, language: str
) -> dict[str, Any]:
    return {
        "id": event_id,
        "time": time,
        "type": "code",
        "member": who,
        "language": language,
        "source": source,
        "lines_accepted": accepted,
        "lines_changed": changed,
    }


#: ``x-*`` headers that are not the vendor's paging: the request id (checked on its own) and
#: the security headers every answer carries (tests/test_security_headers.py).
NOT_PAGING = {"x-request-id", "x-content-type-options", "x-frame-options"}


def paging(response: httpx.Response) -> dict[str, str]:
    """The vendor's ``x-*`` paging headers."""
    return {k: v for k, v in response.headers.items() if k.startswith("x-") and k not in NOT_PAGING}


def assert_request_id(response: httpx.Response) -> str:
    request_id = response.headers["x-request-id"]
    assert str(uuid.UUID(request_id)) == request_id
    return request_id


@pytest.fixture
def acme(admin: Admin) -> str:
    """Acme (UTC+8): eng with children eng-web and eng-app; sales beside it. A read token."""
    admin.org("acme")
    departments(admin, "acme", {"eng": None, "eng-web": "eng", "eng-app": "eng", "sales": None})
    return admin.token("acme", "read")


# -- what the numbers mean -----------------------------------------------------------------


def test_member_in_two_departments_of_the_subtree_counted_once(
    client: TestClient, admin: Admin, acme: str
) -> None:
    member(admin, "acme", "alice", ["eng-web", "eng-app"])
    member(admin, "acme", "bob", ["eng-web"])
    member(admin, "acme", "carl", ["sales"])
    send(
        admin,
        "acme",
        [
            completion("a1", "2026-03-02T10:00:00+08:00", "alice", suggested=4, accepted=3),
            chat("a2", "2026-03-02T10:05:00+08:00", "alice", "FREE_INPUT", accepted=True),
            code("a3", "2026-03-02T10:06:00+08:00", "alice", "chat", 10, 12, "java"),
            completion("b1", "2026-03-02T11:00:00+08:00", "bob", suggested=2),
            code("b2", "2026-03-02T11:01:00+08:00", "bob", "completion", 5, 5, "java"),
            completion("c1", "2026-03-02T12:00:00+08:00", "carl", suggested=7, accepted=7),
        ],
    )

    response = usage(
        client, "acme", acme, departmentId="eng", startTime="2026-03-02", endTime="2026-03-02"
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    # Byte for byte: the vendor example's key order (alphabetical), integers, epoch ms.
    assert response.content == (
        b'[{"activeDeveloper":2,"activeDeveloperChat":1,"activeDeveloperCompletion":2,'
        b'"breakdown":{"chatting":[{"activeDeveloper":1,"chatTurns":1,"chatTurnsAccepted":1,'
        b'"chatType":"FREE_INPUT","ide":"vscode"}],"coding":[{"acceptAssistantNewlineCount":10,'
        b'"activeDeveloper":2,"language":"java","linesAccepted":15,"linesChanged":17}],'
        b'"completion":[{"activeDeveloper":2,"countAccepted":1,"countSuggested":2,"ide":"vscode",'
        b'"language":"java","linesAccepted":3,"linesSuggested":6}]},"date":1772380800000,'
        b'"departmentId":"eng","totalChatTurns":1,"totalChatTurnsAccepted":1,'
        b'"totalCountAcceptedCompletion":1,"totalCountSuggestedCompletion":2,'
        b'"totalLinesAccepted":15,"totalLinesAcceptedChat":10,"totalLinesAcceptedCompletion":3,'
        b'"totalLinesChanged":17,"totalLinesSuggestedCompletion":6}]'
    )

    only_app = usage(
        client, "acme", acme, departmentId="eng-app", startTime="2026-03-02", endTime="2026-03-02"
    )
    assert only_app.json() == [
        {
            "activeDeveloper": 1,
            "activeDeveloperChat": 1,
            "activeDeveloperCompletion": 1,
            "breakdown": {
                "chatting": [
                    {
                        "activeDeveloper": 1,
                        "chatTurns": 1,
                        "chatTurnsAccepted": 1,
                        "chatType": "FREE_INPUT",
                        "ide": "vscode",
                    }
                ],
                "coding": [
                    {
                        "acceptAssistantNewlineCount": 10,
                        "activeDeveloper": 1,
                        "language": "java",
                        "linesAccepted": 10,
                        "linesChanged": 12,
                    }
                ],
                "completion": [
                    {
                        "activeDeveloper": 1,
                        "countAccepted": 1,
                        "countSuggested": 1,
                        "ide": "vscode",
                        "language": "java",
                        "linesAccepted": 3,
                        "linesSuggested": 4,
                    }
                ],
            },
            "date": SH_2026_03_02,
            "departmentId": "eng-app",
            "totalChatTurns": 1,
            "totalChatTurnsAccepted": 1,
            "totalCountAcceptedCompletion": 1,
            "totalCountSuggestedCompletion": 1,
            "totalLinesAccepted": 10,
            "totalLinesAcceptedChat": 10,
            "totalLinesAcceptedCompletion": 3,
            "totalLinesChanged": 12,
            "totalLinesSuggestedCompletion": 4,
        }
    ]


def test_parent_department_includes_its_children_and_grandchildren(
    client: TestClient, admin: Admin
) -> None:
    admin.org("initech")
    departments(admin, "initech", {"co": None, "rd": "co", "rd-ml": "rd", "sales": "co"})
    token = admin.token("initech", "read")
    member(admin, "initech", "carol", ["rd-ml"])
    member(admin, "initech", "dave", ["sales"])
    send(
        admin,
        "initech",
        [
            completion("c1", "2026-03-05T09:00:00+08:00", "carol", 3, 2, "jetbrains", "python"),
            completion("d1", "2026-03-05T09:30:00+08:00", "dave", 5, None, "jetbrains", "python"),
        ],
    )
    window = {"startTime": "2026-03-05", "endTime": "2026-03-05"}

    whole = usage(client, "initech", token, departmentId="co", **window).json()
    assert whole == [
        {
            "activeDeveloper": 2,
            "activeDeveloperChat": 0,
            "activeDeveloperCompletion": 2,
            "breakdown": {
                "chatting": [],
                "coding": [],
                "completion": [
                    {
                        "activeDeveloper": 2,
                        "countAccepted": 1,
                        "countSuggested": 2,
                        "ide": "jetbrains",
                        "language": "python",
                        "linesAccepted": 2,
                        "linesSuggested": 8,
                    }
                ],
            },
            "date": SH_2026_03_05,
            "departmentId": "co",
            "totalChatTurns": 0,
            "totalChatTurnsAccepted": 0,
            "totalCountAcceptedCompletion": 1,
            "totalCountSuggestedCompletion": 2,
            "totalLinesAccepted": 0,
            "totalLinesAcceptedChat": 0,
            "totalLinesAcceptedCompletion": 2,
            "totalLinesChanged": 0,
            "totalLinesSuggestedCompletion": 8,
        }
    ]
    summary = {
        dept: [
            (row["departmentId"], row["activeDeveloper"], row["totalLinesSuggestedCompletion"])
            for row in usage(client, "initech", token, departmentId=dept, **window).json()
        ]
        for dept in ("rd", "rd-ml", "sales")
    }
    assert summary == {
        "rd": [("rd", 1, 3)],
        "rd-ml": [("rd-ml", 1, 3)],
        "sales": [("sales", 1, 5)],
    }


def test_member_who_moved_counts_for_the_department_of_each_event_time(
    client: TestClient, admin: Admin, acme: str
) -> None:
    member(admin, "acme", "erin", ["eng-web"])  # first version from 2026-01-01
    member(admin, "acme", "erin", ["sales"], effective_at="2026-03-03T12:00:00+08:00")
    member(admin, "acme", "fred", ["eng-web"])
    member(admin, "acme", "fred", ["eng-app"], effective_at="2026-03-03T12:00:00+08:00")
    send(
        admin,
        "acme",
        [
            # Before the member's first version: the first version holds.
            completion("e0", "2025-12-20T10:00:00+08:00", "erin"),
            completion("e1", "2026-03-02T10:00:00+08:00", "erin"),
            completion("e2", "2026-03-03T11:59:59+08:00", "erin"),
            completion("e3", "2026-03-03T12:00:00+08:00", "erin"),
            chat("e4", "2026-03-04T09:00:00+08:00", "erin", "EXPLAIN_CODE", accepted=False),
            # A move inside the subtree: still one developer for eng that day.
            completion("f1", "2026-03-03T11:00:00+08:00", "fred"),
            completion("f2", "2026-03-03T13:00:00+08:00", "fred"),
        ],
    )

    def rows(dept: str) -> list[tuple[int, int, int, int]]:
        answer = usage(
            client, "acme", acme, departmentId=dept, startTime="2025-12-01", endTime="2026-03-14"
        )
        return [
            (
                r["date"],
                r["activeDeveloper"],
                r["totalCountSuggestedCompletion"],
                r["totalChatTurns"],
            )
            for r in answer.json()
        ]

    assert rows("eng") == [
        (1766160000000, 1, 1, 0),  # 2025-12-20
        (SH_2026_03_02, 1, 1, 0),
        (SH_2026_03_03, 2, 3, 0),  # erin at 11:59:59, fred at 11:00 and 13:00
    ]
    assert rows("eng-web") == [
        (1766160000000, 1, 1, 0),
        (SH_2026_03_02, 1, 1, 0),
        (SH_2026_03_03, 2, 2, 0),  # erin at 11:59:59, fred at 11:00
    ]
    assert rows("eng-app") == [(SH_2026_03_03, 1, 1, 0)]  # fred at 13:00
    assert rows("sales") == [
        (SH_2026_03_03, 1, 1, 0),  # erin at 12:00:00, the move's instant
        (SH_2026_03_04, 1, 0, 1),
    ]


def test_days_split_at_local_midnight_in_an_org_at_utc_plus_8(
    client: TestClient, admin: Admin, acme: str
) -> None:
    member(admin, "acme", "alice", ["eng"])
    send(
        admin,
        "acme",
        [
            completion("late", "2026-03-02T15:59:59Z", "alice", suggested=2),  # 23:59:59+08
            completion("early", "2026-03-02T16:00:00Z", "alice", suggested=5),  # 00:00:00+08
        ],
    )

    def rows(first: str, last: str) -> list[tuple[int, int]]:
        answer = usage(client, "acme", acme, departmentId="eng", startTime=first, endTime=last)
        return [(r["date"], r["totalLinesSuggestedCompletion"]) for r in answer.json()]

    assert rows("2026-03-02", "2026-03-03") == [(SH_2026_03_02, 2), (SH_2026_03_03, 5)]
    assert rows("2026-03-02", "2026-03-02") == [(SH_2026_03_02, 2)]
    assert rows("2026-03-03", "2026-03-03") == [(SH_2026_03_03, 5)]


def test_days_split_at_local_midnight_in_an_org_at_a_negative_offset(
    client: TestClient, admin: Admin
) -> None:
    admin.org("globex", timezone="America/New_York")
    departments(admin, "globex", {"rd": None})
    token = admin.token("globex", "read")
    member(admin, "globex", "gina", ["rd"])
    send(
        admin,
        "globex",
        [
            completion("late", "2026-02-10T23:59:59-05:00", "gina", suggested=2),
            completion("early", "2026-02-11T05:00:00Z", "gina", suggested=5),  # 00:00:00-05
            # 2026-03-08 has 23 hours: its midnight is at -05:00, the next one at -04:00.
            completion("dst-late", "2026-03-08T23:59:59-04:00", "gina", suggested=3),
            completion("dst-early", "2026-03-09T00:00:00-04:00", "gina", suggested=4),
        ],
    )

    def rows(first: str, last: str) -> list[tuple[int, int]]:
        answer = usage(client, "globex", token, departmentId="rd", startTime=first, endTime=last)
        return [(r["date"], r["totalLinesSuggestedCompletion"]) for r in answer.json()]

    assert rows("2026-02-10", "2026-02-11") == [(NY_2026_02_10, 2), (NY_2026_02_11, 5)]
    assert rows("2026-02-10", "2026-02-10") == [(NY_2026_02_10, 2)]
    assert rows("2026-02-11", "2026-02-11") == [(NY_2026_02_11, 5)]
    assert rows("2026-03-08", "2026-03-09") == [(NY_2026_03_08, 3), (NY_2026_03_09, 4)]


def test_days_without_assistant_activity_are_absent(
    client: TestClient, admin: Admin, acme: str
) -> None:
    member(admin, "acme", "alice", ["eng"])
    send(
        admin,
        "acme",
        [
            completion("c1", "2026-03-02T10:00:00+08:00", "alice"),
            {
                "id": "act",
                "time": "2026-03-03T10:00:00+08:00",
                "type": "activity",
                "member": "alice",
            },
            code("k1", "2026-03-05T10:00:00+08:00", "alice", "completion", 4, 6, "go"),
        ],
    )

    response = usage(
        client, "acme", acme, departmentId="eng", startTime="2026-03-01", endTime="2026-03-07"
    )

    assert [(r["date"], r["activeDeveloper"]) for r in response.json()] == [
        (SH_2026_03_02, 1),
        (SH_2026_03_05, 1),
    ]
    assert response.json()[1] == {
        "activeDeveloper": 1,
        "activeDeveloperChat": 0,
        "activeDeveloperCompletion": 0,
        "breakdown": {
            "chatting": [],
            "coding": [
                {
                    "acceptAssistantNewlineCount": 0,
                    "activeDeveloper": 1,
                    "language": "go",
                    "linesAccepted": 4,
                    "linesChanged": 6,
                }
            ],
            "completion": [],
        },
        "date": SH_2026_03_05,
        "departmentId": "eng",
        "totalChatTurns": 0,
        "totalChatTurnsAccepted": 0,
        "totalCountAcceptedCompletion": 0,
        "totalCountSuggestedCompletion": 0,
        "totalLinesAccepted": 4,
        "totalLinesAcceptedChat": 0,
        "totalLinesAcceptedCompletion": 0,
        "totalLinesChanged": 6,
        "totalLinesSuggestedCompletion": 0,
    }
    assert response.headers["x-total"] == "2"


def test_chat_types_keep_custom_lower_case_commands_and_sort_in_code_point_order(
    client: TestClient, admin: Admin, acme: str
) -> None:
    member(admin, "acme", "alice", ["eng"])
    member(admin, "acme", "bob", ["eng"])
    at = "2026-03-02T10:00:00+08:00"
    send(
        admin,
        "acme",
        [
            chat("h1", at, "alice", "refactor", accepted=True),
            chat("h2", at, "alice", "FREE_INPUT", accepted=False),
            chat("h3", at, "alice", "doc", accepted=True, ide="jetbrains"),
            chat("h4", at, "alice", "EXPLAIN_CODE", accepted=False, ide="jetbrains"),
            chat("h5", at, "alice", "FREE_INPUT", accepted=True, ide="jetbrains"),
            chat("h6", at, "bob", "refactor", accepted=False),
            completion("c1", at, "bob", 2, 1, ide="vscode", language="python"),
            completion("c2", at, "bob", 3, None, ide="vscode", language="go"),
            completion("c3", at, "alice", 1, 1, ide="jetbrains", language="java"),
        ],
    )

    [row] = usage(
        client, "acme", acme, departmentId="eng", startTime="2026-03-02", endTime="2026-03-02"
    ).json()

    assert row["breakdown"]["chatting"] == [
        {
            "activeDeveloper": 1,
            "chatTurns": 1,
            "chatTurnsAccepted": 0,
            "chatType": "EXPLAIN_CODE",
            "ide": "jetbrains",
        },
        {
            "activeDeveloper": 1,
            "chatTurns": 1,
            "chatTurnsAccepted": 1,
            "chatType": "FREE_INPUT",
            "ide": "jetbrains",
        },
        {
            "activeDeveloper": 1,
            "chatTurns": 1,
            "chatTurnsAccepted": 0,
            "chatType": "FREE_INPUT",
            "ide": "vscode",
        },
        {
            "activeDeveloper": 1,
            "chatTurns": 1,
            "chatTurnsAccepted": 1,
            "chatType": "doc",
            "ide": "jetbrains",
        },
        {
            "activeDeveloper": 2,
            "chatTurns": 2,
            "chatTurnsAccepted": 1,
            "chatType": "refactor",
            "ide": "vscode",
        },
    ]
    assert [(c["ide"], c["language"]) for c in row["breakdown"]["completion"]] == [
        ("jetbrains", "java"),
        ("vscode", "go"),
        ("vscode", "python"),
    ]
    totals = {k: v for k, v in row.items() if k.startswith(("total", "active"))}
    assert totals == {
        "activeDeveloper": 2,
        "activeDeveloperChat": 2,
        "activeDeveloperCompletion": 2,
        "totalChatTurns": 6,
        "totalChatTurnsAccepted": 3,
        "totalCountAcceptedCompletion": 2,
        "totalCountSuggestedCompletion": 3,
        "totalLinesAccepted": 0,
        "totalLinesAcceptedChat": 0,
        "totalLinesAcceptedCompletion": 2,
        "totalLinesChanged": 0,
        "totalLinesSuggestedCompletion": 6,
    }


def test_member_spans_follow_versions_and_merge_when_adjacent() -> None:
    def version(at_us: int, *depts: str) -> MemberVersion:
        return MemberVersion(effective_at=from_micros(at_us), developer=True, departments=depts)

    moving = Member(
        id="m",
        name="M",
        email="",
        created_at=from_micros(1_000),
        deleted_at=None,
        versions=(version(1_000, "a"), version(2_000, "b"), version(3_000, "a", "c")),
    )

    # The first version also holds before its effective_at; the window clips every span.
    assert member_spans(moving, frozenset({"a"}), 0, 5_000) == [
        MemberSpan("m", 0, 2_000),
        MemberSpan("m", 3_000, 5_000),
    ]
    assert member_spans(moving, frozenset({"b"}), 0, 5_000) == [MemberSpan("m", 2_000, 3_000)]
    assert member_spans(moving, frozenset({"a", "b"}), 500, 4_000) == [MemberSpan("m", 500, 4_000)]
    assert member_spans(moving, frozenset({"b"}), 3_000, 4_000) == []
    assert member_spans(moving, frozenset({"z"}), 0, 5_000) == []


# -- pagination and headers ----------------------------------------------------------------


def test_pages_carry_every_vendor_header(client: TestClient, admin: Admin, acme: str) -> None:
    member(admin, "acme", "alice", ["eng"])
    send(
        admin,
        "acme",
        [completion(f"c{d}", f"2026-03-0{d}T10:00:00+08:00", "alice") for d in range(2, 7)],
    )
    window = {"departmentId": "eng", "startTime": "2026-03-01", "endTime": "2026-03-14"}

    def page(**params: str) -> tuple[list[int], dict[str, str]]:
        response = usage(client, "acme", acme, **window, **params)
        assert response.status_code == 200
        assert_request_id(response)
        return [r["date"] for r in response.json()], paging(response)

    assert page(page="1", perPage="2") == (
        [SH_2026_03_02, SH_2026_03_03],
        {
            "x-next-page": "2",
            "x-page": "1",
            "x-per-page": "2",
            "x-prev-page": "0",
            "x-total": "5",
            "x-total-pages": "3",
        },
    )
    assert page(page="2", perPage="2") == (
        [SH_2026_03_04, SH_2026_03_05],
        {
            "x-next-page": "3",
            "x-page": "2",
            "x-per-page": "2",
            "x-prev-page": "1",
            "x-total": "5",
            "x-total-pages": "3",
        },
    )
    assert page(page="3", perPage="2") == (
        [SH_2026_03_06],
        {
            "x-next-page": "4",
            "x-page": "3",
            "x-per-page": "2",
            "x-prev-page": "2",
            "x-total": "5",
            "x-total-pages": "3",
        },
    )
    assert page(page="4", perPage="2") == (
        [],
        {
            "x-next-page": "",
            "x-page": "4",
            "x-per-page": "2",
            "x-prev-page": "3",
            "x-total": "5",
            "x-total-pages": "3",
        },
    )
    assert page() == (
        [SH_2026_03_02, SH_2026_03_03, SH_2026_03_04, SH_2026_03_05, SH_2026_03_06],
        {
            "x-next-page": "2",
            "x-page": "1",
            "x-per-page": "100",
            "x-prev-page": "0",
            "x-total": "5",
            "x-total-pages": "1",
        },
    )


def test_window_without_rows_answers_an_empty_list_and_zero_pages(
    client: TestClient, admin: Admin, acme: str
) -> None:
    response = usage(
        client, "acme", acme, departmentId="eng", startTime="2026-02-01", endTime="2026-02-28"
    )

    assert response.status_code == 200
    assert response.content == b"[]"
    assert paging(response) == {
        "x-next-page": "",
        "x-page": "1",
        "x-per-page": "100",
        "x-prev-page": "0",
        "x-total": "0",
        "x-total-pages": "0",
    }


def test_every_answer_has_a_fresh_request_id(client: TestClient, acme: str) -> None:
    params = {"departmentId": "eng", "startTime": "2026-03-01", "endTime": "2026-03-01"}
    first = assert_request_id(usage(client, "acme", acme, **params))
    second = assert_request_id(usage(client, "acme", acme, **params))
    failed = assert_request_id(usage(client, "acme", None, **params))
    assert len({first, second, failed}) == 3


def test_environment_admin_token_reads_any_org(client: TestClient, admin: Admin, acme: str) -> None:
    member(admin, "acme", "alice", ["eng"])
    send(admin, "acme", [completion("c1", "2026-03-02T10:00:00+08:00", "alice")])

    response = usage(
        client, "acme", ADMIN, departmentId="eng", startTime="2026-03-02", endTime="2026-03-02"
    )

    assert response.status_code == 200
    assert [r["date"] for r in response.json()] == [SH_2026_03_02]


def test_longest_window_is_366_days(client: TestClient, acme: str) -> None:
    response = usage(
        client, "acme", acme, departmentId="eng", startTime="2025-03-01", endTime="2026-03-01"
    )
    assert response.status_code == 200


# -- errors --------------------------------------------------------------------------------

VALID = {"departmentId": "eng", "startTime": "2026-03-01", "endTime": "2026-03-31"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"startTime": "2026/03/01"}, "startTime: must be a date in YYYY-MM-DD format"),
        ({"startTime": "2026-3-1"}, "startTime: must be a date in YYYY-MM-DD format"),
        ({"endTime": "2026-03-31T00:00:00"}, "endTime: must be a date in YYYY-MM-DD format"),
        ({"endTime": "2026-02-30"}, "endTime: 2026-02-30 is not a valid calendar date"),
        (
            {"startTime": "2026-03-31", "endTime": "2026-03-01"},
            "endTime must not be before startTime",
        ),
        (
            {"startTime": "2025-03-01", "endTime": "2026-03-02"},
            "the window from startTime to endTime may span at most 366 days",
        ),
        ({"perPage": "0"}, "perPage must be an integer from 1 to 100"),
        ({"perPage": "101"}, "perPage must be an integer from 1 to 100"),
        ({"perPage": "ten"}, "perPage must be an integer from 1 to 100"),
        ({"perPage": ""}, "perPage must be an integer from 1 to 100"),
        ({"page": "0"}, "page must be an integer >= 1"),
        ({"page": "-1"}, "page must be an integer >= 1"),
        ({"page": "1.5"}, "page must be an integer >= 1"),
        ({"departmentId": None}, "departmentId is required"),
        ({"departmentId": ""}, "departmentId is required"),
        ({"startTime": None}, "startTime is required"),
        ({"endTime": None}, "endTime is required"),
    ],
)
def test_bad_parameters_answer_400(
    client: TestClient, acme: str, change: dict[str, str | None], message: str
) -> None:
    params = {k: v for k, v in {**VALID, **change}.items() if v is not None}

    response = usage(client, "acme", acme, **params)

    assert response.status_code == 400
    assert response.json() == {
        "errorCode": "BadRequest",
        "errorMessage": message,
        "requestId": assert_request_id(response),
    }


def test_unknown_department_answers_404(client: TestClient, acme: str) -> None:
    response = usage(client, "acme", acme, **{**VALID, "departmentId": "nope"})

    assert response.status_code == 404
    assert response.json() == {
        "errorCode": "NotFound",
        "errorMessage": 'department "nope" does not exist',
        "requestId": assert_request_id(response),
    }


@pytest.mark.parametrize(
    ("org", "who", "status", "code", "message"),
    [
        ("acme", "nobody", 401, "Unauthorized", "this call needs a token"),
        ("acme", "stranger", 401, "InvalidTokenError", "the token is not valid"),
        (
            "acme",
            "globex-reader",
            403,
            "Forbidden",
            "this token does not grant access to that organization",
        ),
        (
            "nowhere",
            "globex-reader",
            403,
            "Forbidden",
            "this token does not grant access to that organization",
        ),
        ("acme", "acme-ingester", 403, "Forbidden", 'this token lacks the "read" scope'),
        ("nowhere", "environment-admin", 404, "NotFound", 'organization "nowhere" does not exist'),
    ],
)
def test_token_problems_answer_in_the_family_shape(
    client: TestClient,
    admin: Admin,
    acme: str,
    org: str,
    who: str,
    status: int,
    code: str,
    message: str,
) -> None:
    admin.org("globex", timezone="America/New_York")
    tokens = {
        "nobody": None,
        "stranger": "tly_not-a-token-tally-knows",
        "globex-reader": admin.token("globex", "read"),
        "acme-ingester": admin.token("acme", "ingest", "admin"),
        "environment-admin": ADMIN,
    }

    # Authentication comes before validation: the parameters here are bad too.
    response = usage(client, org, tokens[who], departmentId="eng", startTime="yesterday")

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "errorCode": code,
        "errorMessage": message,
        "requestId": assert_request_id(response),
    }


def test_openapi_documents_the_route_with_its_token_header(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/oapi/v1/lingma/organizations/{organizationId}/departmentUsage"][
        "get"
    ]
    assert operation["security"] == [{"x-yunxiao-token": []}]
    assert [p["name"] for p in operation["parameters"]] == [
        "organizationId",
        "departmentId",
        "startTime",
        "endTime",
        "page",
        "perPage",
    ]
