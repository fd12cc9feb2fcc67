"""Housekeeping: the daemon's chores off the alarm path, on one thread of their own.

Every second: feed systemd's watchdog while the parts are healthy, renew the command challenge,
send the look-in plan when it changed, forward audit entries to the center, keep the last
alarm's time. Every `outbox.sweep_s`: expire old rows, check whether the card is well again,
prune the replay cache, report losses as one `data_lost` event, ask the firmware about
under-voltage for the fleet report. A chore that fails is logged
and the others go on: housekeeping must never stop the watchdog or the daemon.
"""

import logging
import threading
import time
from typing import Callable

from base.errors import StorageError
from protocol.events import Event

from base import sdnotify

log = logging.getLogger(__name__)


class Housekeeper:
    def __init__(self, daemon, stop: threading.Event) -> None:
        self.d = daemon  # the parts it tends: outbox, storage, freshness, audit, trust, policy, uplink
        self._stop = stop
        self._saved_alarm: str | None = None  # only a new alarm sets the time to keep (Policy.note_alarm)
        self._thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        watchdog = sdnotify.watchdog_interval()
        tick = min(watchdog or 1.0, 1.0)
        next_sweep = 0.0
        while not self._stop.wait(tick):
            if watchdog and self.d.healthy():
                sdnotify.notify("WATCHDOG=1")
            self._each("trust", self.d.freshness.tick, self.d.send_plan, self.forward_audit, self.save_last_alarm)
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + self.d.cfg.outbox.sweep_s
                self._each("sweep", self.sweep, self.refresh_fleet)

    @staticmethod
    def _each(what: str, *chores: Callable[[], None]) -> None:
        for chore in chores:
            try:
                chore()
            except Exception:  # noqa: BLE001 - logged; the next chore and the watchdog go on
                log.exception("housekeeping (%s) failed", what)

    # -- every second --------------------------------------------------------------------
    def save_last_alarm(self) -> None:
        """Keep the last alarm's time (off the alarm path) so a restart does not close it."""
        wall = self.d.policy.last_alarm_wall
        if wall is not None and repr(wall) != self._saved_alarm:
            self.d.trust.set_setting("last_alarm", repr(wall))
            self._saved_alarm = repr(wall)

    def forward_audit(self) -> None:
        """Send audit entries not yet sent to the center, each as an `audit` event, in order."""
        for entry in self.d.audit.unsent(100):
            try:
                stored = self.d.inject(Event("event", "audit", entry.to_json()), hold=False).stored
            except ValueError:  # too large to send: the center still learns it exists
                detail = {**entry.to_json(), "detail": {"truncated": True}, "sealed": None}
                stored = self.d.inject(Event("event", "audit", detail), hold=False).stored
            if not stored:
                return
            self.d.audit.mark_sent(entry.seq)

    # -- every sweep ---------------------------------------------------------------------
    def sweep(self) -> None:
        """Expire old rows, see whether the card is well again, then tell the center about
        anything lost since the last report. Each step on its own: a full card must not stop the report."""
        for step in (self.d.outbox.expire, self.check_storage, self.d.freshness.prune):
            try:
                step()
            except StorageError as exc:
                log.warning("housekeeping: %s", exc)
        self.report_losses()
        stats = self.d.outbox.stats()["classes"]
        sdnotify.notify(f"STATUS=link {self.d.uplink.link}; outbox "
                        + ", ".join(f"{c} {v['depth']}" for c, v in stats.items()))

    def refresh_fleet(self) -> None:
        """The firmware's under-voltage bits for the fleet report: vcgencmd may block, so here and
        not on the uplink thread that sends the heartbeat."""
        self.d.fleet.refresh_throttled()

    def check_storage(self) -> None:
        """Storage is well again once the alarm reserve is whole and the free space above the margin."""
        outbox, storage = self.d.outbox, self.d.storage
        if not outbox.keep_reserve() or storage.error is None or outbox.disk()["low"]:
            return
        was = storage.recovered()
        log.info("storage works again (was: %s)", was)
        self.d.inject(Event("event", "fault_cleared", {"component": "storage", "detail": f"room again; was: {was}"}),
                      tell=True)

    def report_losses(self) -> None:
        """One data_lost event for what the outbox dropped or expired and what could not be kept at all."""
        outbox, storage = self.d.outbox, self.d.storage
        losses = outbox.unreported_losses()
        not_stored = storage.take_lost()
        if not losses.total() and not any(not_stored.values()):
            return
        body = {"dropped": losses.dropped, "expired": losses.expired, "not_stored": not_stored}
        if not self.d.inject(Event("event", "data_lost", body), tell=True).accepted:
            storage.give_back(not_stored)
            return
        try:
            outbox.mark_reported(losses)
        except StorageError as exc:  # reported again next time: better twice than never
            log.warning("could not record the data_lost report: %s", exc)
