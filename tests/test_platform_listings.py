"""The platform listings beside the assistant's usage APIs (members, departments), against
hand-worked directories; the clock is pinned at 2026-03-15T04:00Z (see ``conftest``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from tests.conftest import ADMIN, Admin
from tests.test_lingma import assert_request_id, completion, departments, paging, send

MEMBERS = "/oapi/v1/platform/organizations/{org}/members"
DEPARTMENTS = "/oapi/v1/platform/organizations/{org}/departments"


def get(client: TestClient, path: str, token: str | None, **params: str) -> httpx.Response:
    headers = {} if token is None else {"x-yunxiao-token": token}
    response: httpx.Response = client.get(path, params=params, headers=headers)
    return response


def put_member(admin: Admin, org: str, member_id: str, **body: Any) -> None:
    admin.put(
        f"{org}/members/{member_id}",
        {"name": member_id.title(), "created_at": "2026-01-01T00:00:00+08:00", **body},
    )


@pytest.fixture
def acme(admin: Admin) -> str:
    """Acme (UTC+8): eng with children eng-web and eng-app (eng-web with eng-web-ui below it);
    sales beside eng. A read token."""
    admin.org("acme")
    departments(
        admin,
        "acme",
        {
            "eng": None,
            "eng-web": "eng",
            "eng-app": "eng",
            "eng-web-ui": "eng-web",
            "sales": None,
        },
    )
    return admin.token("acme", "read")


# -- members -----------------------------------------------------------------------------------


def test_members_list_every_member_by_id_with_status_roles_and_last_visit(
    client: TestClient, admin: Admin, acme: str
) -> None:
    put_member(
        admin,
        "acme",
        "alice",
        email="alice@acme.example",
        developer=True,
        departments=["sales", "eng-web"],  # the PUT's order is kept
        created_at="2023-08-31T11:59:16.201999+08:00",
    )
    put_member(admin, "acme", "Bob", deleted_at="2026-03-15T03:59:59Z")  # deleted: before now
    put_member(admin, "acme", "carol", deleted_at="2026-03-20T00:00:00Z")  # not yet deleted
    # Dave moves to sales and stops being a developer next week: today he is in eng, a developer.
    put_member(admin, "acme", "dave", developer=True, departments=["eng"])
    put_member(
        admin,
        "acme",
        "dave",
        developer=False,
        departments=["sales"],
        effective_at="2026-03-20T00:00:00+08:00",
    )
    send(
        admin,
        "acme",
        [
            completion("a1", "2026-03-02T10:00:00+08:00", "alice"),
            # The latest event of any type: a platform activity, fractions truncated.
            {
                "id": "a2",
                "time": "2026-03-14T09:30:15.999999+08:00",
                "type": "activity",
                "member": "alice",
            },
            completion("a0", "2026-02-01T10:00:00+08:00", "alice"),
            completion("b1", "2026-03-01T23:59:59+08:00", "Bob"),
        ],
    )

    response = get(client, MEMBERS.format(org="acme"), acme)

    assert response.status_code == 200
    answer = response.json()
    assert answer == [
        {  # "Bob" sorts before the lower-case ids (code-point order)
            "deptIds": [],
            "id": "Bob",
            "joined": "2025-12-31T16:00:00.000Z",
            "name": "Bob",
            "email": "",
            "organizationId": "acme",
            "roleIds": [],
            "status": "DELETED",
            "userId": "Bob",
            "visited": "2026-03-01T15:59:59.000Z",
        },
        {
            "deptIds": ["sales", "eng-web"],
            "id": "alice",
            "joined": "2023-08-31T03:59:16.201Z",
            "name": "Alice",
            "email": "alice@acme.example",
            "organizationId": "acme",
            "roleIds": ["developer"],
            "status": "ENABLED",
            "userId": "alice",
            "visited": "2026-03-14T01:30:15.999Z",
        },
        {  # no event: no "visited" key at all
            "deptIds": [],
            "id": "carol",
            "joined": "2025-12-31T16:00:00.000Z",
            "name": "Carol",
            "email": "",
            "organizationId": "acme",
            "roleIds": [],
            "status": "ENABLED",
            "userId": "carol",
        },
        {
            "deptIds": ["eng"],
            "id": "dave",
            "joined": "2025-12-31T16:00:00.000Z",
            "name": "Dave",
            "email": "",
            "organizationId": "acme",
            "roleIds": ["developer"],
            "status": "ENABLED",
            "userId": "dave",
        },
    ]
    assert list(answer[0]) == [
        "deptIds",
        "id",
        "joined",
        "name",
        "email",
        "organizationId",
        "roleIds",
        "status",
        "userId",
        "visited",
    ]
    assert paging(response) == {
        "x-next-page": "2",
        "x-page": "1",
        "x-per-page": "100",
        "x-prev-page": "0",
        "x-total": "4",
        "x-total-pages": "1",
    }


def test_a_member_deleted_exactly_now_is_deleted(
    client: TestClient, admin: Admin, acme: str
) -> None:
    put_member(admin, "acme", "erin", deleted_at="2026-03-15T04:00:00Z")

    (erin,) = get(client, MEMBERS.format(org="acme"), acme).json()

    assert erin["status"] == "DELETED"


def test_member_pages_carry_every_vendor_header(
    client: TestClient, admin: Admin, acme: str
) -> None:
    for who in ("m1", "m2", "m3"):
        put_member(admin, "acme", who)

    def page(**params: str) -> tuple[list[str], dict[str, str]]:
        response = get(client, MEMBERS.format(org="acme"), acme, **params)
        assert response.status_code == 200
        assert_request_id(response)
        return [m["id"] for m in response.json()], paging(response)

    def headers(page: int, next_page: str) -> dict[str, str]:
        return {
            "x-next-page": next_page,
            "x-page": str(page),
            "x-per-page": "2",
            "x-prev-page": str(page - 1),
            "x-total": "3",
            "x-total-pages": "2",
        }

    assert page(page="1", perPage="2") == (["m1", "m2"], headers(1, "2"))
    assert page(page="2", perPage="2") == (["m3"], headers(2, "3"))
    assert page(page="3", perPage="2") == ([], headers(3, ""))


# -- departments -------------------------------------------------------------------------------


def test_departments_list_the_roots_or_the_children_of_a_parent(
    client: TestClient, acme: str
) -> None:
    path = DEPARTMENTS.format(org="acme")

    roots = get(client, path, acme)
    also_roots = get(client, path, acme, parentId="")
    children = get(client, path, acme, parentId="eng")
    leaves = get(client, path, acme, parentId="eng-app")

    assert roots.json() == [
        {"hasSub": True, "id": "eng", "name": "Eng", "organizationId": "acme"},
        {"hasSub": False, "id": "sales", "name": "Sales", "organizationId": "acme"},
    ]
    assert also_roots.json() == roots.json()
    assert children.json() == [
        {
            "hasSub": False,
            "id": "eng-app",
            "name": "Eng-App",
            "organizationId": "acme",
            "parentId": "eng",
        },
        {
            "hasSub": True,
            "id": "eng-web",
            "name": "Eng-Web",
            "organizationId": "acme",
            "parentId": "eng",
        },
    ]
    assert list(children.json()[0]) == ["hasSub", "id", "name", "organizationId", "parentId"]
    assert leaves.content == b"[]"
    assert paging(children) == {
        "x-next-page": "2",
        "x-page": "1",
        "x-per-page": "100",
        "x-prev-page": "0",
        "x-total": "2",
        "x-total-pages": "1",
    }
    assert paging(leaves) == {
        "x-next-page": "",
        "x-page": "1",
        "x-per-page": "100",
        "x-prev-page": "0",
        "x-total": "0",
        "x-total-pages": "0",
    }


def test_department_list_pages(client: TestClient, acme: str) -> None:
    response = get(client, DEPARTMENTS.format(org="acme"), acme, page="2", perPage="1")

    assert [d["id"] for d in response.json()] == ["sales"]
    assert paging(response) == {
        "x-next-page": "3",
        "x-page": "2",
        "x-per-page": "1",
        "x-prev-page": "1",
        "x-total": "2",
        "x-total-pages": "2",
    }


def test_one_department(client: TestClient, acme: str) -> None:
    path = DEPARTMENTS.format(org="acme")

    root = get(client, f"{path}/eng", acme)
    child = get(client, f"{path}/eng-web-ui", acme)

    assert root.status_code == 200
    assert root.json() == {"hasSub": True, "id": "eng", "name": "Eng", "organizationId": "acme"}
    assert child.json() == {
        "hasSub": False,
        "id": "eng-web-ui",
        "name": "Eng-Web-Ui",
        "organizationId": "acme",
        "parentId": "eng-web",
    }


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        (DEPARTMENTS, {"parentId": "nope"}, 'department "nope" does not exist'),
        (DEPARTMENTS + "/nope", {}, 'department "nope" does not exist'),
    ],
)
def test_unknown_departments_answer_404(
    client: TestClient, acme: str, path: str, params: dict[str, str], message: str
) -> None:
    response = get(client, path.format(org="acme"), acme, **params)

    assert response.status_code == 404
    assert response.json() == {
        "errorCode": "NotFound",
        "errorMessage": message,
        "requestId": assert_request_id(response),
    }


@pytest.mark.parametrize("path", [MEMBERS, DEPARTMENTS, DEPARTMENTS + "/eng"])
@pytest.mark.parametrize(
    ("org", "who", "status", "code", "message"),
    [
        ("acme", "nobody", 401, "Unauthorized", "this call needs a token"),
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
    path: str,
    org: str,
    who: str,
    status: int,
    code: str,
    message: str,
) -> None:
    admin.org("globex", timezone="America/New_York")
    tokens = {
        "nobody": None,
        "globex-reader": admin.token("globex", "read"),
        "acme-ingester": admin.token("acme", "ingest", "admin"),
        "environment-admin": ADMIN,
    }

    # Authentication comes before validation: the paging parameters here are bad too.
    response = get(client, path.format(org=org), tokens[who], perPage="0")

    assert response.status_code == status
    assert response.json() == {
        "errorCode": code,
        "errorMessage": message,
        "requestId": assert_request_id(response),
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"perPage": "101"}, "perPage must be an integer from 1 to 100"),
        ({"page": "0"}, "page must be an integer >= 1"),
    ],
)
@pytest.mark.parametrize("path", [MEMBERS, DEPARTMENTS])
def test_bad_paging_answers_400(
    client: TestClient, acme: str, path: str, params: dict[str, str], message: str
) -> None:
    response = get(client, path.format(org="acme"), acme, **params)

    assert response.status_code == 400
    assert response.json() == {
        "errorCode": "BadRequest",
        "errorMessage": message,
        "requestId": assert_request_id(response),
    }


def test_the_environment_admin_reads_any_org(client: TestClient, admin: Admin, acme: str) -> None:
    put_member(admin, "acme", "alice")

    response = get(client, MEMBERS.format(org="acme"), ADMIN)

    assert [m["id"] for m in response.json()] == ["alice"]
