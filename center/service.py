"""`trygg center run`: the receiving service. Receiving is a service; watching is a view.

Two lanes, each a Receiver with its own broker session (its own queue at the broker) and its
own store connection: alarms alone, and everything else (events, telemetry, statuses). An
outage backlog of events or telemetry is therefore never in front of an alarm, at the broker
or here. A ticker raises escalations and overdue flags, notes the receiver alive in the store
(so views can tell staff when nobody receives), and pets systemd's watchdog while both lanes
live. Several services may run against one PostgreSQL store (MQTT 5 shared subscriptions
spread the homes' messages; the store decides everything once). With [broker_fallback] (the
homes' second alarm path) both lanes run once more on that broker, as "<name>-fallback" with
their own persistent sessions: a home sends through one broker at a time, an event sent
through both is recorded once (the store's insert on conflict) and acknowledged on the broker
it came through; the look-in rounds run once, on the first broker's bulk lane.

What this process prints is its log (the journal): received alarms, presence changes, and
rejected messages summarized once a minute per home, never line by line (one home's bad
certificate once produced thousands of lines a second on a staff console).
"""

import json
import logging
import threading
import time
from dataclasses import asdict

from base import sdnotify
from base.clock import SystemClock
from base.errors import TryggError
from base.keys import load_private
from protocol import topics

from . import brokerlimits, feed, keyring
from .atrest import Sealer, center_keys
from .cases import CaseDesk
from .config import CenterConfig
from .db import StoreUnavailable
from .homes import HomeRegistry
from .receiver import Receiver
from .roundsdesk import RoundsDesk
from .store import EventStore

log = logging.getLogger(__name__)
CASES_CONTEXT = "trygg-center/v1/"
TICK_S = 1.0


def case_desk(cfg: CenterConfig, store: EventStore, keys=None) -> CaseDesk:
    """The cases on a store, sealing with the center's keys, staff checked against their keys."""
    return CaseDesk(store.db, Sealer(keys or center_keys(cfg), CASES_CONTEXT), cfg.cases,
                    lambda name: keyring.staff_public(cfg, name))


class ServiceLog:
    """The service's sink: one log line per thing worth a line; rejections summarized."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rejected: dict[str, list] = {}  # home or topic -> [count, last reason]

    def event(self, message, received: float) -> None:
        if message.cls == "alarm":
            log.warning("alarm %s from %s recorded (%s)", message.kind, message.home, message.id,
                        extra={"home": message.home, "event_id": message.id})
        else:
            log.debug("%s %s from %s recorded (%s)", message.cls, message.kind, message.home, message.id)

    def presence(self, home: str, state: str) -> None:
        log.info("home %s is %s", home, state)

    def storage(self, home: str, state: str, free_bytes) -> None:
        log.warning("home %s: card %s (%s bytes free)", home, state, free_bytes)

    def link(self, state: str, detail: str) -> None:
        log.info("broker %s (%s)", state, detail)

    def lookin(self, alert) -> None:
        log.warning("rounds: %s at %s, %s look-in", alert.kind, alert.slot.home, alert.slot.time)

    def rejected(self, topic: str, reason: str) -> None:
        """The first rejection from a source is logged at once; the rest in the minute's summary."""
        try:
            source = topics.parse(topic).home
        except ValueError:
            source = "(not a home topic)"
        with self._lock:
            entry = self._rejected.setdefault(source, [0, reason])
            first = entry[0] == 0
            entry[0] += 1
            entry[1] = reason
        if first:
            log.warning("rejected a message from %s on %s: %s (more from it are summarized each minute)",
                        source, topic, reason)

    def summarize(self) -> list[tuple[str, int, str]]:
        """(source, count, last reason) since the last summary; each logged as one line."""
        with self._lock:
            out = [(source, count, reason) for source, (count, reason) in self._rejected.items() if count]
            self._rejected = {}
        for source, count, reason in out:
            log.warning("rejected %d message(s) from %s in the last minute; last reason: %s", count, source, reason)
        return out


