"""Columnar ingest for bulk imports: validate an Arrow batch with vectorised checks, append the
rows that pass in one go, and send only the rows that fail through the per-item path.

The per-item path (msgspec structs, :func:`tally.engine.ingest.check_event`) stays the one
definition of the rules: a row this module cannot vouch for is handed to it, so a rejected row
gets exactly the reason the HTTP API would give, and the checks below only need to be
conservative (never pass a row the per-item path would reject).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from tally.model.directory import EARLIEST, Directory
from tally.model.events import CHAT_TYPES, EVENT_TYPES, RESOURCES
from tally.timeutil import to_micros

STRINGS = {
    "id": 200,
    "member": 200,
    "workspace": 200,
    "app": 200,
    "ide": 100,
    "language": 100,
    "chat_type": 100,
    "type": 100,
    "source": 100,
    "resource": 100,
}
INTEGERS = {
    "lines_suggested": (0, 10**9),
    "lines_accepted": (0, 10**9),
    "lines_changed": (0, 10**9),
    "records": (0, 10**15),
    "delta": (-(10**9), 10**9),
}
BOOLEANS = ("accepted",)
#: The fields each type must carry (``lines_accepted`` of a completion may be left out: 0).
FIELDS = {
    "completion": ("ide", "language", "lines_suggested", "accepted"),
    "chat": ("ide", "chat_type", "accepted"),
    "code": ("language", "source", "lines_accepted", "lines_changed"),
    "activity": (),
    "workspace_activity": ("workspace",),
    "app_visit": ("app",),
    "app_edit": ("app",),
    "app_resource": ("app", "resource", "delta"),
    "app_data": ("app", "records"),
}
OPTIONAL = {"completion": ("lines_accepted",)}
KNOWN = {"id", "time", "type", "member", *STRINGS, *INTEGERS, *BOOLEANS}


def vouched_rows(batch: pa.Table, directory: Directory, latest: datetime) -> pa.Array:
    """A boolean mask: rows that certainly pass every rule of the per-item path."""
    n = batch.num_rows
    if not _columns_usable(batch):
        return pa.array([False] * n)
    kind = batch["type"]
    ok = pc.and_(pc.is_in(kind, pa.array(EVENT_TYPES)), pc.is_valid(batch["id"]))
    ok = pc.and_(ok, pc.is_valid(batch["member"]))
    ok = pc.and_(ok, pc.fill_null(pc.less_equal(batch["time"], _at(latest)), False))
    ok = pc.and_(ok, pc.fill_null(pc.greater_equal(batch["time"], _at(EARLIEST)), False))
    for name in batch.column_names:
        if name in ("id", "time", "type", "member"):
            continue
        needed = [t for t, fields in FIELDS.items() if name in fields]
        allowed = needed + [t for t, fields in OPTIONAL.items() if name in fields]
        present = pc.is_valid(batch[name])
        must = pc.is_in(kind, pa.array(needed or [""]))
        may = pc.is_in(kind, pa.array(allowed or [""]))
        ok = pc.and_(ok, pc.and_(pc.or_(present, pc.invert(must)), pc.or_(pc.invert(present), may)))
    for fields in FIELDS.values():  # a required field whose column is missing altogether
        for name in fields:
            if name not in batch.column_names:
                ok = pc.and_(ok, pc.invert(pc.is_in(kind, pa.array(_types_needing(name)))))
    ok = pc.and_(ok, _values_ok(batch, directory))
    return pc.fill_null(ok, False)


def _columns_usable(batch: pa.Table) -> bool:
    names = set(batch.column_names)
    if not {"id", "time", "type", "member"} <= names or names - KNOWN:
        return False
    time_type = batch.schema.field("time").type
    if not (pa.types.is_timestamp(time_type) and time_type.tz is not None):
        return False
    for name in names:
        kind = batch.schema.field(name).type
        if name in STRINGS and not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            return False
        if name in INTEGERS and not pa.types.is_integer(kind):
            return False
        if name in BOOLEANS and not pa.types.is_boolean(kind):
            return False
    return True


def _types_needing(name: str) -> list[str]:
    return [t for t, fields in FIELDS.items() if name in fields]


def _values_ok(batch: pa.Table, directory: Directory) -> pa.ChunkedArray:
    checks = [pc.is_in(batch["member"], pa.array(list(directory.members), pa.string()))]
    for name, longest in STRINGS.items():
        if name in batch.column_names:
            length = pc.utf8_length(batch[name])
            checks.append(
                pc.fill_null(
                    pc.and_(pc.greater_equal(length, 1), pc.less_equal(length, longest)), True
                )
            )
    for name, (low, high) in INTEGERS.items():
        if name in batch.column_names:
            column = batch[name]
            checks.append(
                pc.fill_null(
                    pc.and_(pc.greater_equal(column, low), pc.less_equal(column, high)), True
                )
            )
    refs = {"workspace": directory.workspaces, "app": directory.apps}
    for name, known in refs.items():
        if name in batch.column_names:
            checks.append(_in_or_null(batch[name], list(known)))
    if "source" in batch.column_names:
        checks.append(_in_or_null(batch["source"], ["completion", "chat"]))
    if "resource" in batch.column_names:
        checks.append(_in_or_null(batch["resource"], list(RESOURCES)))
    if "chat_type" in batch.column_names:
        chat_type = batch["chat_type"]
        lower = pc.equal(chat_type, pc.utf8_lower(chat_type))
        checks.append(
            pc.fill_null(pc.or_(pc.is_in(chat_type, pa.array(sorted(CHAT_TYPES))), lower), True)
        )
    if "accepted" in batch.column_names and "lines_accepted" in batch.column_names:
        refused = pc.and_(pc.equal(batch["type"], "completion"), pc.invert(batch["accepted"]))
        checks.append(
            pc.fill_null(pc.invert(pc.and_(refused, pc.greater(batch["lines_accepted"], 0))), True)
        )
    mask = checks[0]
    for check in checks[1:]:
        mask = pc.and_(mask, check)
    return mask


def _in_or_null(column: pa.ChunkedArray, allowed: Iterable[str]) -> pa.ChunkedArray:
    """True where ``column`` is null or one of ``allowed`` (``is_in`` alone says False for null)."""
    return pc.or_(pc.is_null(column), pc.is_in(column, pa.array(list(allowed), pa.string())))


def _at(instant: datetime) -> pa.Scalar:
    return pa.scalar(to_micros(instant), pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def stored_table(batch: pa.Table, org_id: str, tz: str, schema: pa.Schema) -> pa.Table:
    """Vouched rows in the stored layout: epoch-µs ``ts``, the org-local ``day``, nulls where a
    type has no field, ``lines_accepted`` 0 for a completion that left it out; first id wins."""
    ts = batch["time"].cast(pa.timestamp("us", tz="UTC"))
    local = pc.local_timestamp(ts.cast(pa.timestamp("us", tz=tz)))
    columns: dict[str, pa.ChunkedArray | pa.Array] = {
        "org": pa.array([org_id] * batch.num_rows, pa.string()),
        "id": batch["id"],
        "ts": ts.cast(pa.int64()),
        "day": local.cast(pa.date32()),
    }
    for field in schema:
        if field.name in columns:
            continue
        if field.name in batch.column_names:
            columns[field.name] = batch[field.name].cast(field.type)
        else:
            columns[field.name] = pa.nulls(batch.num_rows, field.type)
    completion = pc.equal(batch["type"], "completion")
    columns["lines_accepted"] = pc.if_else(
        pc.and_(completion, pc.is_null(columns["lines_accepted"])), 0, columns["lines_accepted"]
    )
    table = pa.table([columns[f.name] for f in schema], schema=schema)
    return first_of_each_id(table)


def first_of_each_id(table: pa.Table) -> pa.Table:
    """``table`` with only the first row of each id (the later ones are duplicates)."""
    if pc.count_distinct(table["id"]).as_py() == table.num_rows:
        return table
    indexed = table.append_column("row", pa.array(range(table.num_rows), pa.int64()))
    firsts = indexed.group_by("id", use_threads=False).aggregate([("row", "min")])["row_min"]
    return table.take(pc.take(firsts, pc.sort_indices(firsts)))
