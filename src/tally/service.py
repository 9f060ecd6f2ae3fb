"""The Tally object: one store and the services over it, shared by the web app and the CLI."""

from __future__ import annotations

from tally.engine.access import AccessService
from tally.engine.directory import DirectoryService
from tally.engine.ingest import Ingestor
from tally.engine.refresh import refresh_all, refresh_org
from tally.settings import Settings
from tally.stores import Store, open_store


class Tally:
    """Everything one Tally environment does, as a library (the CLI and the API call this)."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = (
            store
            if store is not None
            else open_store(
                settings.db_path,
                memory_limit=settings.store_memory_limit,
                checkpoint_threshold=settings.store_checkpoint_threshold,
            )
        )
        self.directory = DirectoryService(self.store, settings.clock)
        self.access = AccessService(self.store, settings.clock)
        self.ingestor = Ingestor(
            self.store, self.directory, settings.clock, settings.max_future_seconds
        )

    def refresh_rollups(self, org_id: str | None = None) -> int:
        """Bring the second-level rollups of ``org_id`` (default: every org) up to date;
        answers how many stale days were recomputed."""
        if org_id is None:
            return refresh_all(self.store, self.directory)
        return refresh_org(self.store, self.directory, org_id)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Tally:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
