"""The store interface: what any backend (DuckDB now, ClickHouse next) must answer.

Signatures speak the domain (organizations, members, events, instants as aware datetimes and
epoch microseconds, days as dates); no backend concept appears here. Writes of one store are
serialised by the caller's service, so implementations need not handle concurrent writers of
the same object, but must let reads run beside writes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from tally.model.directory import App, Department, Directory, Member, Organization, Workspace
from tally.model.events import StoredEvent
from tally.tokens import TokenRecord


@dataclass(frozen=True)
class AppendResult:
    """Which of the appended events were new (the rest were already stored: duplicates)."""

    new_ids: frozenset[str]


class Store(ABC):
    """Persistence of one Tally environment."""

    # -- organizations ---------------------------------------------------------------------
    @abstractmethod
    def put_org(self, org: Organization) -> None:
        """Create or replace an organization."""

    @abstractmethod
    def get_org(self, org_id: str) -> Organization | None: ...

    @abstractmethod
    def list_orgs(self) -> list[Organization]: ...

    # -- directory -------------------------------------------------------------------------
    @abstractmethod
    def put_department(self, org_id: str, department: Department) -> None: ...

    @abstractmethod
    def put_member(self, org_id: str, member: Member) -> None:
        """Create or replace a member, with its whole version history."""

    @abstractmethod
    def put_workspace(self, org_id: str, workspace: Workspace) -> None:
        """Create or replace a workspace, with its whole membership list."""

    @abstractmethod
    def put_app(self, org_id: str, app: App) -> None: ...

    @abstractmethod
    def load_directory(self, org_id: str) -> Directory | None:
        """The organization's whole directory, or ``None`` for an unknown organization."""

    # -- tokens ----------------------------------------------------------------------------
    @abstractmethod
    def add_token(self, token: TokenRecord) -> None: ...

    @abstractmethod
    def list_tokens(self) -> list[TokenRecord]:
        """Every token (hashes only), environment admin's included."""

    # -- events ----------------------------------------------------------------------------
    @abstractmethod
    def append_events(self, org_id: str, events: Sequence[StoredEvent]) -> AppendResult:
        """Store the events whose id the org does not have yet; durable when this returns.

        ``events`` hold distinct ids. The duplicate check must not scan a growing table.
        """

    @abstractmethod
    def list_events(
        self,
        org_id: str,
        *,
        start_us: int | None,
        end_us: int | None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[StoredEvent]:
        """Events with ``start_us <= ts < end_us`` ordered by (ts, id), after the cursor."""

    @abstractmethod
    def count_events(self, org_id: str) -> int: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- app usage -------------------------------------------------------------------------
    @abstractmethod
    def app_totals(
        self, org_id: str, app_ids: Sequence[str], *, day: date, end_us: int
    ) -> dict[str, AppTotals]:
        """For each of ``app_ids``, its events up to the end of the org day ``day`` (events with
        ``ts < end_us``, ``end_us`` being that day's instant M): resource sums, latest data
        volume, latest visit and edit. Apps without any such event are left out."""


# -- app usage: the record of ``Store.app_totals`` ----------------------------------------


@dataclass(frozen=True)
class AppTotals:
    """What one app's events add up to, up to an instant."""

    #: Sum of the ``app_resource`` deltas per resource; raw (may be negative), absent when none.
    resources: Mapping[str, int]
    #: ``records`` of the latest ``app_data`` event (ties in time: the greater id), if any.
    records: int | None
    #: Epoch µs of the latest ``app_visit`` / ``app_edit`` event, if any.
    last_visit_us: int | None
    last_edit_us: int | None
