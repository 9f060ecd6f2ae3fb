"""Export (GET /api/v1/orgs/{org}/export/{dataset}, tally export): each dataset's columns and
values for a hand-worked fixture, CSV (RFC 4180) and Parquet (typed), the file name, the
errors, and the round trip events -> tally import -> the same answers.

The clock is pinned at 2026-03-15T04:00Z (12:00 in Shanghai): T-1 = 2026-03-14. The window is
the org days 2026-03-10 .. 2026-03-12 of Acme (Asia/Shanghai, UTC+8).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from tally.api.app import create_app
from tally.cli import cli
from tally.export.formats import csv_chunks
from tally.service import Tally
from tally.settings import Settings
from tests.conftest import ADMIN, NOW, Admin, bearer

WINDOW = {"start": "2026-03-10", "end": "2026-03-12"}
CST = timezone(timedelta(hours=8))
ZONE = "Asia/Shanghai"


def at(text: str) -> datetime:
    """A Shanghai wall-clock time as an aware instant."""
    return datetime.fromisoformat(text).replace(tzinfo=CST)


def build_directory(admin: Admin) -> None:
    """eng with its child web, and ops; ann (developer, web), bob (developer, eng), cat (ops);
    workspace w1 (ann); apps crm (2026-01-01) and hr (created 2026-03-11 12:00)."""
    admin.org("acme")
    admin.put("acme/departments/eng", {"name": "Engineering"})
    admin.put("acme/departments/web", {"name": "Web", "parent": "eng"})
    admin.put("acme/departments/ops", {"name": "Ops"})
    created = "2026-01-01T00:00:00+08:00"
    for member, name, developer, department in (
        ("ann", "Ann", True, "web"),
        ("bob", 'Bob, "B"', True, "eng"),
        ("cat", "Cat", False, "ops"),
    ):
        body = {
            "name": name,
            "developer": developer,
            "departments": [department],
            "created_at": created,
        }
        admin.put(f"acme/members/{member}", body)
    admin.put(
        "acme/workspaces/w1",
        {"name": "W1", "created_at": created, "members": [{"member": "ann", "since": created}]},
    )
    admin.put("acme/apps/crm", {"name": "CRM", "creator": "bob", "created_at": created})
    admin.put(
        "acme/apps/hr", {"name": "HR", "creator": "ann", "created_at": "2026-03-11T12:00:00+08:00"}
    )


def ev(event_id: str, kind: str, time: str, member: str, **fields: Any) -> dict[str, Any]:
    return {"id": event_id, "type": kind, "time": time, "member": member, **fields}


EVENTS = [
    ev("e1", "completion", "2026-03-10T09:00:00+08:00", "ann", ide="vscode", language="python",
       lines_suggested=10, accepted=True, lines_accepted=4),
    ev("e2", "completion", "2026-03-10T09:30:00+08:00", "bob", ide="vscode", language="python",
       lines_suggested=6, accepted=False),
    ev("e3", "chat", "2026-03-10T10:00:00+08:00", "ann", ide="vscode", chat_type="FREE_INPUT",
       accepted=True),
    ev("e4", "code", "2026-03-10T11:00:00+08:00", "bob", language="go", source="chat",
       lines_accepted=5, lines_changed=7),
    ev("e5", "workspace_activity", "2026-03-10T12:00:00+08:00", "ann", workspace="w1"),
    ev("e6", "activity", "2026-03-10T13:00:00+08:00", "cat"),
    ev("e7", "app_resource", "2026-03-10T14:00:00+08:00", "bob", app="crm",
       resource="form_coop", delta=3),
    ev("e8", "app_visit", "2026-03-10T15:00:00.25+08:00", "cat", app="crm"),
    # 23:59:59.999 in Shanghai, sent in UTC: still the 10th.
    ev("e11", "app_edit", "2026-03-10T15:59:59.999Z", "bob", app="crm"),
    # Local midnight: the 11th.
    ev("e9", "completion", "2026-03-11T00:00:00+08:00", "ann", ide="jetbrains", language="java",
       lines_suggested=3, accepted=True, lines_accepted=3),
    ev("e10", "app_data", "2026-03-11T09:00:00+08:00", "bob", app="crm", records=42),
    ev("e12", "chat", "2026-03-12T08:00:00+08:00", "bob", ide="vscode", chat_type="explain_more",
       accepted=False),
    ev("e13", "workspace_activity", "2026-03-12T09:00:00+08:00", "ann", workspace="w1"),
    # Outside the window (the 13th, and the 9th): never exported.
    ev("x1", "activity", "2026-03-13T00:00:00+08:00", "cat"),
    ev("x0", "activity", "2026-03-09T23:59:59+08:00", "cat"),
]  # fmt: skip


@pytest.fixture
def acme(admin: Admin) -> str:
    """The fixture's directory and events; answers a read token of acme."""
    build_directory(admin)
    result = admin.events("acme", EVENTS)
    assert result["rejected"] == [], result
    return admin.token("acme", "read")


