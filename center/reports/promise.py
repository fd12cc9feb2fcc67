"""The municipality's promise to its residents: how soon an alarm is answered and help is on site.

Municipalities publish such promises (answer within 3 minutes; on site within 30 minutes in
town and 60 in the countryside). The center config's `[promise]` holds the defaults and
`[promise.areas.<name>]` an area's own times and its homes; a home in no area gets the
defaults. Validated like the rest of the config: one line per bad value naming the key, and a
home listed in two areas is an error (its promise would be ambiguous). Owns the judgement of one
case against its promise (`judge`), so the report and its tests use one rule.
"""

import re
from dataclasses import dataclass

from pydantic import Field, field_validator, model_validator

from base.configbase import _Section
from protocol.times import TimeZone
from protocol.topics import check_home_id

AREA_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
NO_AREA = "ovriga"  # the area of homes listed in no area: the defaults apply
Minutes = Field(default=None, gt=0, le=24 * 60)


class PromiseArea(_Section):
    """One area (town, countryside): its label in reports, its own times, and its homes."""

    label: str = Field(default="", max_length=60)
    answer_within_min: float | None = Minutes
    on_site_within_min: float | None = Minutes
    homes: list[str] = Field(default_factory=list, max_length=20000)

    @field_validator("homes")
    @classmethod
    def _home_ids(cls, homes: list[str]) -> list[str]:
        seen = set()
        for home in homes:
            check_home_id(home)
            if home in seen:
                raise ValueError(f"home {home!r} is listed twice")
            seen.add(home)
        return homes


class PromiseConfig(_Section):
    """`[promise]`: the defaults, the time zone months are counted in, and the areas."""

    answer_within_min: float = Field(default=3.0, gt=0, le=24 * 60)
    on_site_within_min: float = Field(default=30.0, gt=0, le=24 * 60)
    time_zone: TimeZone = "Europe/Stockholm"
    areas: dict[str, PromiseArea] = Field(default_factory=dict, max_length=200)

    @field_validator("areas")
    @classmethod
    def _area_names(cls, areas: dict[str, PromiseArea]) -> dict[str, PromiseArea]:
        for name in areas:
            if not AREA_RE.fullmatch(name) or name == NO_AREA:
                raise ValueError(f"area name {name!r}: 1-32 characters a-z, 0-9, '-' and '_' (not {NO_AREA!r})")
        return areas

    @model_validator(mode="after")
    def _one_area_per_home(self) -> "PromiseConfig":
        where: dict[str, str] = {}
        for name, area in self.areas.items():
            for home in area.homes:
                if home in where:
                    raise ValueError(f"promise.areas: home {home!r} is in both {where[home]!r} and {name!r}")
                where[home] = name
        return self

    def area_of(self) -> dict[str, str]:
        """home -> area name, for every home listed in an area."""
        return {home: name for name, area in self.areas.items() for home in area.homes}

    def terms(self, area: str) -> "Terms":
        """The promise of an area (NO_AREA: the defaults)."""
        a = self.areas.get(area)
        answer = (a and a.answer_within_min) or self.answer_within_min
        on_site = (a and a.on_site_within_min) or self.on_site_within_min
        label = (a and a.label) or ("Övriga" if area == NO_AREA else area)
        return Terms(area, label, answer * 60.0, on_site * 60.0)


@dataclass(frozen=True)
class Terms:
    area: str
    label: str
    answer_s: float
    on_site_s: float


@dataclass(frozen=True)
class Verdict:
    answer_s: float | None  # opened -> accepted (None: never accepted)
    on_site_s: float | None  # opened -> on site (None: nobody recorded on site)
    close_s: float | None  # opened -> closed (None: still open)
    answer_ok: bool
    on_site_ok: bool

    @property
    def ok(self) -> bool:
        return self.answer_ok and self.on_site_ok


def judge(opened: float, accepted: float | None, on_site: float | None, closed: float | None,
          terms: Terms, now: float) -> Verdict:
    """One case against its promise. The rule (stated in the report's footnote too):

    - answered in time: accepted (or, without an accept, on site or closed) within the answer time;
    - on site in time: on site within the on-site time, or closed without a visit within it
      (an alarm called off needs nobody at the door); a case with neither is judged at `now`
      (still open past the promise: outside it).
    """
    def since(t):
        return None if t is None else t - opened

    answer_s, on_site_s, close_s = since(accepted), since(on_site), since(closed)
    first = next((t for t in (answer_s, on_site_s, close_s) if t is not None), None)
    answer_ok = (first if first is not None else now - opened) <= terms.answer_s
    reached = on_site_s if on_site_s is not None else close_s
    on_site_ok = (reached if reached is not None else now - opened) <= terms.on_site_s
    return Verdict(answer_s, on_site_s, close_s, answer_ok, on_site_ok)
