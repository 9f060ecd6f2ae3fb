"""Time in one place: instants are aware datetimes or epoch microseconds; days are org-local.

Everything that needs a "day" calls :func:`local_day` or :func:`day_end`, which implement the
contract's definitions (the end of day D is the instant of the next local midnight).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: What :func:`parse_instant` and :func:`parse_date` accept (ASCII digits only), also stated
#: as ``pattern`` in the OpenAPI document.
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_RFC3339 = re.compile(RFC3339_PATTERN)
_DATE = re.compile(DATE_PATTERN)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; raises ``ValueError`` for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def is_valid_zone(name: str) -> bool:
    try:
        zone(name)
    except ValueError:
        return False
    return True


def parse_instant(text: str) -> datetime:
    """Parse an RFC 3339 date-time that carries an offset; raise ``ValueError`` otherwise."""
    if not _RFC3339.fullmatch(text):
        raise ValueError(
            "must be an RFC 3339 date-time with an offset, e.g. 2026-03-01T09:00:00+08:00"
        )
    return datetime.fromisoformat(_python_iso(text))


def _python_iso(text: str) -> str:
    """``text`` as :meth:`datetime.fromisoformat` reads it: ``Z`` as ``+00:00``, microseconds."""
    normalized = text[:-1] + "+00:00" if text[-1] in "Zz" else text
    fraction = re.search(r"\.(\d+)", normalized)
    if fraction and len(fraction.group(1)) > 6:  # Python keeps microseconds: drop the rest
        normalized = normalized.replace(fraction.group(0), "." + fraction.group(1)[:6])
    return normalized


def parse_date(text: str) -> date:
    """Parse ``YYYY-MM-DD`` strictly (no other forms, impossible dates rejected)."""
    if not _DATE.fullmatch(text):
        raise ValueError("must be a date in YYYY-MM-DD format")
    try:
        value = date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text} is not a valid calendar date") from exc
    if not 2 <= value.year <= 9998:  # so that a day's end in any zone cannot overflow
        raise ValueError("must be a date with a year from 2 to 9998")
    return value


def to_micros(instant: datetime) -> int:
    """Epoch microseconds of an aware datetime (exact integer arithmetic)."""
    delta = instant - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def local_day(instant: datetime, tz: str) -> date:
    """The calendar day, in zone ``tz``, on which ``instant`` falls."""
    return instant.astimezone(zone(tz)).date()


def day_start(day: date, tz: str) -> datetime:
    """The instant of local midnight starting ``day`` (aware, in zone ``tz``)."""
    return datetime(day.year, day.month, day.day, tzinfo=zone(tz))


def day_end(day: date, tz: str) -> datetime:
    """M for ``day``: the instant of the next local midnight."""
    return day_start(day + timedelta(days=1), tz)


def days(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last`` inclusive."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def month_first(day: date) -> date:
    """The 1st of ``day``'s calendar month."""
    return day.replace(day=1)


def next_month(day: date) -> date:
    """The 1st of the calendar month after ``day``'s."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def month_last(day: date) -> date:
    """The last day of ``day``'s calendar month."""
    return next_month(day) - timedelta(days=1)


def format_instant(instant: datetime, tz: str) -> str:
    """``YYYY-MM-DDTHH:MM:SS±HH:MM`` in ``tz``'s offset at that instant, whole seconds."""
    return instant.astimezone(zone(tz)).replace(microsecond=0).isoformat()


def format_utc(instant: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, microseconds kept when present."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- date-times with or without an offset (environment statistics) --------------------------
DATE_OR_TIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?)?$"
)
_DATE_OR_TIME = re.compile(DATE_OR_TIME_PATTERN)
DATE_OR_TIME_FORMATS = "YYYY-MM-DD, YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]"


def parse_date_or_time(text: str) -> datetime:
    """A bare date (its 00:00) or an ISO 8601 / RFC 3339 date-time, the offset optional.

    Aware when the text has an offset; naive (a wall-clock time, to be read in some zone by
    :func:`localize`) otherwise. Years outside 2..9998 are refused, so that reading the value
    in any zone and taking the end of its day cannot overflow.
    """
    if not _DATE_OR_TIME.fullmatch(text):
        raise ValueError(
            f"Datetime has wrong format. Use one of these formats instead: {DATE_OR_TIME_FORMATS}."
        )
    try:
        value = datetime.fromisoformat(_python_iso(text))
    except ValueError as exc:
        raise ValueError(f"{text} is not a valid date or time.") from exc
    if not 2 <= value.year <= 9998:
        raise ValueError("Datetime is out of range: use a year from 2 to 9998.")
    return value


def localize(value: datetime, tz: str) -> datetime:
    """``value`` as an instant in zone ``tz``: an aware value converted, a naive one read as
    wall-clock time there."""
    if value.tzinfo is None:
        return value.replace(tzinfo=zone(tz))
    return value.astimezone(zone(tz))