def get_export(
    client: TestClient, token: str, dataset: str, org: str = "acme", **params: str
) -> Any:
    return client.get(
        f"/api/v1/orgs/{org}/export/{dataset}", params={**WINDOW, **params}, headers=bearer(token)
    )


def csv_rows(client: TestClient, token: str, dataset: str) -> list[list[str]]:
    response = get_export(client, token, dataset)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8; header=present"
    assert b"\r\n" in response.content
    return list(csv.reader(io.StringIO(response.content.decode(), newline="")))


def parquet_table(client: TestClient, token: str, dataset: str) -> pa.Table:
    response = get_export(client, token, dataset, format="parquet")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    return pq.read_table(io.BytesIO(response.content))


BREAKDOWN = [
    "kind", "ide", "language", "chat_type", "count_suggested", "count_accepted",
    "lines_suggested", "lines_accepted", "chat_turns", "chat_turns_accepted", "lines_changed",
    "accept_assistant_newline_count",
]  # fmt: skip
EVENT_HEADER = [
    "id", "time", "type", "member", "ide", "language", "chat_type", "source", "accepted",
    "lines_suggested", "lines_accepted", "lines_changed", "workspace", "app", "resource",
    "delta", "records",
]  # fmt: skip
DEPARTMENT_HEADER = [
    "department_id", "department_name", "day", *BREAKDOWN, "active_developer",
    "day_active_developer", "day_active_developer_chat", "day_active_developer_completion",
]  # fmt: skip
MEMBER_HEADER = [
    "day", "member_id", "member_name", *BREAKDOWN, "status_active_chat",
    "status_active_completion", "status_active_lasted_time",
]  # fmt: skip
ACTIVITY_HEADER = ["day", "total_users", "active_users", "total_developers", "active_developers"]
RESOURCES = [
    "form_coop", "form_workflow", "dash", "etl", "aggregate", "public_link", "data_trigger",
    "automation", "bpa",
]  # fmt: skip
APP_HEADER = [
    "day", "app_id", "app_name", "creator_id", "creator_name", *RESOURCES, "data",
    "last_visit_at", "last_edit_at",
]  # fmt: skip


# -- events ------------------------------------------------------------------------------------


def test_events_csv_every_field_by_time_then_id(client: TestClient, acme: str) -> None:
    rows = csv_rows(client, acme, "events")
    assert rows[0] == EVENT_HEADER
    assert [r[0] for r in rows[1:]] == [
        "e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8", "e11", "e9", "e10", "e12", "e13",
    ]  # fmt: skip
    by_id = {r[0]: dict(zip(EVENT_HEADER, r, strict=True)) for r in rows[1:]}
    empty = dict.fromkeys(EVENT_HEADER[4:], "")
    assert by_id["e1"] == {
        **empty,
        "id": "e1",
        "time": "2026-03-10T09:00:00.000000+08:00",
        "type": "completion",
        "member": "ann",
        "ide": "vscode",
        "language": "python",
        "accepted": "true",
        "lines_suggested": "10",
        "lines_accepted": "4",
    }
    # A completion sent without lines_accepted is stored (and exported) with 0.
    assert by_id["e2"]["accepted"] == "false"
    assert by_id["e2"]["lines_accepted"] == "0"
    assert by_id["e11"]["time"] == "2026-03-10T23:59:59.999000+08:00"
    assert by_id["e7"] == {
        **empty,
        "id": "e7",
        "time": "2026-03-10T14:00:00.000000+08:00",
        "type": "app_resource",
        "member": "bob",
        "app": "crm",
        "resource": "form_coop",
        "delta": "3",
    }


