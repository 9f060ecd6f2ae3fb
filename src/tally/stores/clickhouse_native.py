"""Arrow columns as ClickHouse's Native format, built with numpy (no per-value Python work), and
sent as one data block over a clickhouse-driver connection: the fast path of the event store's
inserts and of the id tables its duplicate check sends (the driver's own encoder costs a few
hundred nanoseconds per value, which bounded an import at ~25k events/s).

Only the types the store uses: ``String``, ``Int64``, ``UInt8``, ``Date`` and ``Nullable`` of
the first three. The wire layout is the driver's own (``BlockOutputStream.write``), so the
connection stays usable for the driver afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: (column name, ClickHouse type)
Structure = Sequence[tuple[str, str]]


def encode_column(array: pa.Array | pa.ChunkedArray, kind: str) -> bytes:
    """One column's Native payload (after the name, type and serialization byte)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    nullable = kind.startswith("Nullable(")
    inner = kind[len("Nullable(") : -1] if nullable else kind
    head = b""
    if nullable:
        head = np.asarray(array.is_null(), dtype=np.uint8).tobytes()
    if inner == "String":
        return head + _strings(array)
    if inner == "Int64":
        values = pc.fill_null(array.cast(pa.int64()), 0)
        return head + np.asarray(values, dtype="<i8").tobytes()
    if inner == "UInt8":
        values = pc.fill_null(array.cast(pa.uint8()), 0)
        return head + np.asarray(values, dtype=np.uint8).tobytes()
    if inner == "Date":
        days = pc.fill_null(array.cast(pa.date32()).cast(pa.int32()), 0)
        return head + np.asarray(days, dtype=np.int32).astype("<u2").tobytes()
    raise TypeError(f"no Native encoding for {kind}")


def _strings(array: pa.Array) -> bytes:
    """Each value as its LEB128 length then its UTF-8 bytes (a null as ``""``)."""
    array = pc.fill_null(array.cast(pa.large_string()), "")
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    n = len(array)
    if n == 0:
        return b""
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[array.offset : array.offset + n + 1]
    data = (
        np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
        if data_buffer is not None
        else np.empty(0, np.uint8)
    )
    lengths = np.diff(offsets)
    width = np.ones(n, dtype=np.int64)  # bytes of each length's varint
    for bits in (7, 14, 21, 28, 35):
        width += lengths >= (1 << bits)
    sizes = width + lengths
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    out = np.empty(int(sizes.sum()), dtype=np.uint8)
    is_data = np.ones(len(out), dtype=np.bool_)
    for byte in range(int(width.max())):
        rows = np.nonzero(width > byte)[0] if byte else slice(None)
        chunk = (lengths[rows] >> (7 * byte)) & 0x7F
        chunk |= np.where(width[rows] - 1 > byte, 0x80, 0)
        at = starts[rows] + byte
        out[at] = chunk
        is_data[at] = False
    out[is_data] = data  # the values' bytes, in order, around the lengths
    return out.tobytes()


def encode_block(table: pa.Table, structure: Structure) -> list[tuple[str, str, bytes]]:
    """The columns of ``structure`` (read from ``table`` by name) as Native payloads."""
    return [(name, kind, encode_column(table[name], kind)) for name, kind in structure]


# -- over a clickhouse-driver connection ------------------------------------------------------


def _write_block(
    connection: Any, table_name: str, columns: list[tuple[str, str, bytes]], rows: int
) -> None:
    """One Data packet, as ``Connection.send_data`` writes it."""
    from clickhouse_driver import defines  # type: ignore[import-untyped]
    from clickhouse_driver.block import BlockInfo  # type: ignore[import-untyped]
    from clickhouse_driver.protocol import ClientPacketTypes  # type: ignore[import-untyped]
    from clickhouse_driver.varint import write_varint  # type: ignore[import-untyped]
    from clickhouse_driver.writer import write_binary_str, write_binary_uint8  # type: ignore[import-untyped]

    revision = connection.server_info.used_revision
    fout = connection.fout
    write_varint(ClientPacketTypes.DATA, fout)
    if revision >= defines.DBMS_MIN_REVISION_WITH_TEMPORARY_TABLES:
        write_binary_str(table_name, fout)
    if revision >= defines.DBMS_MIN_REVISION_WITH_BLOCK_INFO:
        BlockInfo().write(fout)
    write_varint(len(columns), fout)
    write_varint(rows, fout)
    for name, kind, payload in columns:
        write_binary_str(name, fout)
        write_binary_str(kind, fout)
        if revision >= defines.DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION:
            write_binary_uint8(0, fout)
        fout.write(payload)
    fout.flush()


def _end_of_data(connection: Any) -> None:
    from clickhouse_driver.block import RowOrientedBlock

    connection.send_data(RowOrientedBlock())


#: Rows per Data packet of an insert (the server forms parts per block).
INSERT_BLOCK_ROWS = 1 << 20


def insert(
    client: Any,
    table: str,
    data: pa.Table,
    structure: Structure,
    settings: dict[str, Any] | None = None,
) -> None:
    """``INSERT INTO table`` the rows of ``data``, columns as ``structure`` names them."""
    names = ", ".join(name for name, _ in structure)
    query = f"INSERT INTO {table} ({names}) VALUES"
    with client.disconnect_on_error(query, settings):
        connection = client.connection
        connection.send_query(query)
        _end_of_data(connection)  # no external tables
        client.receive_sample_block()
        for start in range(0, data.num_rows, INSERT_BLOCK_ROWS):
            part = data.slice(start, INSERT_BLOCK_ROWS)
            _write_block(connection, "", encode_block(part, structure), part.num_rows)
        _end_of_data(connection)
        client.receive_end_of_insert_query()


def query(
    client: Any,
    sql: str,
    external: Sequence[tuple[str, pa.Table, Structure]],
    settings: dict[str, Any] | None = None,
) -> list[tuple[Any, ...]]:
    """The rows of ``sql``, with each external ``(name, table, structure)`` readable by name."""
    with client.disconnect_on_error(sql, settings):
        connection = client.connection
        connection.send_query(sql)
        for name, table, structure in external:
            _write_block(connection, name, encode_block(table, structure), table.num_rows)
        _end_of_data(connection)
        rows: list[tuple[Any, ...]] = client.receive_result(with_column_types=False)
        return rows
