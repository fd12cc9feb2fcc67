"""The look-in plan: the body of the `lookin_plan` event a home sends at start and whenever its
grant changes, so the center knows when a look-in is due. One model for both sides: the device
builds its body with it (agent/grant.py), the center parses it strictly (center/rounds.py).
"""

import zoneinfo
from typing import Annotated, Literal

from pydantic import Field

from .names import ROLE_NAME
from .times import HHMM, Strict, TimeWindow, TimeZone
from .wiremodel import read


class LookinPlan(Strict):
    """The `lookin_plan` body a home sends at start and when its grant changes; from the
    network (signed, but still parsed strictly, as every body: wiremodel.py): unknown fields,
    wrong types and missing fields (also a window's `days`) are refused."""

    camera: Literal["none", "synthetic", "opencv", "picamera2"]
    timezone: TimeZone
    times: list[HHMM] = Field(max_length=24)
    tolerance_s: float = Field(ge=0, le=6 * 3600)
    windows: list[TimeWindow] = Field(max_length=16)
    max_per_night: int = Field(ge=0, le=50)
    privacy: Literal["none", "blur", "silhouette"]
    roles: list[Annotated[str, Field(pattern=ROLE_NAME)]] = Field(max_length=16)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def has_rounds(self) -> bool:
        """Only agreed times make rounds; without a camera there is nothing to look in with."""
        return self.camera != "none" and bool(self.times)


def parse_plan(body: object) -> LookinPlan:
    """A plan from an event body (already read by the strict JSON reader with its event), or
    MessageError (a ValueError, with a code) with one line saying what is wrong."""
    return read(LookinPlan, body, "body")