def test_events_parquet_is_typed_with_the_org_zone(client: TestClient, acme: str) -> None:
    table = parquet_table(client, acme, "events")
    assert table.column_names == EVENT_HEADER
    assert table.schema.field("time").type == pa.timestamp("us", tz=ZONE)
    assert table.schema.field("accepted").type == pa.bool_()
    for name in ("lines_suggested", "lines_accepted", "lines_changed", "delta", "records"):
        assert table.schema.field(name).type == pa.int64()
    assert table.num_rows == 13
    first = table.slice(0, 1).to_pylist()[0]
    assert first["time"] == at("2026-03-10T09:00:00")
    assert first["lines_suggested"] == 10
    assert table["records"].to_pylist()[10] == 42  # e10


# -- department_days -------------------------------------------------------------------------


def _department_row(department: str, name: str, day: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(DEPARTMENT_HEADER)
    row.update(department_id=department, department_name=name, day=date.fromisoformat(day))
    row.update(values)
    return row


def test_department_days_one_row_per_department_day_and_entry(
    client: TestClient, acme: str
) -> None:
    table = parquet_table(client, acme, "department_days")
    assert table.column_names == DEPARTMENT_HEADER
    assert table.schema.field("day").type == pa.date32()
    assert table.schema.field("active_developer").type == pa.int64()
    day10: dict[str, Any] = {"day_active_developer": 2, "day_active_developer_chat": 1,
             "day_active_developer_completion": 2}  # fmt: skip
    eng = ("eng", "Engineering")
    assert table.to_pylist() == [
        # eng holds web: ann and bob.
        _department_row(*eng, "2026-03-10", kind="completion", ide="vscode", language="python",
                        count_suggested=2, count_accepted=1, lines_suggested=16, lines_accepted=4,
                        active_developer=2, **day10),
        _department_row(*eng, "2026-03-10", kind="chatting", ide="vscode", chat_type="FREE_INPUT",
                        chat_turns=1, chat_turns_accepted=1, active_developer=1, **day10),
        _department_row(*eng, "2026-03-10", kind="coding", language="go", lines_accepted=5,
                        lines_changed=7, accept_assistant_newline_count=5, active_developer=1,
                        **day10),
        _department_row(*eng, "2026-03-11", kind="completion", ide="jetbrains", language="java",
                        count_suggested=1, count_accepted=1, lines_suggested=3, lines_accepted=3,
                        active_developer=1, day_active_developer=1, day_active_developer_chat=0,
                        day_active_developer_completion=1),
        _department_row(*eng, "2026-03-12", kind="chatting", ide="vscode",
                        chat_type="explain_more", chat_turns=1, chat_turns_accepted=0,
                        active_developer=1, day_active_developer=1, day_active_developer_chat=1,
                        day_active_developer_completion=0),
        # ops (cat) has no assistant events: no rows. web: ann alone.
        _department_row("web", "Web", "2026-03-10", kind="completion", ide="vscode",
                        language="python", count_suggested=1, count_accepted=1,
                        lines_suggested=10, lines_accepted=4, active_developer=1,
                        day_active_developer=1, day_active_developer_chat=1,
                        day_active_developer_completion=1),
        _department_row("web", "Web", "2026-03-10", kind="chatting", ide="vscode",
                        chat_type="FREE_INPUT", chat_turns=1, chat_turns_accepted=1,
                        active_developer=1, day_active_developer=1, day_active_developer_chat=1,
                        day_active_developer_completion=1),
        _department_row("web", "Web", "2026-03-11", kind="completion", ide="jetbrains",
                        language="java", count_suggested=1, count_accepted=1, lines_suggested=3,
                        lines_accepted=3, active_developer=1, day_active_developer=1,
                        day_active_developer_chat=0, day_active_developer_completion=1),
    ]  # fmt: skip


# -- member_days -----------------------------------------------------------------------------


def _member_row(day: str, member: str, name: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(MEMBER_HEADER)
    row.update(day=date.fromisoformat(day), member_id=member, member_name=name)
    row.update(values)
    return row


def test_member_days_are_the_developer_usage_rows_flattened(client: TestClient, acme: str) -> None:
    table = parquet_table(client, acme, "member_days")
    assert table.column_names == MEMBER_HEADER
    assert table.schema.field("status_active_lasted_time").type == pa.timestamp("us", tz=ZONE)
    assert table.schema.field("status_active_chat").type == pa.bool_()
    ann10 = {"status_active_chat": True, "status_active_completion": True,
             "status_active_lasted_time": at("2026-03-10T10:00:00")}  # fmt: skip
    bob10 = {"status_active_chat": False, "status_active_completion": True,
             "status_active_lasted_time": at("2026-03-10T11:00:00")}  # fmt: skip
    assert table.to_pylist() == [
        _member_row("2026-03-10", "ann", "Ann", kind="completion", ide="vscode",
                    language="python", count_suggested=1, count_accepted=1, lines_suggested=10,
                    lines_accepted=4, **ann10),
        _member_row("2026-03-10", "ann", "Ann", kind="chatting", ide="vscode",
                    chat_type="FREE_INPUT", chat_turns=1, chat_turns_accepted=1, **ann10),
        _member_row("2026-03-10", "bob", 'Bob, "B"', kind="completion", ide="vscode",
                    language="python", count_suggested=1, count_accepted=0, lines_suggested=6,
                    lines_accepted=0, **bob10),
        _member_row("2026-03-10", "bob", 'Bob, "B"', kind="coding", language="go",
                    lines_accepted=5, lines_changed=7, accept_assistant_newline_count=5, **bob10),
        _member_row("2026-03-11", "ann", "Ann", kind="completion", ide="jetbrains",
                    language="java", count_suggested=1, count_accepted=1, lines_suggested=3,
                    lines_accepted=3, status_active_chat=False, status_active_completion=True,
                    status_active_lasted_time=at("2026-03-11T00:00:00")),
        _member_row("2026-03-12", "bob", 'Bob, "B"', kind="chatting", ide="vscode",
                    chat_type="explain_more", chat_turns=1, chat_turns_accepted=0,
                    status_active_chat=True, status_active_completion=False,
                    status_active_lasted_time=at("2026-03-12T08:00:00")),
    ]  # fmt: skip


def test_member_days_csv_quotes_a_name_with_a_comma_and_a_quote(
    client: TestClient, acme: str
) -> None:
    response = get_export(client, acme, "member_days")
    assert b',"Bob, ""B""",' in response.content
    rows = list(csv.reader(io.StringIO(response.content.decode(), newline="")))
    assert rows[0] == MEMBER_HEADER
    assert rows[3][:4] == ["2026-03-10", "bob", 'Bob, "B"', "completion"]
    assert rows[3][-3:] == ["false", "true", "2026-03-10T11:00:00.000000+08:00"]


# -- activity_days and app_days ----------------------------------------------------------------


def test_activity_days_totals_and_actives_per_day(client: TestClient, acme: str) -> None:
    rows = csv_rows(client, acme, "activity_days")
    assert rows == [
        ACTIVITY_HEADER,
        # The 10th: ann, bob, cat active (bob's edit at 23:59:59.999); ann in w1.
        ["2026-03-10", "3", "3", "2", "1"],
        ["2026-03-11", "3", "2", "2", "0"],
        ["2026-03-12", "3", "2", "2", "1"],
    ]
    table = parquet_table(client, acme, "activity_days")
    assert table.schema == pa.schema(
        [("day", pa.date32())] + [(name, pa.int64()) for name in ACTIVITY_HEADER[1:]]
    )


def test_app_days_metrics_per_app_and_day(client: TestClient, acme: str) -> None:
    table = parquet_table(client, acme, "app_days")
    assert table.column_names == APP_HEADER
    assert table.schema.field("last_visit_at").type == pa.timestamp("us", tz=ZONE)
    zero = dict.fromkeys(RESOURCES, 0)
    visit, edit = at("2026-03-10T15:00:00.250000"), at("2026-03-10T23:59:59.999000")

    def crm(day: str, data: int) -> dict[str, Any]:
        return {"day": date.fromisoformat(day), "app_id": "crm", "app_name": "CRM",
                "creator_id": "bob", "creator_name": 'Bob, "B"', **zero, "form_coop": 3,
                "data": data, "last_visit_at": visit, "last_edit_at": edit}  # fmt: skip

    def hr(day: str) -> dict[str, Any]:
        return {"day": date.fromisoformat(day), "app_id": "hr", "app_name": "HR",
                "creator_id": "ann", "creator_name": "Ann", **zero, "data": 0,
                "last_visit_at": None, "last_edit_at": None}  # fmt: skip

    assert table.to_pylist() == [
        crm("2026-03-10", 0),
        crm("2026-03-11", 42),
        hr("2026-03-11"),
        crm("2026-03-12", 42),
        hr("2026-03-12"),
    ]


def test_app_days_stop_at_yesterday(client: TestClient, acme: str) -> None:
    """T-1 is 2026-03-14: the 15th (today, not over) has no rows."""
    response = get_export(client, acme, "app_days", start="2026-03-14", end="2026-03-16")
    rows = list(csv.reader(io.StringIO(response.content.decode(), newline="")))
    assert [r[:2] for r in rows[1:]] == [["2026-03-14", "crm"], ["2026-03-14", "hr"]]


# -- CSV, headers, errors ----------------------------------------------------------------------


def test_csv_quotes_a_comma_a_quote_and_a_line_break_as_rfc_4180() -> None:
    """Names written through the API cannot hold a line break (issue 19), but one written
    before that check may: the CSV writer quotes it."""
    schema = pa.schema([("name", pa.string()), ("n", pa.int64())])
    table = pa.table({"name": ['Acme, "Ltd"\nEast', "", None], "n": [1, 2, 3]}, schema=schema)
    data = b"".join(csv_chunks(schema, [table]))
    assert data == b'name,n\r\n"Acme, ""Ltd""\nEast",1\r\n"",2\r\n,3\r\n'
    assert list(csv.reader(io.StringIO(data.decode(), newline=""))) == [
        ["name", "n"],
        ['Acme, "Ltd"\nEast', "1"],
        ["", "2"],
        ["", "3"],
    ]


def test_a_member_name_with_a_line_break_from_an_old_store_round_trips(
    client: TestClient, tally: Tally, acme: str
) -> None:
    directory = tally.directory.require("acme")
    old = directory.members["ann"]
    renamed = msgspec.structs.replace(old, name='Ann, "A"\nSmith')
    tally.directory_store.put_member("acme", renamed)
    tally.directory.forget()
    response = get_export(client, acme, "member_days")
    assert b'"Ann, ""A""\nSmith"' in response.content
    rows = list(csv.reader(io.StringIO(response.content.decode(), newline="")))
    assert rows[1][:3] == ["2026-03-10", "ann", 'Ann, "A"\nSmith']


def test_content_disposition_names_the_file(client: TestClient, acme: str) -> None:
    response = get_export(client, acme, "member_days", format="parquet")
    assert response.headers["content-disposition"] == (
        'attachment; filename="tally-acme-member_days-2026-03-10-2026-03-12.parquet";'
        " filename*=UTF-8''tally-acme-member_days-2026-03-10-2026-03-12.parquet"
    )
    assert response.headers["x-request-id"]


def test_an_empty_window_has_the_header_only(client: TestClient, acme: str) -> None:
    response = get_export(client, acme, "events", start="2025-01-01", end="2025-01-02")
    assert response.content == (",".join(EVENT_HEADER) + "\r\n").encode()
    table = pq.read_table(
        io.BytesIO(
            get_export(
                client, acme, "events", start="2025-01-01", end="2025-01-02", format="parquet"
            ).content
        )
    )
    assert table.num_rows == 0
    assert table.column_names == EVENT_HEADER


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"start": "2026-3-10"}, "start must be a date in YYYY-MM-DD format"),
        ({"end": "2026-02-30"}, "end 2026-02-30 is not a valid calendar date"),
        ({"start": ""}, "start is required (YYYY-MM-DD)"),
        ({"start": "2026-03-12", "end": "2026-03-11"}, "end must not be before start"),
        ({"format": "xlsx"}, "format must be one of csv, parquet"),
        (
            {"start": "2025-03-09", "end": "2026-03-10"},
            "the window from start to end may span at most 366 days",
        ),
    ],
)
def test_bad_parameters_are_400_problems(
    client: TestClient, acme: str, params: dict[str, str], detail: str
) -> None:
    body = problem(get_export(client, acme, "events", **params), 400)
    assert body["detail"] == detail
    assert body["type"] == "urn:tally:problem:bad-request"


