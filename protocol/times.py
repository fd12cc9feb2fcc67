"""Local times as messages and configs carry them: HH:MM, IANA time zones, weekday windows.

Part of the protocol because message bodies use them (the look-in plan's agreed times and
windows) and both sides must read "22:00-07:00" alike. Pure data and checks: no I/O.
"""

import re
import zoneinfo
from datetime import datetime, time, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from .wiremodel import WireModel

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Seconds = Annotated[float, Field(gt=0, le=7 * 86400)]  # a configured duration: more than 0, at most a week
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class Strict(WireModel):
    """Unknown fields are errors and values do not change after checking (and, read off the
    wire, as strictly as wiremodel.py says)."""


def check_hhmm(value: str) -> str:
    if not isinstance(value, str) or not _HHMM.fullmatch(value):
        raise ValueError("expected a time as HH:MM (00:00-23:59)")
    return value


HHMM = Annotated[str, AfterValidator(check_hhmm)]


def check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone such as Europe/Stockholm") from None
    return value


TimeZone = Annotated[str, Field(max_length=64), AfterValidator(check_timezone)]  # a local time of day, each item checked on its own


class TimeWindow(Strict):
    """Local start and end (HH:MM, may pass midnight), on the given weekdays; start == end is 24 hours from start."""

    start: str
    end: str
    days: list[Literal[DAYS]] = list(DAYS)  # type: ignore[valid-type]

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        return check_hhmm(value)

    def contains(self, local: datetime) -> bool:
        """Is this local time inside the window? A window passing midnight belongs to its start day."""
        start, end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        now, today = local.time(), DAYS[local.weekday()]
        if start < end:
            return today in self.days and start <= now < end
        yesterday = DAYS[(local - timedelta(days=1)).weekday()]
        return (today in self.days and now >= start) or (yesterday in self.days and now < end)

    def all_day(self) -> bool:
        return self.start == self.end and set(self.days) == set(DAYS)
