"""The store interfaces: what any backend must answer, in two parts named for what they hold.

``DirectoryStore`` keeps the small transactional facts (organizations, departments, members with
their versions, workspaces, apps, tokens); ``EventStore`` keeps the events, their rollups and the
statistics reads. DuckDB implements both in one file (``Store``); the scale-out configuration
puts the directory in PostgreSQL and the events in ClickHouse.

Signatures speak the domain (organizations, members, events, instants as aware datetimes and
epoch microseconds, days as dates); no backend concept appears here. Writes of one store are
serialised by the caller's service, so implementations need not handle concurrent writers of
the same object, but must let reads run beside writes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import msgspec
import pyarrow as pa

from tally.model.directory import App, Department, Directory, Member, Organization, Workspace
from tally.model.events import STORED_SCHEMA, StoredEvent
from tally.timeutil import to_micros
from tally.tokens import TokenRecord


@dataclass(frozen=True)
class AppendResult:
    """Which of the appended events were new (the rest were already stored: duplicates)."""

    new_ids: frozenset[str]


class DirectoryStore(ABC):
    """The directory and the tokens of one Tally environment."""

    #: Whether other processes may write this store too (then a process compares
    #: :meth:`directory_version` per request to notice their writes).
    shared: bool = False

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

    @abstractmethod
    def revoke_token(self, token_id: str, at: datetime) -> None:
        """Mark the token revoked at ``at`` (a token revoked before keeps its first time).
        A directory write: every process sharing the store refuses it from its next request."""

    @abstractmethod
    def record_token_use(self, token_id: str, at: datetime) -> None:
        """Store ``at`` as the token's ``last_used_at``. Not a directory write (it does not
        make other processes reload): the listing reads it from the store."""

    def directory_version(self) -> int:
        """A number that changes whenever any directory or token write is stored, so that a
        process sharing this store with others knows when its cached directory is outdated.
        A store used by one process only may answer a constant."""
        return 0

    @abstractmethod
    def close(self) -> None: ...

    def size_bytes(self) -> int | None:
        """What the store takes on disk, in bytes, for the operational metrics (``None``: this
        store cannot tell)."""
        return None


class EventStore(ABC):
    """The events of one Tally environment, their rollups and the statistics reads."""

    # -- events ----------------------------------------------------------------------------
    @abstractmethod
    def append_events(self, org_id: str, events: Sequence[StoredEvent]) -> AppendResult:
        """Store the events whose id the org does not have yet; durable when this returns.

        ``events`` hold distinct ids. The duplicate check must not scan a growing table.
        """

    @abstractmethod
    def append_table(self, org_id: str, table: pa.Table) -> AppendResult:
        """:meth:`append_events` for a bulk import: an Arrow table in the stored layout (``org``
        then the columns of ``StoredEvent``), distinct ids."""

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

    def size_bytes(self) -> int | None:
        """What the store takes on disk, in bytes, for the operational metrics (``None``: this
        store cannot tell)."""
        return None

    def event_batches(
        self, org_id: str, *, start_us: int, end_us: int, batch_rows: int
    ) -> Iterator[pa.Table]:
        """Every event with ``start_us <= ts < end_us`` ordered by (ts, id), as Arrow tables of
        at most ``batch_rows`` rows in the columns of ``StoredEvent`` (an export streams them:
        one batch in memory at a time, whatever the window holds).

        This default pages through :meth:`list_events`; a store that reads Arrow natively
        answers each page as a table directly.
        """
        schema = pa.schema([f for f in STORED_SCHEMA if f.name != "org"])
        after: tuple[int, str] | None = None
        while True:
            rows = self.list_events(
                org_id, start_us=start_us, end_us=end_us, after=after, limit=batch_rows
            )
            if rows:
                yield pa.Table.from_pylist([msgspec.structs.asdict(r) for r in rows], schema)
            if len(rows) < batch_rows:
                return
            after = (rows[-1].ts, rows[-1].id)

    @abstractmethod
    def rebuild_rollups(self, org_id: str) -> None:
        """Recompute the organization's rollups from its raw events (the source of truth)."""

    def checkpoint_when_idle(self, idle_seconds: float) -> bool:
        """Fold a write-ahead log into the store when nothing was written for
        ``idle_seconds`` (so that a crash or restart replays nothing); answers whether it
        did. Stores without such a log do nothing."""
        return False

    @abstractmethod
    def close(self) -> None: ...

    # -- department usage ------------------------------------------------------------------
    @abstractmethod
    def assistant_usage(
        self,
        org_id: str,
        spans: Sequence[MemberSpan],
        first_day: date,
        last_day: date,
        *,
        department: str | None = None,
    ) -> list[AssistantDay]:
        """The AI assistant usage of these members during these spans, per org day.

        Counts the ``completion``, ``chat`` and ``code`` events of each span's member with
        ``from_us <= ts < to_us`` on the org days ``first_day .. last_day``; reads only those
        days. Spans of one member must not overlap (an event is counted at most once). Answers
        only the days with at least one such event, ascending, each breakdown sorted by its key
        fields in code-point order.

        ``department``: the spans are exactly that department's subtree spans (as
        :meth:`refresh_department_days` receives them), so a store that keeps per-department
        rollups may answer its fresh days from there.
        """

    # -- per-member usage and last events (the AI assistant's sibling calls) -------------
    def member_usage(
        self,
        org_id: str,
        spans: Sequence[MemberSpan],
        first_day: date,
        last_day: date,
        *,
        offset: int = 0,
        limit: int | None = None,
    ) -> MemberUsage:
        """The AI assistant usage of each member during these spans, per (org day, member).

        Counts what :meth:`assistant_usage` counts, but one record per member and day with at
        least one such event, ordered by day then member id (code-point order); answers the
        records ``offset .. offset + limit`` (``None``: all) and how many there are in all.
        Each record's ``last_us`` is the time of that member's latest counted event that day.

        This default is a slow fallback built on :meth:`assistant_usage` (one call per member)
        and :meth:`list_events` (the raw events of the page's days only, for ``last_us``); a
        store with per-member rollups answers it directly.
        """
        by_member: dict[str, list[MemberSpan]] = defaultdict(list)
        for span in spans:
            by_member[span.member].append(span)
        found: list[tuple[date, str, AssistantDay]] = []
        for member, its in by_member.items():
            for usage in self.assistant_usage(org_id, its, first_day, last_day):
                found.append((usage.day, member, usage))
        found.sort(key=lambda row: (row[0], row[1]))
        page = found[offset:] if limit is None else found[offset : offset + limit]
        latest = self._latest_counted(org_id, by_member, {(d, m) for d, m, _ in page})
        days = [
            MemberDay(day, member, latest[day, member], u.completion, u.chatting, u.coding)
            for day, member, u in page
        ]
        return MemberUsage(total=len(found), days=days)

    def _latest_counted(
        self, org_id: str, spans: Mapping[str, Sequence[MemberSpan]], keys: set[tuple[date, str]]
    ) -> dict[tuple[date, str], int]:
        """The latest counted event of each (day, member) of ``keys``, from the raw events of
        those days. Without the org's time zone here, the days' instants are bounded by the
        widest offsets there are (UTC-12 to UTC+14), and the events' own ``day`` decides."""
        if not keys:
            return {}
        first, last = min(d for d, _ in keys), max(d for d, _ in keys)
        start = datetime(first.year, first.month, first.day, tzinfo=UTC) - timedelta(hours=15)
        end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(hours=37)
        latest: dict[tuple[date, str], int] = {}
        for event in self._events_between(org_id, to_micros(start), to_micros(end)):
            key = (event.day, event.member)
            if (
                key in keys
                and event.type in ASSISTANT_EVENT_TYPES
                and any(s.from_us <= event.ts < s.to_us for s in spans[event.member])
            ):
                latest[key] = max(latest.get(key, event.ts), event.ts)
        return latest

    def _events_between(
        self, org_id: str, start_us: int | None, end_us: int | None
    ) -> Iterator[StoredEvent]:
        """Every event with ``start_us <= ts < end_us``, page by page of :meth:`list_events`."""
        after: tuple[int, str] | None = None
        while True:
            batch = self.list_events(
                org_id, start_us=start_us, end_us=end_us, after=after, limit=_EVENT_PAGE
            )
            yield from batch
            if len(batch) < _EVENT_PAGE:
                return
            after = (batch[-1].ts, batch[-1].id)

    def assistant_day_totals(
        self, org_id: str, spans: Sequence[MemberSpan], first_day: date, last_day: date
    ) -> list[AssistantDayTotals]:
        """The totals of :meth:`assistant_usage`'s days without their breakdowns: the same
        events counted, per org day with at least one, ascending.

        This default sums :meth:`assistant_usage`'s breakdowns (what the department usage API
        answers); a store with rollups sums its member-day rows in place, without building the
        breakdowns of every day.
        """
        out = []
        for day in self.assistant_usage(org_id, spans, first_day, last_day):
            out.append(
                AssistantDayTotals(
                    day=day.day,
                    active_developers=day.active_developers,
                    chat_turns=sum(c.turns for c in day.chatting),
                    suggested=sum(c.count_suggested for c in day.completion),
                    accepted=sum(c.count_accepted for c in day.completion),
                    lines_suggested=sum(c.lines_suggested for c in day.completion),
                    lines_accepted=sum(c.lines_accepted for c in day.completion),
                )
            )
        return out

    def trailing_active_members(
        self,
        org_id: str,
        spans: Sequence[MemberSpan],
        first_day: date,
        last_day: date,
        lengths: Sequence[int],
    ) -> dict[int, list[int]]:
        """For each ``n`` of ``lengths`` and each org day ``d`` of ``first_day .. last_day``:
        the distinct members with a ``completion``, ``chat`` or ``code`` event inside one of
        their spans on the ``n`` org days ending with ``d`` (one count per day, in order).

        The spans must cover the days from ``first_day - (max(lengths) - 1)`` on. This default
        is built on :meth:`member_usage` (every member-day of the window, in Python); a store
        with per-member rollups counts in place.
        """
        longest = max(lengths)
        start = first_day - timedelta(days=longest - 1)
        found = self.member_usage(org_id, spans, start, last_day)
        active: dict[date, set[str]] = defaultdict(set)
        for row in found.days:
            active[row.day].add(row.member)
        span = (last_day - first_day).days + 1
        answer: dict[int, list[int]] = {}
        for n in lengths:
            counts = []
            for i in range(span):
                end = first_day + timedelta(days=i)
                members: set[str] = set()
                for k in range(n):
                    members |= active.get(end - timedelta(days=k), set())
                counts.append(len(members))
            answer[n] = counts
        return answer

    def latest_event_times(self, org_id: str) -> dict[str, int]:
        """Each member's latest event of any type (epoch µs); members without events absent.

        This default reads every event of the organization (a slow fallback); a store with
        per-member rollups narrows the read to each member's last active day.
        """
        latest: dict[str, int] = {}
        for event in self._events_between(org_id, None, None):
            if event.ts > latest.get(event.member, -(2**63)):
                latest[event.member] = event.ts
        return latest

    # The per-department rollups: optional (a store without them answers every day from the
    # spans); the defaults say "nothing to refresh".
    def stale_department_days(self, org_id: str) -> list[date]:
        """The org days whose per-department rollups must be recomputed, ascending."""
        return []

    def refresh_department_days(
        self, org_id: str, spans: Mapping[str, Sequence[MemberSpan]], days: Sequence[date]
    ) -> None:
        """Recompute the per-department rollups of the stale ones of ``days``.

        ``spans`` holds every department's subtree spans over those days. The caller keeps the
        directory still meanwhile; the store keeps appends out, so that a day it marks fresh
        reflects every event stored for it.
        """
        return None

    def invalidate_department_days(self, org_id: str, since: date | None) -> None:
        """The directory moves members between subtrees from the org day ``since`` on (``None``:
        on every day): mark those days stale. Called before the directory write is stored."""
        return None

    def invalidate_departments(self, org_id: str, departments: Collection[str]) -> None:
        """The subtrees of ``departments`` changed on every day (a department moved under
        another parent): their per-department rows are stale, the others' stay fresh. A store
        without per-department staleness marks every day stale."""
        self.invalidate_department_days(org_id, None)

    def stale_departments(self, org_id: str) -> dict[str, int]:
        """The departments whose every day is stale, each with the generation of its
        invalidation (to clear exactly what a refresh computed)."""
        return {}

    def assistant_days(self, org_id: str) -> list[date]:
        """The org days with assistant events, ascending (a store without per-department
        rows: none)."""
        return []

    def refresh_departments(
        self,
        org_id: str,
        spans: Mapping[str, Sequence[MemberSpan]],
        days: Sequence[date],
        generations: Mapping[str, int] | None,
    ) -> None:
        """Recompute the per-department rows of the departments ``spans`` names on ``days``;
        with ``generations``, the last chunk: clear those departments' staleness if no later
        invalidation came."""
        return None

    # -- environment statistics ------------------------------------------------------------
    @abstractmethod
    def active_members(
        self,
        org_id: str,
        first_day: date,
        last_day: date,
        *,
        event_types: Sequence[str] | None = None,
        during: Sequence[MemberSpan] | None = None,
        per_workspace: bool = False,
        cohort: str | None = None,
        daily: bool = True,
    ) -> ActiveMembers:
        """Distinct members with an event on the org days ``first_day..last_day`` (inclusive),
        per day and per calendar month of those days.

        ``event_types`` keeps only events of those types (``None``: every type); ``during``
        keeps only events that fall inside one of their member's spans (``None``: no such
        filter); ``per_workspace`` counts each workspace of ``workspace_activity`` events apart.
        ``cohort="developers"``: ``during`` holds exactly the members' developer periods (as
        :meth:`refresh_activity_days` receives them), so a store that keeps per-day counts may
        answer from them. ``daily=False``: the per-day counts are only wanted summed by month
        (``ActiveMembers.day_sums``), and ``per_day`` may be left empty.
        """

    # The activity counts: optional, like the per-department rollups.
    def stale_activity_days(self, org_id: str) -> list[date]:
        """The org days whose activity counts must be recomputed, ascending."""
        return []

    def refresh_activity_days(
        self, org_id: str, developer_spans: Sequence[MemberSpan], days: Sequence[date]
    ) -> None:
        """Recompute the activity counts of the stale ones of ``days`` (all in one calendar
        month) and of their month; ``developer_spans`` cover that whole month. The caller keeps
        the directory still meanwhile."""
        return None

    def invalidate_activity_days(self, org_id: str, since: date | None) -> None:
        """The directory changes who is a developer from the org day ``since`` on (``None``: on
        every day): mark those days stale. Called before the directory write is stored."""
        return None

    # -- app usage -------------------------------------------------------------------------
    @abstractmethod
    def app_totals(
        self, org_id: str, app_ids: Sequence[str], *, day: date, end_us: int
    ) -> dict[str, AppTotals]:
        """For each of ``app_ids``, its events up to the end of the org day ``day`` (events with
        ``ts < end_us``, ``end_us`` being that day's instant M): resource sums, latest data
        volume, latest visit and edit. Apps without any such event are left out."""


