"""Which broker the uplink uses now, and when it changes: the second alarm path.

A home may have a second broker ([broker_fallback]: the region's, or one reached over a
cellular modem). The rule, kept here and nowhere else:
- the first broker is used while it works; once it has been unreachable for failover_after_s
  (every attempt since failed), the uplink moves to the second;
- on the second, the first is probed every retry_first_s (an MQTT session of its own with this
  identity, clean and without a will, so it leaves nothing at the broker); when it takes one,
  the uplink moves back. If the second fails too, the first is tried at once, then the second,
  and so on (both down: the outbox keeps everything; whichever returns first takes it);
- a move between two brokers that were both failing waits the uplink's backoff, so two dead
  brokers are not tried in a tight loop.
Delivery does not change: a row leaves the outbox only on the center's signed ack, so what was
in flight on the broker left behind is sent again on the new one (the center dedupes by id).
Pure bookkeeping with the caller's monotonic seconds, except probe() (I/O, run on its own
thread by the injected spawn) and CappedBackoff (reads the injected clock). Never publishes.
"""

import logging
import threading
import time
from collections.abc import Callable

from base import mqttconn
from base.configbase import BrokerConfig

log = logging.getLogger(__name__)
NAMES = ("first", "second")
SECTIONS = ("broker", "broker_fallback")  # where each is configured, named in errors


class BrokerChoice:
    def __init__(self, first: BrokerConfig, second: BrokerConfig | None = None, failover_after_s: float = 20.0,
                 retry_first_s: float = 30.0, probe: Callable[[BrokerConfig], bool] = lambda b: False,
                 spawn: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.brokers = (first, second) if second is not None else (first,)
        self.failover_after_s = failover_after_s
        self.retry_first_s = retry_first_s
        self._probe = probe
        self._spawn = spawn or (lambda fn: threading.Thread(target=fn, name="broker-probe", daemon=True).start())
        self.leave = threading.Event()  # set when the uplink must end this broker's loop (or stop)
        self.using = 0
        self.switches = 0
        self._first_down_since: float | None = None  # every attempt on the first failed since then
        self._failed = [False, False]  # the last attempt on each broker failed
        self._lost = [False, False]  # the broker in use failed us since we moved to it (or it took us)
        self._first_back = False  # a probe found the first working again
        self._probing = False
        self._next_probe = float("inf")

    @classmethod
    def of(cls, first: BrokerConfig, fallback=None, probe_id: str = "probe") -> "BrokerChoice":
        """The choice for a device's [broker] and optional [broker_fallback] (agent/config.py)."""
        if fallback is None:
            return cls(first)
        return cls(first, fallback, fallback.failover_after_s, fallback.retry_first_s,
                   probe=lambda broker: probe(probe_id, broker, SECTIONS[0]))

    @property
    def broker(self) -> BrokerConfig:
        return self.brokers[self.using]

    @property
    def section(self) -> str:
        return SECTIONS[self.using]

    def status(self) -> dict:
        return {"broker": NAMES[self.using], "broker_address": f"{self.broker.host}:{self.broker.port}",
                "broker_switches": self.switches}

    def up(self, now: float) -> None:
        """The broker in use accepted our session."""
        self._failed[self.using] = self._lost[self.using] = False
        if self.using == 0:
            self._first_down_since = None
        else:
            self._next_probe = now + self.retry_first_s

    def down(self, now: float) -> None:
        """A connection attempt to the broker in use failed, or its session ended."""
        if self.using == 1 and self._first_back:
            return  # we are leaving it on purpose
        self._failed[self.using] = self._lost[self.using] = True
        if self.using == 0 and self._first_down_since is None:
            self._first_down_since = now
        if self.switch_due(now):
            self.leave.set()

    def switch_due(self, now: float) -> bool:
        if len(self.brokers) == 1:
            return False
        if self.using == 0:
            since = self._first_down_since
            return self._lost[0] and since is not None and now - since >= self.failover_after_s
        return self._first_back or self._lost[1]

    def until_due(self, now: float) -> float:
        """Seconds until the first has been unreachable long enough (inf: no switch is pending)."""
        if len(self.brokers) == 1 or self.using != 0 or self._first_down_since is None or not self._lost[0]:
            return float("inf")
        return max(0.0, self._first_down_since + self.failover_after_s - now)

    def poll(self, now: float) -> bool:
        """While connected: probe the first when due (on the second). True when this broker's loop
        must end (time to move, or stopping)."""
        if self.using == 1 and not self._probing and not self._first_back and now >= self._next_probe:
            self._probing = True
            self._next_probe = now + self.retry_first_s
            self._spawn(self._probe_first)
        if self.switch_due(now):
            self.leave.set()
        return self.leave.is_set()

    def _probe_first(self) -> None:
        try:
            self._first_back = bool(self._probe(self.brokers[0]))
        except Exception:  # a probe that breaks counts as the first still away
            log.exception("uplink: probing the first broker failed")
            self._first_back = False
        finally:
            self._probing = False

    def switch(self, now: float) -> bool:
        """Move to the other broker; True when it was failing too (the caller backs off first)."""
        back = self._first_back
        self.leave.clear()
        self.using = 1 - self.using
        self.switches += 1
        self._first_back = self._lost[self.using] = False
        if self.using == 1:
            self._next_probe = now + self.retry_first_s
        log.warning("uplink: moving to the %s broker (%s:%s)%s", NAMES[self.using], self.broker.host, self.broker.port,
                    " - the first is back" if back else "")
        return self._failed[self.using] and not back


class CappedBackoff:
    """The uplink's backoff, but never waiting past the moment the choice would move on."""

    def __init__(self, backoff: mqttconn.Backoff, choice: BrokerChoice, monotonic: Callable[[], float]) -> None:
        self.backoff, self.choice, self.monotonic = backoff, choice, monotonic

    def next_delay(self) -> float:
        return min(self.backoff.next_delay(), self.choice.until_due(self.monotonic()))

    def reset(self) -> None:
        self.backoff.reset()


def probe(client_id: str, broker: BrokerConfig, section: str = "broker", timeout: float = 10.0) -> bool:
    """Does the broker take an MQTT session with this identity now? Clean start, no will, no
    subscriptions: nothing stays at the broker, and the home's own session is not disturbed."""
    accepted: list[bool] = []
    client = None
    try:
        client = mqttconn.make_client(client_id, broker, section=section)
        client.on_connect = lambda c, u, f, reason_code, p: accepted.append(not reason_code.is_failure)
        mqttconn.connect(client, broker)
        deadline = time.monotonic() + timeout
        while not accepted and time.monotonic() < deadline:
            ok, _ = mqttconn.pump(client, [], 0.2)
            if not ok:
                break
        if accepted and accepted[0]:
            client.disconnect()
            mqttconn.pump(client, [], 0)
        return bool(accepted and accepted[0])
    except (OSError, ValueError):
        return False
    finally:
        mqttconn.close_socket(client)
