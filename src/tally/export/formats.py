"""The export file formats, written chunk by chunk: CSV (RFC 4180: a header row, CRLF line
ends, fields with a comma, a quote or a line break in quotes, quotes doubled) and Parquet (one
row group per table, typed columns). Each encoder turns Arrow tables into byte chunks, so a
response or a file receives the export as it is produced."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FORMATS = ("csv", "parquet")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8; header=present",
    "parquet": "application/vnd.apache.parquet",
}


def encode(fmt: str, schema: pa.Schema, tables: Iterable[pa.Table]) -> Iterator[bytes]:
    """``tables`` (each in ``schema``) as chunks of a ``fmt`` file."""
    if fmt == "csv":
        return csv_chunks(schema, tables)
    return parquet_chunks(schema, tables)


# -- CSV -------------------------------------------------------------------------------------

_CSV_OPTIONS = pacsv.WriteOptions(
    include_header=False, eol="\r\n", quoting_style="needed", batch_size=8192
)


def csv_chunks(schema: pa.Schema, tables: Iterable[pa.Table]) -> Iterator[bytes]:
    """The header row, then each table's rows. Instants are written as RFC 3339 in the
    org's offset (``2026-03-01T09:15:00.250000+08:00``), days as ``YYYY-MM-DD``, booleans as
    ``true``/``false``, nulls as empty fields (an empty string is ``""``)."""
    yield (",".join(schema.names) + "\r\n").encode()
    for table in tables:
        sink = io.BytesIO()
        pacsv.write_csv(_csv_ready(table), sink, _CSV_OPTIONS)
        yield sink.getvalue()


def _csv_ready(table: pa.Table) -> pa.Table:
    """``table`` with each timestamp column turned into RFC 3339 text in its own zone."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            text = pc.strftime(table[field.name], format="%Y-%m-%dT%H:%M:%S%z")
            text = pc.replace_substring_regex(
                text, pattern=r"([+-]\d\d)(\d\d)$", replacement=r"\1:\2"
            )
            table = table.set_column(i, field.name, text)
    return table


# -- Parquet ---------------------------------------------------------------------------------


class _Drain(io.RawIOBase):
    """A write-only file that keeps what was written until :meth:`take` hands it over."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def parquet_chunks(schema: pa.Schema, tables: Iterable[pa.Table]) -> Iterator[bytes]:
    """A Parquet file, one row group per table, handed over as each row group is written
    (the footer comes last). Timestamps keep their zone, days are DATE, counts INT64."""
    drain = _Drain()
    writer = pq.ParquetWriter(drain, schema, compression="zstd")
    try:
        for table in tables:
            if table.num_rows:
                writer.write_table(table, row_group_size=table.num_rows)
                yield drain.take()
    finally:
        writer.close()
    yield drain.take()