class Store(DirectoryStore, EventStore):
    """Both parts in one backend (the embedded DuckDB file)."""


# -- member spans: who counts, and when (department usage, environment statistics) ---------


class MemberSpan(msgspec.Struct, frozen=True):
    """A member, and the instants (epoch µs, ``from_us <= ts < to_us``) its events count."""

    member: str
    from_us: int
    to_us: int


# -- department usage: the records of ``Store.assistant_usage`` ---------------------------
# Array-like: a store may keep them serialized as JSON arrays, in field order.


class CompletionUsage(msgspec.Struct, frozen=True, array_like=True):
    """One (``ide``, ``language``) of a day's ``completion`` events."""

    ide: str
    language: str
    count_suggested: int
    count_accepted: int
    lines_suggested: int
    lines_accepted: int
    active_developers: int


class ChatUsage(msgspec.Struct, frozen=True, array_like=True):
    """One (``chat_type``, ``ide``) of a day's ``chat`` events."""

    chat_type: str
    ide: str
    turns: int
    turns_accepted: int
    active_developers: int


class CodingUsage(msgspec.Struct, frozen=True, array_like=True):
    """One ``language`` of a day's ``code`` events (``lines_accepted_chat``: of ``source=chat``)."""

    language: str
    lines_accepted: int
    lines_changed: int
    lines_accepted_chat: int
    active_developers: int


