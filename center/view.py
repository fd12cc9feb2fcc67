"""`trygg center watch`: a view of the store, which attaches and detaches freely.

It shows first what is true right now: whether a receiver is running, the open cases, and the
homes that are offline, silent or never heard from (so a view started at 02:00 shows the home
that went offline at 01:00); then every new feed row (feed.py) as it is committed, once each.
It receives nothing and acknowledges nothing: that is the service's (`trygg center run`).

New rows are found by polling the feed's index (SQLite: every 0.1 s; one indexed query) or,
on PostgreSQL, woken by LISTEN/NOTIFY with a 1 s poll behind it in case a notification is lost.
"""

import logging
import threading

from base.errors import EnvelopeError
from protocol.messages import EventMessage

from . import feed, keyring
from .atrest import Sealer, center_keys
from .cases import CaseError
from .roundsdesk import ROUNDS_CONTEXT
from .config import CenterConfig
from .homes import HomeRegistry
from .opening import Opener
from .printer import Printer
from .service import case_desk
from .store import EventStore, HomeState

log = logging.getLogger(__name__)
RECEIVER_FRESH_S = 10.0  # a receiver that has not beaten for this long is not receiving
POLL_S = {"sqlite": 0.1, "postgresql": 1.0}


def presence_now(state: HomeState | None, now: float, silent_after: float) -> str:
    """A home's presence at this moment: 'never' without a status; silent when its heartbeats
    stopped, even if no receiver has marked it yet."""
    if state is None:
        return "never"
    if state.state == "online" and state.last_heard is not None and \
            now - state.last_heard > silent_after * state.heartbeat_s:
        return "silent"
    return state.state


class View:
    def __init__(self, cfg: CenterConfig, printer: Printer, clock, show_all: bool = False) -> None:
        self.cfg = cfg
        self.printer = printer
        self.clock = clock
        self.show_all = show_all
        self.store = EventStore(cfg.store_url)
        keys = center_keys(cfg)
        self.cases = case_desk(cfg, self.store, keys)
        self.rounds_sealer = Sealer(keys, ROUNDS_CONTEXT)
        self.homes = HomeRegistry(cfg.center.homes_dir)
        self.opener = Opener(self.homes, keyring.opening_keys(cfg), lambda: keyring.opening_keys(cfg), clock)

    def run(self, stop: threading.Event) -> None:
        last = feed.last_seq(self.store.db)  # before the snapshot: a change during it is shown after
        self.snapshot()
        wake = self._listener()
        while not stop.is_set():
            rows = feed.after(self.store.db, last)
            if rows:
                self.show(rows)
                last = rows[-1].seq
                continue
            wake(stop)
        self.store.close()

    def _listener(self):
        """How to wait for the next row: LISTEN on PostgreSQL, a short sleep on SQLite."""
        poll = POLL_S[self.store.db.dialect]
        if self.store.db.dialect != "postgresql":
            return lambda stop: stop.wait(poll)
        import psycopg

        conn = psycopg.connect(self.store.db.url, autocommit=True)
        conn.execute("LISTEN trygg_feed")

        def wait(stop: threading.Event) -> None:
            for _ in conn.notifies(timeout=poll, stop_after=1):
                pass
        return wait

    # -- right now ---------------------------------------------------------------------------
    def snapshot(self) -> None:
        now = self.clock.time()
        fresh = [(name, state) for name, state, _since, beat in self.store.receivers() if now - beat <= RECEIVER_FRESH_S]
        if not fresh:
            self.printer.no_receiver()
        for name, state in fresh:
            self.printer.receiver(name, state)
        for case in self.cases.listing(open_only=True):
            self.printer.case(case, "open_now")
        states = self.store.homes()
        self.homes.refresh()
        for home in sorted(set(self.homes.keys) | set(states)):
            presence = presence_now(states.get(home), now, self.cfg.center.silent_after_heartbeats)
            if presence != "online":
                since = states[home].since if home in states else None
                self.printer.presence(home, presence, since, snapshot=True)

    # -- what changes ---------------------------------------------------------------------------
    def show(self, rows: list[feed.FeedRow]) -> None:
        events = self.store.events([r.ref for r in rows if r.type == "event"])
        self.homes.refresh()
        for row in rows:
            try:
                self._show(row, events)
            except (CaseError, EnvelopeError, ValueError, KeyError) as exc:  # one row, never the view
                log.error("cannot show %s %s: %s", row.type, row.ref, exc)

    def _show(self, row: feed.FeedRow, events) -> None:
        p = self.printer
        if row.type == "event":
            received = events[row.ref]
            event: EventMessage = self.opener.open_event(received.envelope, received.topic)
            if self.show_all or p.as_json or (event.cls != "telemetry" and event.kind != "audit"):
                p.event(event, received.received)
        elif row.type == "case":
            case_id, _, change = row.ref.partition("|")
            p.case(self.cases.get(case_id), change)
        elif row.type == "presence":
            p.presence(row.home, row.ref, row.at)
        elif row.type == "storage":
            state = self.store.homes().get(row.home)
            p.storage(row.home, row.ref, state.free_bytes if state else None, row.at)
        elif row.type == "lookin":
            night, slot, alert = row.ref.split("|")
            p.lookin(row.home, night, slot, alert, self._lookin_reason(row.home, night, slot, alert), row.at)
        elif row.type == "receiver":
            name, _, state = row.ref.rpartition(":")
            p.receiver(name, state)
        elif row.type == "rejected":
            count, _, reason = row.ref.partition("|")
            p.rejected_summary(row.home, int(count), reason, row.at)

    def _lookin_reason(self, home: str, night: str, slot: str, alert: str) -> str:
        for h, s, kind, sealed in self.store.lookin_alerts(night):
            if (h, s, kind) == (home, slot, alert):
                return (self.rounds_sealer.open(f"alert/{home}/{night}/{slot}/{alert}", sealed) or {}).get("reason") or ""
        return ""
