"""Tally's own API: the directory, tokens and events (``/api/v1/orgs/...``), RFC 9457 errors."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import msgspec
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response

from tally.api.base import Call, Facade, JSONResponse, Operation, Param, decode_json
from tally.engine.ingest import IngestResult
from tally.errors import BadRequest, NotFound, TallyError, UnsupportedMediaType
from tally.model.directory import (
    App,
    AppInput,
    Department,
    DepartmentInput,
    Directory,
    Member,
    MemberInput,
    Organization,
    OrgInput,
    Workspace,
    WorkspaceInput,
)
from tally.model.events import StoredEvent
from tally.service import Tally
from tally.timeutil import RFC3339_PATTERN, from_micros, parse_instant, to_micros, zone
from tally.tokens import Scope, TokenRecord

T = TypeVar("T")
PROBLEM_TYPE = "urn:tally:problem:"
ORG = "/api/v1/orgs/{org}"
EVENT_MEDIA = ("application/json", "application/x-ndjson", "application/ndjson", "")


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    scopes: list[str]
    #: RFC 3339 with an offset; the token is refused from then on (omitted: never expires).
    expires_at: str | None = None


_INTEGER = re.compile(r"-?[0-9]{1,18}")

#: An instant parameter: RFC 3339 with an offset.
INSTANT = {"type": "string", "pattern": RFC3339_PATTERN}

#: On answers that hold a secret or token details: no cache (browser, proxy) may keep them.
NO_STORE = {"cache-control": "no-store"}


class TallyAPI(Facade):
    name = "tally"
    tag = "Tally"
    error_media = "application/problem+json"
    error_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "request_id": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object"}},
        },
    }

    # -- errors ----------------------------------------------------------------------------
    def render_error(self, error: TallyError, call: Call | None, request_id: str) -> Response:
        slug = error.title.lower().replace(" ", "-")
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE + slug,
            "title": error.title,
            "status": error.status,
            "detail": error.detail,
            "request_id": request_id,
        }
        if error.field:
            body["errors"] = [{"field": error.field, "message": error.detail}]
        if error.errors:
            body["errors"] = error.errors
        return JSONResponse(body, status_code=error.status, media_type="application/problem+json")

    # -- helpers ---------------------------------------------------------------------------
    def _allowed(self, call: Call, scope: Scope) -> tuple[str, TokenRecord]:
        """The org of the path, after checking the caller's token may use ``scope`` there."""
        token = self.tally.access.authenticate(call.bearer())
        org_id = call.path("org")
        exists = self.tally.directory.get(org_id) is not None if token.org is None else True
        self.tally.access.authorize(token, org_id, scope, org_exists=exists)
        return org_id, token

    def _directory(self, call: Call, scope: Scope) -> Directory:
        org_id, _ = self._allowed(call, scope)
        return self.tally.directory.require(org_id)

    # -- organizations ---------------------------------------------------------------------
    def put_org(self, call: Call) -> Response:
        token = self.tally.access.authenticate(call.bearer())
        self.tally.access.require_environment_admin(token)
        org_id = call.path("org")
        body = decode_json(call.body, OrgInput)
        has_events = self.tally.directory.get(org_id) is not None and (
            self.tally.event_store.count_events(org_id) > 0
        )
        org = self.tally.directory.put_org(org_id, body, has_events=has_events)
        return JSONResponse(org)

    def backup(self, call: Call) -> Response:
        """The whole environment as one DuckDB file, consistent, taken while serving."""
        token = self.tally.access.authenticate(call.bearer())
        self.tally.access.require_environment_admin(token)
        folder = Path(tempfile.mkdtemp(prefix=".tally-backup-", dir=_backup_dir(self.tally)))
        target = folder / "backup.duckdb"
        try:
            self.tally.backup(target)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        stamp = self.tally.settings.clock().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        return FileResponse(
            target,
            media_type="application/vnd.duckdb",
            filename=f"tally-backup-{stamp}.duckdb",
            headers=NO_STORE,
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    def list_orgs(self, call: Call) -> Response:
        token = self.tally.access.authenticate(call.bearer())
        orgs = self.tally.directory.orgs()
        if token.org is not None:
            orgs = [o for o in orgs if o.id == token.org and "read" in token.scopes]
        return JSONResponse(orgs)

    def get_org(self, call: Call) -> Response:
        return JSONResponse(self._directory(call, "read").org)

    # -- departments -----------------------------------------------------------------------
    def put_department(self, call: Call) -> Response:
        org_id, _ = self._allowed(call, "admin")
        body = decode_json(call.body, DepartmentInput)
        return JSONResponse(self.tally.directory.put_department(org_id, call.path("id"), body))

    def list_departments(self, call: Call) -> Response:
        return JSONResponse(_by_id(self._directory(call, "read").departments))

    def get_department(self, call: Call) -> Response:
        return JSONResponse(_one(self._directory(call, "read").departments, call, "department"))

    # -- members ---------------------------------------------------------------------------
    def put_member(self, call: Call) -> Response:
        org_id, _ = self._allowed(call, "admin")
        body = decode_json(call.body, MemberInput)
        member = self.tally.directory.put_member(org_id, call.path("id"), body)
        return JSONResponse(self._member(member, self.tally.directory.require(org_id)))

    def list_members(self, call: Call) -> Response:
        directory = self._directory(call, "read")
        return JSONResponse([self._member(m, directory) for m in _by_id(directory.members)])

    def get_member(self, call: Call) -> Response:
        directory = self._directory(call, "read")
        return JSONResponse(self._member(_one(directory.members, call, "member"), directory))

    def _member(self, member: Member, directory: Directory) -> dict[str, Any]:
        tz = directory.org.timezone
        current = member.version_at(self.tally.settings.clock())
        return {
            "id": member.id,
            "name": member.name,
            "email": member.email,
            "developer": current.developer,
            "departments": list(current.departments),
            "created_at": _time(member.created_at, tz),
            "deleted_at": _time(member.deleted_at, tz),
            "versions": [
                {
                    "effective_at": _time(v.effective_at, tz),
                    "developer": v.developer,
                    "departments": list(v.departments),
                }
                for v in member.versions
            ],
        }

    # -- workspaces ------------------------------------------------------------------------
    def put_workspace(self, call: Call) -> Response:
        org_id, _ = self._allowed(call, "admin")
        body = decode_json(call.body, WorkspaceInput)
        workspace = self.tally.directory.put_workspace(org_id, call.path("id"), body)
        return JSONResponse(_workspace(workspace, self.tally.directory.require(org_id).org))

    def list_workspaces(self, call: Call) -> Response:
        directory = self._directory(call, "read")
        return JSONResponse([_workspace(w, directory.org) for w in _by_id(directory.workspaces)])

    def get_workspace(self, call: Call) -> Response:
        directory = self._directory(call, "read")
        return JSONResponse(
            _workspace(_one(directory.workspaces, call, "workspace"), directory.org)
        )

    # -- apps ------------------------------------------------------------------------------
    def put_app(self, call: Call) -> Response:
        org_id, _ = self._allowed(call, "admin")
        body = decode_json(call.body, AppInput)
        app = self.tally.directory.put_app(org_id, call.path("id"), body)
        return JSONResponse(_app(app, self.tally.directory.require(org_id).org))

    def list_apps(self, call: Call) -> Response:
        directory = self._directory(call, "read")
        return JSONResponse([_app(a, directory.org) for a in _by_id(directory.apps)])

    def get_app(self, call: Call) -> Response:
        directory = self._directory(call, "read")
        return JSONResponse(_app(_one(directory.apps, call, "app"), directory.org))

    # -- tokens ----------------------------------------------------------------------------
    def create_token(self, call: Call) -> Response:
        org_id, _ = self._allowed(call, "admin")
        body = decode_json(call.body, TokenRequest)
        expires_at = _instant_field(body.expires_at, "expires_at")
        secret, record = self.tally.access.create_token(org_id, body.scopes, expires_at)
        return JSONResponse(
            {"token": secret, **_token(record, self.tally.directory.require(org_id).org)},
            status_code=201,
            headers=NO_STORE,
        )

    def list_tokens(self, call: Call) -> Response:
        # Listing tokens (ids and scopes, never secrets) is an admin matter, not a read one.
        org_id, _ = self._allowed(call, "admin")
        org = self.tally.directory.require(org_id).org
        tokens = [_token(t, org) for t in self.tally.access.tokens_of(org_id)]
        return JSONResponse(tokens, headers=NO_STORE)

    def revoke_token(self, call: Call) -> Response:
        org_id, _ = self._allowed(call, "admin")
        self.tally.access.revoke_token(org_id, call.path("id"))
        return Response(status_code=204, headers=NO_STORE)

    # -- events ----------------------------------------------------------------------------
    def post_events(self, call: Call) -> Response:
        org_id, _ = self._allowed(call, "ingest")
        content_type = call.header("content-type") or ""
        if content_type.split(";")[0].strip().lower() not in EVENT_MEDIA:
            raise UnsupportedMediaType(
                "send events as application/json (an array) or application/x-ndjson"
            )
        result: IngestResult = self.tally.ingestor.ingest_body(org_id, call.body, content_type)
        call.request.state.ingested = (org_id, result)  # for the events counters
        return JSONResponse(result)

    def list_events(self, call: Call) -> Response:
        directory = self._directory(call, "read")
        limit = _int_param(call, "limit", 100, 1, self.tally.settings.events_page_max)
        start, end = _instant_param(call, "start"), _instant_param(call, "end")
        after = _cursor(call.query("cursor"))
        rows = self.tally.event_store.list_events(
            directory.org.id, start_us=start, end_us=end, after=after, limit=limit
        )
        next_cursor = f"{rows[-1].ts}:{rows[-1].id}" if len(rows) == limit else None
        tz = directory.org.timezone
        return JSONResponse({"events": [_event(r, tz) for r in rows], "next_cursor": next_cursor})

    # -- the table -------------------------------------------------------------------------
    def operations(self) -> list[Operation]:
        org = Param("org", "path", True, "Organization id")
        oid = Param("id", "path", True, "Object id")
        return [
            Operation(
                "POST",
                "/api/v1/backup",
                self.backup,
                "A consistent copy of the whole environment as a DuckDB file (environment"
                " admin; the DuckDB store only)",
                response_media="application/vnd.duckdb",
                errors=(409,),
            ),
            Operation(
                "GET",
                "/api/v1/orgs",
                self.list_orgs,
                "List organizations the token sees",
                response=list[Organization],
            ),
            Operation(
                "PUT",
                ORG,
                self.put_org,
                "Create or replace an organization (environment admin)",
                params=[org],
                body=OrgInput,
                response=Organization,
                errors=(409,),
            ),
            Operation(
                "GET", ORG, self.get_org, "Get an organization", params=[org], response=Organization
            ),
            *self._crud(
                "departments",
                DepartmentInput,
                Department,
                org,
                oid,
                self.put_department,
                self.get_department,
                self.list_departments,
            ),
            *self._crud(
                "members",
                MemberInput,
                dict[str, Any],
                org,
                oid,
                self.put_member,
                self.get_member,
                self.list_members,
            ),
            *self._crud(
                "workspaces",
                WorkspaceInput,
                dict[str, Any],
                org,
                oid,
                self.put_workspace,
                self.get_workspace,
                self.list_workspaces,
            ),
            *self._crud(
                "apps",
                AppInput,
                dict[str, Any],
                org,
                oid,
                self.put_app,
                self.get_app,
                self.list_apps,
            ),
            Operation(
                "POST",
                f"{ORG}/tokens",
                self.create_token,
                "Create a token (its secret is shown once)",
                params=[org],
                body=TokenRequest,
                response=dict[str, Any],
                status=201,
            ),
            Operation(
                "GET",
                f"{ORG}/tokens",
                self.list_tokens,
                "List the organization's tokens (never their secrets)",
                params=[org],
                response=list[dict[str, Any]],
            ),
            Operation(
                "DELETE",
                f"{ORG}/tokens/{{id}}",
                self.revoke_token,
                "Revoke a token (refused from the next request on, on every worker)",
                params=[org, Param("id", "path", description="The token's id")],
                status=204,
            ),
            Operation(
                "POST",
                f"{ORG}/events",
                self.post_events,
                "Ingest events (a JSON array, or NDJSON as application/x-ndjson)",
                params=[org],
                # Any array: each item is validated on its own, and one that is not an event
                # (not even an object) is listed in the answer's ``rejected``, not refused.
                body={
                    "application/json": {"type": "array"},
                    "application/x-ndjson": {"type": "string"},
                },
                response=IngestResult,
                errors=(415,),
            ),
            Operation(
                "GET",
                f"{ORG}/events",
                self.list_events,
                "List stored events, by time",
                params=[
                    org,
                    Param("start", description="RFC 3339, inclusive", schema=INSTANT),
                    Param("end", description="RFC 3339, exclusive", schema=INSTANT),
                    Param(
                        "limit",
                        description="Events per page (default 100)",
                        schema={
                            "type": "integer",
                            "minimum": 1,
                            "maximum": self.tally.settings.events_page_max,
                        },
                    ),
                    Param(
                        "cursor",
                        description="next_cursor of the previous page",
                        schema={"type": "string", "pattern": r"^-?[0-9]+:"},
                    ),
                ],
                response=dict[str, Any],
            ),
        ]

    @staticmethod
    def _crud(
        kind: str, body: Any, out: Any, org: Param, oid: Param, put: Any, get: Any, lst: Any
    ) -> list[Operation]:
        one = f"{ORG}/{kind}/{{id}}"
        return [
            Operation(
                "PUT",
                one,
                put,
                f"Create or replace one of {kind}",
                params=[org, oid],
                body=body,
                response=out,
            ),
            Operation("GET", one, get, f"Get one of {kind}", params=[org, oid], response=out),
            Operation(
                "GET", f"{ORG}/{kind}", lst, f"List {kind}", params=[org], response=list[out]
            ),
        ]


def _by_id(objects: Mapping[str, T]) -> list[T]:
    """A list answer, in id order."""
    return [objects[key] for key in sorted(objects)]


def _one(objects: Any, call: Call, kind: str) -> Any:
    found = objects.get(call.path("id"))
    if found is None:
        raise NotFound(f'{kind} "{call.path("id")}" does not exist')
    return found


def _time(instant: datetime | None, tz: str) -> str | None:
    return None if instant is None else instant.astimezone(zone(tz)).isoformat()


def _workspace(workspace: Workspace, org: Organization) -> dict[str, Any]:
    tz = org.timezone
    return {
        "id": workspace.id,
        "name": workspace.name,
        "created_at": _time(workspace.created_at, tz),
        "deleted_at": _time(workspace.deleted_at, tz),
        "members": [
            {"member": m.member, "since": _time(m.since, tz), "until": _time(m.until, tz)}
            for m in workspace.members
        ],
    }


def _app(app: App, org: Organization) -> dict[str, Any]:
    tz = org.timezone
    return {
        "id": app.id,
        "name": app.name,
        "creator": app.creator,
        "created_at": _time(app.created_at, tz),
        "deleted_at": _time(app.deleted_at, tz),
    }


def _token(record: TokenRecord, org: Organization) -> dict[str, Any]:
    tz = org.timezone
    return {
        "id": record.id,
        "scopes": list(record.scopes),
        "created_at": _time(record.created_at, tz),
        "expires_at": _time(record.expires_at, tz),
        "revoked_at": _time(record.revoked_at, tz),
        "last_used_at": _time(record.last_used_at, tz),
    }


def _backup_dir(tally: Tally) -> Path:
    """Where a backup is written before it is sent: beside the store's file (the same disk,
    which has room for the store), else the temp folder."""
    return (
        tally.settings.duckdb_path().resolve().parent
        if not tally.settings.scale_out
        else Path(tempfile.gettempdir())
    )


def _instant_field(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        return parse_instant(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} {exc}", field=name) from exc


_EVENT_FIELDS = (
    "ide",
    "language",
    "chat_type",
    "source",
    "accepted",
    "lines_suggested",
    "lines_accepted",
    "lines_changed",
    "workspace",
    "app",
    "resource",
    "delta",
    "records",
)


def _event(row: StoredEvent, tz: str) -> dict[str, Any]:
    """A stored event in the shape it was sent (time in the org's offset)."""
    out: dict[str, Any] = {
        "id": row.id,
        "time": _time(from_micros(row.ts), tz),
        "type": row.type,
        "member": row.member,
    }
    for name in _EVENT_FIELDS:
        value = getattr(row, name)
        if value is not None:
            out[name] = value
    return out


def _int_param(call: Call, name: str, default: int, low: int, high: int) -> int:
    raw = call.query(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}", field=name)
    return int(raw)


def _instant_param(call: Call, name: str) -> int | None:
    raw = call.query(name)
    if raw is None:
        return None
    try:
        return to_micros(parse_instant(raw))
    except ValueError as exc:
        raise BadRequest(f"{name} {exc}", field=name) from exc


def _cursor(raw: str | None) -> tuple[int, str] | None:
    if raw is None:
        return None
    ts, sep, event_id = raw.partition(":")
    if not sep or not _INTEGER.fullmatch(ts):
        raise BadRequest("cursor must be the next_cursor of a previous page", field="cursor")
    return int(ts), event_id