class Service:
    def __init__(self, cfg: CenterConfig, clock=None) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.sink = ServiceLog()
        self._stop = threading.Event()
        identity = load_private(cfg.center.key)
        keys = center_keys(cfg)
        self.ticker_store = _open_store(cfg, self._stop)
        self.cases = case_desk(cfg, self.ticker_store, keys)
        self.lanes: list[Receiver] = []
        self.via: list[str] = []  # per lane: "" (the broker) or "fallback"
        for via, lane_cfg in broker_configs(cfg):
            for lane in ("alarm", "bulk"):
                store = _open_store(cfg, self._stop)
                rounds = RoundsDesk(store, keys, cfg.rounds.retry_after_s) if lane == "bulk" and not via else None
                self.lanes.append(Receiver(
                    lane_cfg, identity, HomeRegistry(cfg.center.homes_dir, store.replay_marks()), store, self.sink,
                    self.clock, keyring.opening_keys(cfg), load_opening=lambda: keyring.opening_keys(cfg),
                    rounds=rounds, cases=case_desk(cfg, store, keys), lane=lane))
                self.via.append(via)

    def run(self) -> str | None:
        """Receive until stop(); returns why a lane failed, or None after a clean stop. The lanes
        are stopped whatever happens here: a bug in the ticker must not leave them receiving in
        a process that no longer pets the watchdog or answers SIGTERM."""
        threads = [threading.Thread(target=r.run, name=f"lane-{r.lane}{'-' + via if via else ''}")
                   for r, via in zip(self.lanes, self.via)]
        for t in threads:
            t.start()
        try:
            return self._supervise(threads)
        finally:
            sdnotify.notify("STOPPING=1")
            for r in self.lanes:
                r.stop()
            for t in threads:
                t.join(30)
            self._tick(False)
            for r in self.lanes:
                r.store.close()
                if r.rounds is not None:
                    r.rounds.close()
            self.ticker_store.close()

    def _supervise(self, threads: list[threading.Thread]) -> str | None:
        """Tick until stop() or a lane fails: readiness, escalations, summaries, the watchdog."""
        ready = False
        last_summary = time.monotonic()
        while not self._stop.wait(TICK_S):
            failed = next((r.failed for r in self.lanes if r.failed), None)
            if failed or not all(t.is_alive() for t in threads):
                return failed or "a receiving lane ended"
            connected = self._receiving()
            if connected and not ready:
                ready = True
                sdnotify.notify(f"READY=1\nSTATUS=receiving from {self.cfg.broker.host}:{self.cfg.broker.port}")
            self._tick(connected)
            if time.monotonic() - last_summary >= self.cfg.center.rejected_summary_s:
                last_summary = time.monotonic()
                self._summarize()
            sdnotify.notify("WATCHDOG=1")
        return None

    def _receiving(self) -> bool:
        """Every lane of at least one broker is connected: alarms through it reach staff. With two
        brokers, one of them down (the reason for having two) is not a receiver that is down."""
        groups: dict[str, list[Receiver]] = {}
        for r, via in zip(self.lanes, self.via):
            groups.setdefault(via, []).append(r)
        return any(all(r.connected.is_set() for r in lanes) for lanes in groups.values())

    def _tick(self, connected: bool) -> None:
        """Escalations and this receiver's heartbeat; the store may be away (logged, retried)."""
        try:
            for case_id, flag, n in self.cases.escalate(self.clock.time()):
                log.warning("case %s: %s%s", case_id, flag, f" {n}" if n else "")
            state = ("connected" if connected else
                     "not receiving" if any(r.not_receiving for r in self.lanes) else "disconnected")
            self.ticker_store.receiver_beat(self.cfg.center.name, state, self.clock.time(), self._broker_report())
        except StoreUnavailable as exc:
            log.error("ticker: %s", exc)

    def _broker_report(self) -> str | None:
        """What the lanes learned of the broker, for `trygg center receivers` (None: nothing yet)."""
        lanes = {r.lane + (f"@{via}" if via else ""): {"limits": asdict(r.broker_limits), "warnings": r.broker_warnings}
                 for r, via in zip(self.lanes, self.via) if r.broker_limits is not None}
        if not lanes:
            return None
        homes = len(self.lanes[0].homes.keys)
        return json.dumps({"lanes": lanes, "homes": homes, "queue_needed": brokerlimits.queue_needed(homes)},
                          sort_keys=True)

    def _summarize(self) -> None:
        rows = [(self.clock.time(), "rejected", source if source[0] != "(" else None, f"{count}|{reason}"[:300])
                for source, count, reason in self.sink.summarize()]
        if rows:
            try:
                with self.ticker_store.db.tx() as tx:
                    feed.append(tx, rows)
            except StoreUnavailable as exc:
                log.error("rejected-message summary not stored: %s", exc)

    def stop(self) -> None:
        self._stop.set()


def broker_configs(cfg: CenterConfig) -> list[tuple[str, CenterConfig]]:
    """("", cfg) and, with a [broker_fallback], ("fallback", cfg on that broker as <name>-fallback):
    a receiver per broker, each with its own client ids, so each broker keeps its own sessions."""
    out = [("", cfg)]
    if cfg.broker_fallback is not None:
        center = cfg.center.model_copy(update={"name": f"{cfg.center.name}-fallback"})
        out.append(("fallback", cfg.model_copy(update={"broker": cfg.broker_fallback, "center": center})))
    return out


def _open_store(cfg: CenterConfig, stop: threading.Event) -> EventStore:
    """The store, waiting (and saying why) while it cannot be reached: PostgreSQL may start after
    us; events wait at the broker and in the homes' outboxes meanwhile."""
    delay = 0.5
    while True:
        try:
            return EventStore(cfg.store_url)
        except StoreUnavailable as exc:
            if stop.is_set():
                raise TryggError(f"stopped while waiting for the store: {exc}") from None
            log.error("waiting for the store: %s (retrying in %g s)", exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, 30.0)