def test_a_window_of_366_days_is_allowed(client: TestClient, acme: str) -> None:
    response = get_export(client, acme, "activity_days", start="2025-03-10", end="2026-03-10")
    assert response.status_code == 200
    assert response.content.count(b"\r\n") == 1 + 366


def test_a_missing_end_is_400(client: TestClient, acme: str) -> None:
    response = client.get(
        "/api/v1/orgs/acme/export/events", params={"start": "2026-03-10"}, headers=bearer(acme)
    )
    assert problem(response, 400)["detail"] == "end is required (YYYY-MM-DD)"


def test_token_rules_are_those_of_the_tally_api(
    client: TestClient, admin: Admin, acme: str
) -> None:
    admin.org("other")
    ingest_only = admin.token("acme", "ingest", "admin")
    other = admin.token("other", "read")
    assert problem(get_export(client, acme, "nope"), 404)["detail"].startswith(
        'unknown dataset "nope"'
    )
    assert problem(get_export(client, ingest_only, "events"), 403)["detail"] == (
        'this token lacks the "read" scope'
    )
    assert problem(get_export(client, other, "events"), 403)["title"] == "Forbidden"
    # Another org's token learns nothing: 403 for an unknown org too.
    assert problem(get_export(client, other, "events", org="ghost"), 403)["title"] == "Forbidden"
    assert problem(get_export(client, ADMIN, "events", org="ghost"), 404)["detail"] == (
        'organization "ghost" does not exist'
    )
    assert problem(get_export(client, "wrong", "events"), 401)["title"] == "Unauthorized"
    assert get_export(client, ADMIN, "events").status_code == 200