class AssistantDay(msgspec.Struct, frozen=True, array_like=True):
    """A day's assistant usage: distinct members per event type, and the three breakdowns."""

    day: date
    active_developers: int
    active_chat: int
    active_completion: int
    completion: tuple[CompletionUsage, ...]
    chatting: tuple[ChatUsage, ...]
    coding: tuple[CodingUsage, ...]


class AssistantDayTotals(msgspec.Struct, frozen=True):
    """A day's assistant totals: distinct members with a ``completion``, ``chat`` or ``code``
    event, ``chat`` events, ``completion`` events, accepted ones, and their lines."""

    day: date
    active_developers: int
    chat_turns: int
    suggested: int
    accepted: int
    lines_suggested: int
    lines_accepted: int


# -- per-member usage: the records of ``Store.member_usage`` ------------------------------

#: The event types the AI assistant's usage counts.
ASSISTANT_EVENT_TYPES = frozenset({"completion", "chat", "code"})
#: Events per :meth:`EventStore.list_events` call of the default implementations.
_EVENT_PAGE = 10_000


class MemberDay(msgspec.Struct, frozen=True, array_like=True):
    """One member's assistant usage on one org day: the time of the latest counted event and
    the three breakdowns (their ``active_developers`` are 1: one member)."""

    day: date
    member: str
    last_us: int
    completion: tuple[CompletionUsage, ...]
    chatting: tuple[ChatUsage, ...]
    coding: tuple[CodingUsage, ...]


@dataclass(frozen=True)
class MemberUsage:
    """The requested slice of member-day records and how many the window holds in all."""

    total: int
    days: list[MemberDay]


# -- environment statistics: the records of ``Store.active_members`` ----------------------


@dataclass(frozen=True)
class ActiveMembers:
    """Distinct active members per day and per month; the first part of each key is the
    workspace id when counted per workspace, else ``""``. Groups without members are absent."""

    per_day: Mapping[tuple[str, date], int]
    #: Keyed by (workspace, year, month).
    per_month: Mapping[tuple[str, int, int], int]
    #: ``per_day`` summed over each month's days of the window, keyed like ``per_month``:
    #: what a mean of the daily counts needs, without one figure per group and day.
    day_sums: Mapping[tuple[str, int, int], int]

    @classmethod
    def from_days(
        cls, per_day: Mapping[tuple[str, date], int], per_month: Mapping[tuple[str, int, int], int]
    ) -> ActiveMembers:
        """The counts with ``day_sums`` derived from ``per_day``."""
        sums: Counter[tuple[str, int, int]] = Counter()
        for (grp, day), n in per_day.items():
            sums[grp, day.year, day.month] += n
        return cls(per_day, per_month, dict(sums))


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
