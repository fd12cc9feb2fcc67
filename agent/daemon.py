"""The daemon: wires keys, outbox, uplink, drivers and the control socket; owns their lifecycle.

Starts parts in dependency order and stops them in reverse; turns SIGTERM into a clean stop;
tells systemd when it is ready and keeps its watchdog fed only while the parts are healthy.
Housekeeping (TTL expiry, reporting lost data as a `data_lost` event, forwarding audit entries
as `audit` events, renewing the command challenge) runs here too, because it needs both the
stores and the emit path. Owns no protocol, storage or network logic itself.
"""

import logging
import signal
import threading

from base import sdnotify
from .actions import build_actions
from .audit import AuditLog
from .centerkeys import CenterKeys, center_kid
from base.clock import SystemClock
from .commands import Commands
from .commit import GroupCommitter
from .config import DeviceConfig, for_display
from .control import ControlServer, Handlers, Injected
from .devices import HomeDevices
from .fleetreport import FleetReporter, OpenFaults
from base.errors import StorageError
from protocol.events import Event
from .freshness import Freshness
from .grant import Grant
from .helpcoming import HelpComing
from .housekeeping import Housekeeper
from base.keys import check_database, check_private, create_private, load_private
from .lookin import LookIn
from .outbox import Outbox, Row
from .policy import Policy
from .sealer import Sealer
from .staff import StaffRegistry
from .storageguard import StorageGuard
from .trustdb import AtRest, TrustDB
from .uplink import Uplink

log = logging.getLogger(__name__)


