"""What one receiver lane learns of its broker's limits: the CONNACK's grant at every connect,
and the rises of the broker's dropped-message counter ($SYS). Each is kept as warnings for
`trygg center receivers` (the service reports them) and logged; the rules are brokerlimits.py.
It never changes what the receiver does: a report about the broker must never keep a lane from
receiving, so nothing here raises."""

import logging
from collections.abc import Callable

from . import brokerlimits
from .brokerlimits import BrokerLimits

log = logging.getLogger(__name__)


class BrokerNotes:
    """`homes` says how many homes we serve now (the sizing rule counts them); `lane` labels logs."""

    def __init__(self, lane: str, homes: Callable[[], int], asked_expiry_s: int) -> None:
        self.lane, self._homes, self._asked_expiry_s = lane, homes, asked_expiry_s
        self.limits: BrokerLimits | None = None  # as the last CONNACK said
        self._limit_warnings: list[str] = []  # what the last CONNACK grants that is too small for our homes
        self._drop_warning: str | None = None  # the last rise of the dropped-message counter
        self.dropped_count: int | None = None  # the broker's dropped-message counter, when readable

    def connack(self, properties) -> None:
        """Say at every connect what the broker grants, and warn where it is too small for our homes."""
        try:
            self.limits = BrokerLimits.from_connack(properties)
            self._limit_warnings = brokerlimits.warnings(self.limits, self._homes(), self._asked_expiry_s)
            log.info("receiver (%s lane): %s", self.lane, self.limits.describe())
        except Exception:
            log.exception("receiver (%s lane): could not read the broker's limits", self.lane)
            return
        for warning in self._limit_warnings:
            log.warning("receiver (%s lane): %s", self.lane, warning)

    def dropped(self, payload: bytes) -> None:
        """The broker's count of messages it dropped: a rise means a queue is too small."""
        try:
            count = int(payload.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return  # only the broker writes $SYS: nothing else to say of it
        warning = brokerlimits.dropped_warning(self.dropped_count, count, self._homes())
        self.dropped_count = count
        if warning is not None:
            log.warning("receiver (%s lane): %s", self.lane, warning)
            self._drop_warning = warning

    @property
    def warnings(self) -> list[str]:
        return self._limit_warnings + ([self._drop_warning] if self._drop_warning else [])
