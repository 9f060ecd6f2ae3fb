"""App resource usage: the organization's apps that exist at the end of one day, paged, each with
its metrics as of that instant (resource counts, data volume, last visit and last edit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import msgspec

from tally.engine.memo import derived
from tally.errors import BadRequest
from tally.model.directory import App, Directory
from tally.stores.base import AppTotals, EventStore
from tally.timeutil import day_end, from_micros, local_day, to_micros


class AppMetrics(msgspec.Struct, kw_only=True):
    """One app's metrics, fields in the vendor's order (``app`` is always 1 per app)."""

    app: int = 1
    form_coop: int = 0
    form_workflow: int = 0
    dash: int = 0
    etl: int = 0
    aggregate: int = 0
    public_link: int = 0
    data_trigger: int = 0
    automation: int = 0
    bpa: int = 0
    data: int = 0


@dataclass(frozen=True)
class AppUsageQuery:
    """What is asked: a day (``None``: T-1), some apps (empty: all), and a page."""

    day: date | None
    app_ids: tuple[str, ...]
    skip: int
    limit: int


@dataclass(frozen=True)
class AppUsage:
    """One app's line: the app, its creator's current name, and its state at the day's end."""

    app: App
    creator_name: str
    last_edit_at: datetime | None
    last_visit_at: datetime | None
    metrics: AppMetrics


@dataclass(frozen=True)
class AppUsagePage:
    day: date
    has_next: bool
    items: list[AppUsage]


def app_usage(
    store: EventStore,
    directory: Directory,
    query: AppUsageQuery,
    *,
    now: datetime,
    max_days_back: int,
) -> AppUsagePage:
    """The page of apps ``query`` asks for, as of the end of its day (M), in the org's days."""
    tz = directory.org.timezone
    day = queried_day(query.day, today=local_day(now, tz), max_days_back=max_days_back, tz=tz)
    end = day_end(day, tz)
    apps = derived(  # every page of a day asks for the same list
        directory, ("apps at", end, query.app_ids), lambda: apps_at(directory, end, query.app_ids)
    )
    page = apps[query.skip : query.skip + query.limit]
    totals = store.app_totals(
        directory.org.id, [a.id for a in page], day=day, end_us=to_micros(end)
    )
    items = [_usage(app, directory, totals.get(app.id)) for app in page]
    return AppUsagePage(day=day, has_next=len(apps) > query.skip + query.limit, items=items)


def queried_day(requested: date | None, *, today: date, max_days_back: int, tz: str) -> date:
    """``requested`` (default T-1), refused when after T-1 or before T-``max_days_back``; ``today``
    is T in the organization's time zone ``tz``."""
    latest = today - timedelta(days=1)
    earliest = today - timedelta(days=max_days_back)
    if requested is None:
        return latest
    if requested > latest:
        raise BadRequest(
            f"date {requested} is after T-1 ({latest} in {tz}): the latest day that can be"
            " queried is yesterday in the organization's time zone",
            field="date",
        )
    if requested < earliest:
        raise BadRequest(
            f"date {requested} is before T-{max_days_back} ({earliest} in {tz}): only the"
            f" last {max_days_back} days can be queried",
            field="date",
        )
    return requested


def apps_at(directory: Directory, instant: datetime, app_ids: Sequence[str]) -> list[App]:
    """The apps existing at ``instant`` (only ``app_ids`` when given), by creation then id."""
    wanted = frozenset(app_ids)
    apps = [
        app
        for app in directory.apps.values()
        if app.exists_at(instant) and (not wanted or app.id in wanted)
    ]
    return sorted(apps, key=lambda app: (app.created_at, app.id))


def _usage(app: App, directory: Directory, totals: AppTotals | None) -> AppUsage:
    creator = directory.members.get(app.creator)
    return AppUsage(
        app=app,
        creator_name=creator.name if creator is not None else "",
        last_edit_at=_instant(totals.last_edit_us if totals else None),
        last_visit_at=_instant(totals.last_visit_us if totals else None),
        metrics=_metrics(totals),
    )


def _metrics(totals: AppTotals | None) -> AppMetrics:
    """Resource counts never go below zero; ``data`` is the latest volume, 0 when none."""
    if totals is None:
        return AppMetrics()
    counts = {name: max(0, total) for name, total in totals.resources.items()}
    return AppMetrics(**counts, data=totals.records or 0)


def _instant(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)
