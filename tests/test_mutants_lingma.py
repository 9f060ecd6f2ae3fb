"""Department usage cases found by mutation testing (docs/testing.md): a day's totals sum every
row of its breakdowns, not only the last one."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.conftest import Admin

URL = "/oapi/v1/lingma/organizations/acme/departmentUsage"


def code(event_id: str, language: str, source: str, accepted: int, changed: int) -> dict[str, Any]:
    return {
        "id": event_id,
        "time": "2026-03-02T10:00:00+08:00",
        "type": "code",
        "member": "ann",
        "language": language,
        "source": source,
        "lines_accepted": accepted,
        "lines_changed": changed,
    }


def test_day_totals_sum_the_coding_rows_of_every_language(client: TestClient, admin: Admin) -> None:
    admin.org("acme", "Asia/Shanghai")
    admin.put("acme/departments/eng", {"name": "Eng", "parent": None})
    admin.put(
        "acme/members/ann",
        {"name": "Ann", "departments": ["eng"], "created_at": "2026-01-01T00:00:00+08:00"},
    )
    admin.events(
        "acme",
        [
            code("c1", "java", "chat", 5, 7),
            code("c2", "python", "chat", 3, 4),
            code("c3", "python", "completion", 2, 2),
        ],
    )
    token = admin.token("acme", "read")
    params = {"departmentId": "eng", "startTime": "2026-03-02", "endTime": "2026-03-02"}
    response = client.get(URL, params=params, headers={"x-yunxiao-token": token})
    assert response.status_code == 200, response.text
    [day] = response.json()
    # java: 5 accepted (5 from chat), 7 changed; python: 3 + 2 accepted (3 from chat), 4 + 2 changed
    assert {row["language"]: row["linesAccepted"] for row in day["breakdown"]["coding"]} == {
        "java": 5,
        "python": 5,
    }
    assert day["totalLinesAccepted"] == 10
    assert day["totalLinesChanged"] == 13
    assert day["totalLinesAcceptedChat"] == 8