# -- the CLI, and the round trip ---------------------------------------------------------------


def test_cli_export_writes_the_file_the_api_answers(
    client: TestClient, tally: Tally, acme: str, tmp_path: Path
) -> None:
    expected = get_export(client, acme, "department_days").content
    tally.close()  # the CLI opens the DuckDB file itself
    out = tmp_path / "dept.csv"
    result = CliRunner().invoke(
        cli,
        ["export", "--db", str(tally.settings.db_path), "--org", "acme", "department_days",
         "--start", "2026-03-10", "--end", "2026-03-12", "--output", str(out)],
        env={"TALLY_NOW": NOW.isoformat()},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == expected
    assert expected.startswith(b"department_id,department_name,day,kind,")


def test_cli_export_reads_the_format_from_the_output_suffix(
    client: TestClient, tally: Tally, acme: str, tmp_path: Path
) -> None:
    expected = get_export(client, acme, "app_days", format="parquet").content
    tally.close()
    out = tmp_path / "apps.parquet"
    result = CliRunner().invoke(
        cli,
        ["export", "--db", str(tally.settings.db_path), "--org", "acme", "app_days",
         "--start", "2026-03-10", "--end", "2026-03-12", "--output", str(out)],
        env={"TALLY_NOW": NOW.isoformat()},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).equals(pq.read_table(io.BytesIO(expected)))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("apps")) == [
        "apps.parquet"
    ]


