"""Export: one organization's datasets over a window of org days, as CSV or Parquet, streamed
(``GET /api/v1/orgs/{org}/export/{dataset}`` and ``tally export`` both call :func:`export`).

``datasets`` says what each dataset holds (its stable column list) and reads it from the engine;
``formats`` writes the files chunk by chunk.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote

from tally.errors import BadRequest, NotFound
from tally.export.datasets import DATASETS, Column, Dataset, Window, schema_of
from tally.export.formats import FORMATS, MEDIA_TYPES, encode
from tally.service import Tally

__all__ = ["DATASETS", "FORMATS", "Column", "Dataset", "Export", "export"]


@dataclass(frozen=True)
class Export:
    """A checked export, ready to stream: nothing is read until :attr:`chunks` is iterated."""

    org_id: str
    dataset: str
    first_day: date
    last_day: date
    format: str
    chunks: Iterator[bytes]

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def filename(self) -> str:
        """``tally-<org>-<dataset>-<first>-<last>.<format>``."""
        return f"tally-{self.org_id}-{self.dataset}-{self.first_day}-{self.last_day}.{self.format}"

    @property
    def content_disposition(self) -> str:
        """An attachment with the file name: plain ASCII (other characters as ``_``) in
        ``filename``, the exact name in ``filename*`` (RFC 6266 / RFC 8187)."""
        plain = re.sub(r"[^A-Za-z0-9._-]", "_", self.filename)
        return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(self.filename)}"


def export(
    tally: Tally, org_id: str, dataset: str, first_day: date, last_day: date, fmt: str = "csv"
) -> Export:
    """Check the request (known dataset and format, ``first_day <= last_day``, a window of at
    most ``settings.export_max_days`` days, a known organization) and answer the export.

    Every check happens here, before the first byte: once streaming has begun a response can
    no longer change its status.
    """
    chosen = DATASETS.get(dataset)
    if chosen is None:
        raise NotFound(
            f'unknown dataset "{dataset}": one of {", ".join(DATASETS)}', field="dataset"
        )
    if fmt not in FORMATS:
        raise BadRequest(f"format must be one of {', '.join(FORMATS)}", field="format")
    if last_day < first_day:
        raise BadRequest("end must not be before start", field="end")
    limit = tally.settings.export_max_days
    if (last_day - first_day).days >= limit:
        raise BadRequest(f"the window from start to end may span at most {limit} days", field="end")
    directory = tally.directory.get(org_id)
    if directory is None:
        raise NotFound(f'organization "{org_id}" does not exist')
    window = Window(
        store=tally.event_store,
        directory=directory,
        first_day=first_day,
        last_day=last_day,
        now=tally.settings.clock(),
        max_days=limit,
    )
    schema = schema_of(chosen.columns, directory.org.timezone)
    chunks = encode(fmt, schema, chosen.tables(window))
    return Export(org_id, dataset, first_day, last_day, fmt, chunks)