class Daemon(Handlers):
    def __init__(self, config: DeviceConfig, clock=None) -> None:
        self.cfg = config
        self.clock = clock or SystemClock()
        self.started_at = self.clock.monotonic()
        self._stop_requested = threading.Event()
        self._stopped = False
        self.audit: AuditLog | None = None
        self._opened: list = []  # what start() opened, closed in reverse by stop()
        self._sent_plan: dict | None = None
        self._plan_lock = threading.Lock()  # the command thread and housekeeping both send it
        self.faults = OpenFaults()  # for the fleet report: fault events seen on the emit path

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Open everything in dependency order; on any failure close what was opened and re-raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        sdnotify.notify("READY=1\nSTATUS=running")
        log.info("trygg daemon started for home %s", self.cfg.home.id)

    def _start(self) -> None:
        cfg = self.cfg
        self.device = load_private(cfg.keys.device)
        check_private(cfg.broker.key, "TLS private key")  # at-rest check: refuse files others can read
        check_database(cfg.outbox.path, "the outbox")
        # The socket first: it refuses to start beside a running daemon, before we touch its outbox
        # or take over its broker session.
        self.control = self._open(ControlServer(cfg.control.socket, self))
        # The outbox before trust.db: on a full card it gives back its alarm reserve, which is what
        # lets the rest open (SQLite needs room even to read a WAL).
        self.storage = StorageGuard()
        create_private(cfg.outbox.path)  # 0600 from the start; SQLite gives -wal and -shm its mode
        self.outbox = self._open(Outbox(
            cfg.outbox.path,
            cfg.outbox.max_bytes,
            {"event": cfg.outbox.ttl_event_s, "telemetry": cfg.outbox.ttl_telemetry_s,
             "test": cfg.outbox.ttl_telemetry_s},
            clock=self.clock.time,
            reserve_bytes=cfg.outbox.reserve_bytes,
            min_free_bytes=cfg.outbox.min_free_bytes,
            on_disk_full=self.storage.failed,
        ))
        self.trust = self._open(self._open_trust())
        self.center = CenterKeys(cfg.keys.center, cfg.keys.center_next, self.trust)
        self.trust.at_rest = AtRest(cfg.home.id, self.device, lambda: self.center.active.kem)  # before the audit
        self.audit = AuditLog(self.trust, self.clock)
        self.policy = Policy(cfg, self.clock)
        saved_alarm = self.trust.setting("last_alarm")
        if saved_alarm:
            self.policy.restore_alarm(float(saved_alarm))
        self.freshness = Freshness(self.trust, self.clock, cfg.commands,
                                   on_new_challenge=lambda: self.uplink.refresh_presence())
        self.committer = self._open(GroupCommitter(self.outbox, cfg.outbox.group_commit_ms / 1000))
        self.sealer = Sealer(cfg.home.id, self.device, self.center.active.kem, self.clock)
        self.uplink = Uplink(cfg, self.device, self.center, self.outbox, self.clock,
                             on_command=lambda topic, payload: self.commands.submit(topic, payload),
                             presence_extra=self._presence_extra)
        self._audit_start()
        if self.outbox.recovered_from:
            self.inject(Event("event", "fault", {"component": "outbox", "detail": self.outbox.recovered_from}))
        self._start_commands()  # before the uplink: a (retained) command can arrive with the SUBACK
        self.send_plan()
        self.devices.start()  # the locks too, before the first command
        self.fleet = FleetReporter(cfg.home.id, self.device.sign, lambda: self.sealer.center, self.clock,
                                   outbox=self.outbox, drivers=self.devices.health, held_alarms=self.uplink.held_alarms,
                                   faults=self.faults, cert=cfg.broker.cert)  # before the first heartbeat
        self.uplink.start()
        self._open(self.uplink)
        self.control.start()
        self.housekeeper = Housekeeper(self, self._stop_requested)
        self.housekeeper.start()

    def _open(self, part):
        self._opened.append(part)
        return part

    def _start_commands(self) -> None:
        cfg = self.cfg
        self.devices = self._open(HomeDevices(cfg, self.emit, self.clock, self.trust, inject=self.inject))
        self.locks = self.devices.of_kind("lock")
        self.grant = Grant(cfg.lookin, cfg.home.timezone, self.clock, self.trust, cfg.roles)
        self.lookin = None
        if cfg.lookin.camera != "none":
            self.lookin = self._open(LookIn(cfg.home.id, self.device, self.grant, self.uplink, self.emit, self.clock,
                                            self.devices.factory))
            self.lookin.open()
        lights = {name: b for name, b in self.devices.of_kind("button").items() if b.cfg.led is not None}
        actions = build_actions(self.locks, self.status, self._switch_center_key,
                                lookin=self.lookin, change_grant=self._change_grant,
                                help_coming=HelpComing(cfg.help_coming, lights))
        self.commands = Commands(cfg.home.id, self.device, StaffRegistry(self.trust, self.audit, cfg.roles),
                                 self.freshness, self.policy, self.audit, actions, self.emit, cfg.commands, self.clock)
        self.commands.start()
        self._open(self.commands)

    def _change_grant(self, args: dict, by: str) -> dict:
        plan = self.grant.plan(self.grant.change(args, by, self.audit))
        self.send_plan()
        return plan

    def send_plan(self) -> None:
        """Tell the center the look-in plan (agreed times, time zone) when it is new or changed,
        so its rounds know when a look-in is due. A change by `trygg grant set` is seen here too."""
        with self._plan_lock:
            plan = self.grant.plan()
            if plan != self._sent_plan:
                if self.inject(Event("event", "lookin_plan", plan)).accepted:
                    self._sent_plan = plan

    def _presence_extra(self) -> dict:
        return {"clock_synced": bool(self.clock.synced()), "challenge": self.freshness.challenge, **self._storage(),
                "report": self.fleet.sealed()}

    def _storage(self) -> dict:
        """The card as the center sees it in every heartbeat: ok, low or failing, and the free space."""
        disk = self.outbox.disk()
        return {"storage": self.storage.state(disk), "free_bytes": disk["free_bytes"]}

    def _switch_center_key(self, kid: str) -> str:
        self.sealer.center = self.center.switch(kid, self.audit).kem
        return kid

    def _open_trust(self) -> TrustDB:
        """trust.db, even on a full card: when it cannot open, the outbox's reserve makes the room."""
        try:
            return TrustDB(self.cfg.trust.path)
        except StorageError as exc:
            if not self.outbox.reserve.release():
                raise
            self.storage.failed(exc)
            log.error("%s; gave back the alarm reserve to open it", exc)
            return TrustDB(self.cfg.trust.path)

    def _audit_start(self) -> None:
        """Audit the start, and any change to the effective config since the last start. On a full
        card the daemon starts anyway (its alarms matter more) and the center hears of the card."""
        try:
            self.audit.record_start(for_display(self.cfg), center_kid(self.center.active))
        except StorageError as exc:
            self.storage.failed(exc)
            log.error("could not audit the start: %s", exc)

    def stop(self) -> None:
        """Close everything start() opened, in reverse order. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_requested.set()
        sdnotify.notify("STOPPING=1")
        if self.audit is not None:
            try:
                self.audit.append("stop", {"uptime_s": round(self.clock.monotonic() - self.started_at, 1)})
            except Exception:
                log.exception("could not audit the stop")
        for part in reversed(self._opened):
            try:
                part.stop() if hasattr(part, "stop") else part.close()
            except Exception:  # one part failing to close must not keep the others open
                log.exception("closing %s failed", type(part).__name__)
        if hasattr(self, "housekeeper"):
            self.housekeeper.join(timeout=5)
        log.info("trygg daemon stopped")

    def run_forever(self) -> None:
        """Run until SIGTERM or SIGINT, then stop cleanly."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop_requested.set())
        self.start()
        try:
            while not self._stop_requested.wait(1.0):
                pass
        finally:
            self.stop()

    # -- the emit path -------------------------------------------------------------------
    def emit(self, event: Event) -> bool:
        """What real drivers call: seal, commit durably, wake the uplink. True once accepted.

        Only this path opens the night staff's unlock window, and only real drivers get it;
        `trygg simulate` and the simulated world come in through inject(), whatever the body says.
        """
        if event.cls == "alarm":
            self.policy.note_alarm()  # night staff may now unlock where the lock's rule says "alarm"
        return self.inject(event)[1]

    def inject(self, event: Event, hold: bool = True, tell: bool = False) -> Injected:
        """Seal, commit and send an event that authorizes nothing (simulated, or the daemon's own).

        hold: when the card cannot store it, send it from memory (False for audit entries, which
        are sent again from trust.db anyway); tell: also when the outbox refuses it for room (the
        daemon's own reports on the card and on losses, which must get out)."""
        self.faults.note(event)
        message, row = self.sealer.seal(event)
        try:
            stored = accepted = self.committer.put(row)
        except StorageError as exc:
            self.storage.failed(exc)
            stored, accepted = False, hold and self._hold(row)
        else:
            if not stored and tell:  # refused for room (the outbox counted the drop); it must still get out
                accepted = self.uplink.hold(row)
        if accepted:
            self.uplink.wake()
        else:
            log.warning("%s %s refused: %s", event.cls, message.id, self.storage.error or "the outbox is full",
                        extra={"event_id": message.id})
        self._report_storage_fault()
        return Injected(message.id, accepted, stored)

    def _hold(self, row: Row) -> bool:
        """The card could not take the row even after making room: it goes straight to the uplink and
        stays in memory until the center acknowledges it."""
        evicted = self.uplink.held_dropped
        held = self.uplink.hold(row)
        if self.uplink.held_dropped > evicted:  # an older held alarm made way for this one
            self.storage.lost("alarm")
        if not held:
            self.storage.lost(row.cls)
            log.warning("not stored and not held in memory: %s %s lost", row.cls, row.id, extra={"event_id": row.id})
        return held

    def _report_storage_fault(self) -> None:
        """The center hears at once when a write fails, and once more when storage is well again."""
        error = self.storage.take_fault_due()
        if error is not None:
            log.error("storage failing: %s; what cannot be stored is held in memory until acknowledged", error)
            self.inject(Event("event", "fault", {"component": "storage", "detail": error}), tell=True)
            self.uplink.refresh_presence()  # the heartbeat's storage state, now rather than in a minute

    # -- status and housekeeping ---------------------------------------------------------
    def status(self) -> dict:
        outbox, disk = self.outbox.stats(), self.outbox.disk()
        return {
            "home": self.cfg.home.id,
            "uptime_s": round(self.clock.monotonic() - self.started_at, 1),
            "clock_synced": self.clock.synced(),
            **self.uplink.status(),
            "outbox": outbox,
            "storage": {**disk, "state": self.storage.state(disk), "error": self.storage.error,
                        "failed_writes": self.storage.failures},
            "unacked_alarms": outbox["classes"]["alarm"],
            "commands": self.commands.status(),
            "alarm_open": self.policy.alarm_open(),
            "center_key": center_kid(self.center.active),
            "locks": {name: lock.state for name, lock in self.locks.items()},
            "drivers": self.devices.health(),
            "lookin": self.lookin.status() if self.lookin else {"camera": "none"},
        }

    def refill(self, dispenser: str, count: int | None) -> dict:
        """A nurse refilled a dispenser: its dose count starts again (audited)."""
        driver = self.devices.of_kind("dispenser").get(dispenser)
        if driver is None:
            raise ValueError(f"no dispenser named {dispenser!r} (known: {', '.join(self.devices.of_kind('dispenser')) or 'none'})")
        result = driver.refill(count)
        self.audit.append("dispenser_refilled", {"dispenser": dispenser, **result})
        return result

    def healthy(self) -> bool:
        return self.uplink.alive() and self.committer.alive() and self.commands.alive()