def test_cli_export_refuses_an_unknown_dataset(tally: Tally, tmp_path: Path) -> None:
    tally.close()
    result = CliRunner().invoke(
        cli,
        ["export", "--db", str(tally.settings.db_path), "--org", "acme", "nope",
         "--start", "2026-03-10", "--end", "2026-03-12"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert 'unknown dataset "nope"' in result.output


@pytest.fixture
def fresh(tmp_path: Path, settings: Settings) -> Settings:
    """A second environment (its own DuckDB file) with the same directory and no events."""
    other = dataclasses.replace(settings, db_path=tmp_path / "fresh.duckdb")
    with Tally(other) as tally:
        tally.access.bootstrap_admin(other.admin_token)
        with TestClient(create_app(tally)) as client:
            build_directory(Admin(client))
    return other


def answers(client: TestClient) -> dict[str, Any]:
    """Every statistics API's answers over the fixture's days, with org tokens made here."""
    admin = Admin(client)
    read = admin.token("acme", "read")
    lingma = {"x-yunxiao-token": read}
    window = {"startTime": "2026-03-09", "endTime": "2026-03-13"}
    out: dict[str, Any] = {}
    for department in ("eng", "web", "ops"):
        response = client.get(
            "/oapi/v1/lingma/organizations/acme/departmentUsage",
            params={"departmentId": department, **window},
            headers=lingma,
        )
        out[f"department {department}"] = (response.status_code, response.json())
    response = client.get(
        "/oapi/v1/lingma/organizations/acme/developerUsage", params=window, headers=lingma
    )
    out["developers"] = (response.status_code, response.json(), response.headers["x-total"])
    for kind in ("users", "developers", "workspaces"):
        response = client.get(
            "/api/statistics/",
            params={"stats_type": kind, "start": "2026-03-01", "end": "2026-03-14",
                    "org_domain": "acme.example"},
            headers=bearer(read),
        )  # fmt: skip
        out[kind] = (response.status_code, response.json())
    for day in ("2026-03-10", "2026-03-11", "2026-03-14"):
        response = client.post("/api/v1/app/usage_stats", json={"date": day}, headers=bearer(read))
        out[f"apps {day}"] = (response.status_code, response.json())
    return out


def test_round_trip_export_events_then_import_gives_the_same_answers(
    client: TestClient, tally: Tally, acme: str, fresh: Settings, tmp_path: Path
) -> None:
    whole = {"start": "2026-03-01", "end": "2026-03-14"}
    exported = get_export(client, acme, "events", format="parquet", **whole)
    assert exported.status_code == 200
    path = tmp_path / "events.parquet"
    path.write_bytes(exported.content)
    assert pq.read_table(path).num_rows == len(EVENTS)
    before = answers(client)
    assert before["department eng"][0] == 200
    assert before["department eng"][1]  # not vacuous
    assert before["apps 2026-03-11"][1]["items"]

    result = CliRunner().invoke(
        cli,
        ["import", "--db", str(fresh.db_path), "--org", "acme", str(path)],
        env={"TALLY_NOW": NOW.isoformat()},
    )
    assert result.exit_code == 0, result.output
    assert f"accepted {len(EVENTS)}, duplicates 0, rejected 0" in result.output

    with Tally(fresh) as other:
        other.access.bootstrap_admin(fresh.admin_token)
        with TestClient(create_app(other)) as other_client:
            assert answers(other_client) == before
            again = get_export(other_client, ADMIN, "events", format="parquet", **whole)
    assert pq.read_table(io.BytesIO(again.content)).equals(pq.read_table(path))


def test_default_store_paging_matches_the_duckdb_pages(tally: Tally, acme: str) -> None:
    """The interface's fallback (pages of list_events) and DuckDB's Arrow pages agree."""
    from tally.stores.base import EventStore

    store = tally.event_store
    start = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1_000_000)
    end = int(datetime(2026, 3, 14, tzinfo=UTC).timestamp() * 1_000_000)
    native = pa.concat_tables(store.event_batches("acme", start_us=start, end_us=end,
                                                  batch_rows=4))  # fmt: skip
    fallback = list(EventStore.event_batches(store, "acme", start_us=start, end_us=end,
                                             batch_rows=4))  # fmt: skip
    assert [t.num_rows for t in fallback] == [4, 4, 4, 3]
    assert pa.concat_tables(fallback).to_pylist() == native.to_pylist()
    assert native["id"].to_pylist()[:3] == ["x0", "e1", "e2"]


def test_csv_instants_carry_the_offset_of_their_own_moment() -> None:
    """New York moves from -05:00 to -04:00 at 2026-03-08 07:00Z; one microsecond before and at
    that instant, and a negative (pre-1970) instant."""
    zone = pa.timestamp("us", tz="America/New_York")
    switch = int(datetime(2026, 3, 8, 7, tzinfo=UTC).timestamp()) * 1_000_000
    micros = pa.array([switch - 1, switch, -1, None], pa.int64())
    schema = pa.schema([("at", zone)])
    table = pa.table([micros.cast(pa.timestamp("us", tz="UTC")).cast(zone)], schema=schema)
    assert b"".join(csv_chunks(schema, [table])).decode().split("\r\n") == [
        "at",
        '"2026-03-08T01:59:59.999999-05:00"',
        '"2026-03-08T03:00:00.000000-04:00"',
        '"1969-12-31T18:59:59.999999-05:00"',
        "",
        "",
    ]
