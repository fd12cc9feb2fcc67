"""Flags against each home's own baseline: what changed for this person, in one Swedish line.

A night-by-night count (bed exits, motion, the door opened) is compared with the same home's
own history, never with other homes: a resident who is up twice every night is not news; one
who is suddenly up six times is.

How (docs/console.md, "Morgonrapportens flaggor"):
- "this week" is the last WEEK_NIGHTS nights with data; the baseline is the BASELINE_NIGHTS
  nights before them.
- Both are summarised by their median, and the baseline's spread by the MAD (median absolute
  deviation, scaled by 1.4826 so it estimates a standard deviation for normal data). A median
  and a MAD ignore one odd night completely (it moves neither), unlike a mean and a standard
  deviation.
- The spread is never taken below sqrt(baseline median) (the spread of a count that happens at
  random, Poisson), nor below a floor: for small counts the MAD alone is too narrow (a baseline
  of 1, 2, 1, 2 nights has MAD 0.74, yet a week at 3 is no news).
- A flag is raised when this week's median exceeds the baseline median by K spreads AND by an
  absolute minimum (so a home whose baseline is all zeros is not flagged for one extra visit to
  the bathroom): week_median >= base_median + K * max(MAD, sqrt(base_median), floor) and
  week_median - base_median >= minimum.
- No baseline flag without enough history (MIN_BASELINE nights, MIN_WEEK nights): a new home
  is shown, not judged.
Rules that need no baseline: missed doses (MISSED_DOSES within MISSED_DAYS days) and a day
without motion after the hour the home is usually still moving.
"""

import math
import statistics
from dataclasses import dataclass

WEEK_NIGHTS = 7
BASELINE_NIGHTS = 28
MIN_BASELINE = 14
MIN_WEEK = 4
K = 2.0
MAD_SCALE = 1.4826
MISSED_DOSES = 2
MISSED_DAYS = 3


@dataclass(frozen=True)
class Rule:
    metric: str  # the nights' key: bed_exits, activity, doors
    label: str  # what the nurse reads, before the numbers
    unit: str  # after the number
    floor: float  # the smallest spread counted (a baseline of all zeros has MAD 0)
    minimum: float  # the smallest rise that is ever a flag
    relative: float = 0.0  # and at least this share of the baseline median


RULES = (
    Rule("bed_exits", "uppstigningar ur sängen", "per natt", floor=0.5, minimum=2),
    Rule("activity", "rörelse på natten", "rörelser per natt", floor=2.0, minimum=8, relative=0.5),
    Rule("doors", "dörren öppnad på natten", "gånger per natt", floor=0.4, minimum=1),
)


def robust(values: list[float]) -> tuple[float, float]:
    """(median, scaled MAD) of a list."""
    med = statistics.median(values)
    return med, MAD_SCALE * statistics.median(abs(v - med) for v in values)


def judge(rule: Rule, week: list[float], base: list[float]) -> dict | None:
    """A flag (what, text, numbers) when this week rose above the home's own baseline, else None."""
    if len(week) < MIN_WEEK or len(base) < MIN_BASELINE:
        return None
    week_med = statistics.median(week)
    base_med, mad = robust(base)
    rise = week_med - base_med
    if week_med < base_med + K * max(mad, math.sqrt(base_med), rule.floor) or rise < max(rule.minimum, rule.relative * base_med):
        return None
    return {"what": rule.metric, "severity": 2, "week": _num(week_med), "baseline": _num(base_med),
            "mad": round(mad, 2),
            "text": f"{rule.label}: {_said(week_med)} {_unit(rule.unit, week_med)} den här veckan mot {_said(base_med)} "
                    f"{_before(len(base))}"}


def _before(nights: int) -> str:
    return "de fyra veckorna innan" if nights == 28 else f"de {nights} nätterna innan"


def _unit(unit: str, x: float) -> str:
    """"1 gång per natt", "2 gånger per natt"."""
    return unit.replace("gånger", "gång") if x == 1 else unit


def _said(x: float) -> str:
    """A number as a Swedish reader writes it: a decimal comma (1,5)."""
    return str(_num(x)).replace(".", ",")


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(x, 1)


def night_flags(nights: list[dict]) -> list[dict]:
    """Baseline flags over a home's nights (oldest first; a metric None where unknown)."""
    flags = []
    for rule in RULES:
        known = [n[rule.metric] for n in nights if n.get(rule.metric) is not None]
        week = known[-WEEK_NIGHTS:]
        base = known[:-WEEK_NIGHTS][-BASELINE_NIGHTS:]
        flag = judge(rule, week, base)
        if flag:
            flags.append(flag)
    return flags


def dose_flag(days: list[dict]) -> dict | None:
    """MISSED_DOSES or more missed doses within the last MISSED_DAYS days (oldest-first days)."""
    recent = days[-MISSED_DAYS:]
    missed = sum(d["missed"] for d in recent)
    if missed < MISSED_DOSES:
        return None
    return {"what": "doses", "severity": 3, "missed": missed,
            "text": f"{missed} missade doser på {len(recent)} dagar"}


def quiet_flag(day: str | None, per_hour: list[int] | None, usual_after: float, said_day: str) -> dict | None:
    """No motion after some hour of the last summarised day, where the home usually still moves.

    usual_after: the baseline days' median motion count after that hour (a home quiet every
    evening is not flagged). said_day: how to name the day ("i går", "1 dec").
    """
    if day is None or per_hour is None:
        return None
    active = [h for h, n in enumerate(per_hour) if n > 0]
    last = active[-1] if active else -1
    if last >= 20 or usual_after < 3:
        return None
    text = (f"ingen rörelse alls {said_day}" if last < 0 else
            f"ingen rörelse sedan {said_day} {last + 1:02d}:00")
    return {"what": "quiet", "severity": 3, "day": day, "since_hour": last + 1, "text": text}
