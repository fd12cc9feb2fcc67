"""Small numbers the reports share: a month in local time, medians and 90th percentiles, durations.

Percentiles are `statistics.quantiles(method="inclusive")`: linear interpolation between the
sorted values with the smallest as 0 % and the largest as 100 % (what spreadsheets call
PERCENTILE.INC). One value is its own median and 90th percentile; none gives None. The reports
say so in their footnote (DEFINITION).
"""

import re
import statistics
from datetime import datetime
from zoneinfo import ZoneInfo

from base.errors import TryggError

DEFINITION = ("Median och 90:e percentil: statistics.quantiles(method='inclusive'), linjär interpolation "
              "mellan de sorterade värdena (som PERCENTIL.INK i kalkylprogram).")
MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
MONTHS_SV = ("januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober",
             "november", "december")


def percentile(values: list[float], p: int) -> float | None:
    """The p-th percentile (1-99) by the inclusive method; None for no values."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def spread(values: list[float]) -> dict:
    """{n, median_s, p90_s} of durations in seconds (rounded to 0.1 s)."""
    def r(x):
        return None if x is None else round(x, 1)

    return {"n": len(values), "median_s": r(percentile(values, 50)), "p90_s": r(percentile(values, 90))}


def month_bounds(month: str, zone: str) -> tuple[float, float]:
    """UTC seconds of the first and the day after the last of a month ("2026-11") in local time."""
    match = MONTH_RE.fullmatch(str(month).strip())
    if not match or not 1 <= int(match[2]) <= 12 or not 2000 <= int(match[1]) <= 2999:
        raise TryggError(f"--month must be a month like 2026-11, got {month!r}")
    year, mon = int(match[1]), int(match[2])
    tz = ZoneInfo(zone)
    start = datetime(year, mon, 1, tzinfo=tz)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=tz)
    return start.timestamp(), end.timestamp()


def month_name(month: str) -> str:
    """"2026-11" -> "november 2026"."""
    year, mon = month.split("-")
    return f"{MONTHS_SV[int(mon) - 1]} {year}"


def minutes(seconds: float | None) -> str:
    """A duration as staff read it: "2 min 05 s", "45 s", "1 h 03 min", or "–"."""
    if seconds is None:
        return "–"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def local(ts: float | None, zone: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "–" if ts is None else datetime.fromtimestamp(ts, ZoneInfo(zone)).strftime(fmt)
