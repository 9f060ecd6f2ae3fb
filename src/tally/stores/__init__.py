"""Stores: where Tally keeps the directory, the tokens and the events.

``base.Store`` is the one interface; each backend is one module implementing it.
"""

from __future__ import annotations

from pathlib import Path

from tally.stores.base import AppendResult, Store


def open_store(path: Path | str) -> Store:
    """Open the store at ``path``: a DuckDB file (the embedded default)."""
    from tally.stores.duckdb import DuckDBStore

    return DuckDBStore(Path(path))


__all__ = ["AppendResult", "Store", "open_store"]
