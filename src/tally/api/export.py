"""The export route of Tally's own API: ``GET /api/v1/orgs/{org}/export/{dataset}``, a CSV or
Parquet file streamed as it is written (``read`` scope; RFC 9457 errors, before the first byte)."""

from __future__ import annotations

from datetime import date

from starlette.responses import Response, StreamingResponse

from tally.api.base import Call, Operation, Param
from tally.api.lingma import DAY
from tally.api.tally import ORG, TallyAPI
from tally.errors import BadRequest
from tally.export import DATASETS, FORMATS, export
from tally.export.formats import MEDIA_TYPES
from tally.timeutil import parse_date


class ExportAPI(TallyAPI):
    """Tally's own API family (its token rules and error shape), the export part."""

    name = "export"
    tag = "Export"

    def get_export(self, call: Call) -> Response:
        org_id, _ = self._allowed(call, "read")
        first, last = _date(call, "start"), _date(call, "end")
        found = export(
            self.tally, org_id, call.path("dataset"), first, last, call.query("format") or "csv"
        )
        return StreamingResponse(
            found.chunks,
            media_type=found.media_type,
            headers={"content-disposition": found.content_disposition},
        )

    def operations(self) -> list[Operation]:
        return [
            Operation(
                "GET",
                f"{ORG}/export/{{dataset}}",
                self.get_export,
                "Export a dataset of the organization as CSV or Parquet (streamed)",
                params=[
                    Param("org", "path", True, "Organization id"),
                    Param(
                        "dataset",
                        "path",
                        True,
                        "The dataset",
                        schema={"type": "string", "enum": list(DATASETS)},
                    ),
                    Param(
                        "start",
                        required=True,
                        description="First org day, YYYY-MM-DD",
                        schema=DAY,
                    ),
                    Param(
                        "end",
                        required=True,
                        description="Last org day (inclusive)",
                        schema=DAY,
                    ),
                    Param(
                        "format",
                        description="csv (default) or parquet",
                        schema={"type": "string", "enum": list(FORMATS)},
                    ),
                ],
                response_media=tuple(m.split(";")[0] for m in MEDIA_TYPES.values()),
            )
        ]


def _date(call: Call, name: str) -> date:
    raw = call.query(name)
    if raw is None or raw == "":
        raise BadRequest(f"{name} is required (YYYY-MM-DD)", field=name)
    try:
        return parse_date(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} {exc}", field=name) from exc
