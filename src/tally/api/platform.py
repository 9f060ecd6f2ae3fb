"""The platform listings the AI assistant's clients call beside its usage APIs
(``/oapi/v1/platform/...``): the organization's members and its department tree, with the same
``x-yunxiao-token``, ``x-*`` paging headers and ``errorCode`` bodies."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from starlette.responses import Response

from tally.api.base import Call, JSONResponse, Operation, Param
from tally.api.lingma import PAGING_PARAMS, YunxiaoFacade, page_headers, paging
from tally.engine.member_usage import (
    DepartmentListing,
    MemberListing,
    get_department,
    list_departments,
    list_members,
)
from tally.timeutil import from_micros

MEMBERS_PATH = "/oapi/v1/platform/organizations/{organizationId}/members"
DEPARTMENTS_PATH = "/oapi/v1/platform/organizations/{organizationId}/departments"
DEPARTMENT_PATH = "/oapi/v1/platform/organizations/{organizationId}/departments/{id}"


# The wire shapes, fields in the vendor example's order; a key Tally has no value for is left
# out (UNSET), never null.
class MemberItem(msgspec.Struct, rename="camel"):
    dept_ids: list[str]
    id: str
    joined: str
    name: str
    email: str
    organization_id: str
    role_ids: list[str]
    status: str
    user_id: str
    visited: str | msgspec.UnsetType = msgspec.UNSET


class DepartmentItem(msgspec.Struct, rename="camel"):
    has_sub: bool
    id: str
    name: str
    organization_id: str
    parent_id: str | msgspec.UnsetType = msgspec.UNSET


class PlatformAPI(YunxiaoFacade):
    name = "platform"
    tag = "Platform"

    def members(self, call: Call) -> Response:
        org_id = self.authorized_org(call)
        page, per_page = paging(call)
        directory = self.tally.directory.require(org_id)
        now = self.tally.settings.clock()
        found = list_members(self.tally.event_store, directory, now, page, per_page)
        rows = [_member_item(row, org_id) for row in found.rows]
        headers = page_headers(page, per_page, len(rows), found.total, found.total_pages)
        return JSONResponse(rows, headers=headers)

    def departments(self, call: Call) -> Response:
        org_id = self.authorized_org(call)
        page, per_page = paging(call)
        directory = self.tally.directory.require(org_id)
        found = list_departments(directory, call.query("parentId") or None, page, per_page)
        rows = [_department_item(row, org_id) for row in found.rows]
        headers = page_headers(page, per_page, len(rows), found.total, found.total_pages)
        return JSONResponse(rows, headers=headers)

    def department(self, call: Call) -> Response:
        org_id = self.authorized_org(call)
        directory = self.tally.directory.require(org_id)
        return JSONResponse(_department_item(get_department(directory, call.path("id")), org_id))

    def operations(self) -> list[Operation]:
        org = Param("organizationId", "path", True, "Organization id")
        return [
            Operation(
                "GET",
                MEMBERS_PATH,
                self.members,
                "The organization's members (deleted ones too), by id",
                params=[org, *PAGING_PARAMS],
                response=list[MemberItem],
                auth="x-yunxiao-token",
            ),
            Operation(
                "GET",
                DEPARTMENTS_PATH,
                self.departments,
                "The direct sub-departments of a department, or the root departments, by id",
                params=[
                    org,
                    Param("parentId", description="Parent department (default: the roots)"),
                    *PAGING_PARAMS,
                ],
                response=list[DepartmentItem],
                auth="x-yunxiao-token",
            ),
            Operation(
                "GET",
                DEPARTMENT_PATH,
                self.department,
                "One department",
                params=[org, Param("id", "path", True, "Department id")],
                response=DepartmentItem,
                auth="x-yunxiao-token",
            ),
        ]


def format_millis(instant: datetime) -> str:
    """UTC with milliseconds (truncated) and ``Z``: ``2023-08-31T03:59:16.201Z``."""
    utc = instant.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def _member_item(row: MemberListing, org_id: str) -> MemberItem:
    member = row.member
    return MemberItem(
        dept_ids=list(row.departments),
        id=member.id,
        joined=format_millis(member.created_at),
        name=member.name,
        email=member.email,
        organization_id=org_id,
        role_ids=["developer"] if row.developer else [],
        status="DELETED" if row.deleted else "ENABLED",
        user_id=member.id,
        visited=msgspec.UNSET
        if row.visited_us is None
        else format_millis(from_micros(row.visited_us)),
    )


def _department_item(row: DepartmentListing, org_id: str) -> DepartmentItem:
    department = row.department
    return DepartmentItem(
        has_sub=row.has_children,
        id=department.id,
        name=department.name,
        organization_id=org_id,
        parent_id=msgspec.UNSET if department.parent is None else department.parent,
    )
