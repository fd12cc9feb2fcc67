"""When to send again what the center has not acknowledged: by the acks, not by a clock alone.

The receiver takes a home's messages in order and acknowledges them in order, so:
- a message last sent more than REORDER_S before another that has since been acknowledged
  (counting that one's first send) was lost on the way: it goes again at once;
- an alarm not acknowledged goes again after ALARM_FIRST_S, then after twice as long each time
  up to resend_after_s (2, 4, 8, 16, 30 s): a broker that dropped it (a full queue) costs
  seconds, not the bulk window's half minute; alarms are few, so this cannot flood anyone;
- of the rest, only probes go out: one message, and when the center acknowledges a whole round
  of probes, twice as many in the next round at once (as TCP's slow start); a round that goes
  unanswered starts again from one. A whole window re-sent into silence (a stalled receiver)
  would fill the receiver's queue at the broker, which then drops what is new, a fall included;
  probes cannot, and they still recover a tail whose acknowledgement was lost in a few rounds.
The time-out is four smoothed round trips (at least MIN_RTO_S) while the center has answered
within resend_after_s, and resend_after_s when it has gone quiet. Pure bookkeeping: no I/O,
times are the caller's monotonic seconds.
"""

from collections import OrderedDict
from typing import NamedTuple

REORDER_S = 1.0  # a message this much older than one acknowledged after it was lost, not late
MIN_RTO_S = 2.0
ALARM_FIRST_S = 2.0  # an unacknowledged alarm's first re-send; the wait doubles from there


class _Sent(NamedTuple):
    at: float  # the last send
    first: float  # the first send: what an acknowledgement of this id proves
    prio: int
    sends: int  # how many times it went out


class Resends:
    def __init__(self, resend_after_s: float, max_round: int) -> None:
        self.resend_after_s = resend_after_s
        self.max_round = max_round
        self._awaiting: OrderedDict[str, _Sent] = OrderedDict()  # in order of the last send
        self._acked_first = float("-inf")  # first send of the newest message acknowledged
        self._last_ack = float("-inf")
        self._srtt: float | None = None
        self._round: set[str] = set()  # probes waiting for their acknowledgement
        self._round_at = float("-inf")
        self._round_size = 1

    def __len__(self) -> int:
        return len(self._awaiting)

    def sent(self, event_id: str, prio: int, now: float) -> None:
        old = self._awaiting.pop(event_id, None)
        self._awaiting[event_id] = _Sent(now, old.first if old else now, prio, old.sends + 1 if old else 1)

    def forget(self, event_id: str) -> None:
        """No longer waiting anywhere (acknowledged meanwhile, or gone from the outbox)."""
        self._awaiting.pop(event_id, None)
        self._round.discard(event_id)

    def acked(self, ids: list[str], now: float) -> None:
        probing = bool(self._round)
        for event_id in ids:
            sent = self._awaiting.pop(event_id, None)
            if sent is None:
                continue
            self._acked_first = max(self._acked_first, sent.first)
            sample = now - sent.at
            self._srtt = sample if self._srtt is None else 0.875 * self._srtt + 0.125 * sample
            self._round.discard(event_id)
        self._last_ack = now
        if probing and not self._round:  # the whole round came back: the next one, twice as big, now
            self._round_size = min(2 * self._round_size, self.max_round)

    def timeout(self, now: float) -> float:
        if now - self._last_ack >= self.resend_after_s or self._srtt is None:
            return self.resend_after_s
        return min(max(MIN_RTO_S, 4 * self._srtt), self.resend_after_s)

    def alarm_timeout(self, sends: int) -> float:
        """An alarm's wait after its n-th send: doubling from ALARM_FIRST_S, never past resend_after_s."""
        return min(ALARM_FIRST_S * 2 ** min(sends - 1, 16), max(self.resend_after_s, ALARM_FIRST_S))

    def due(self, now: float, limit: int) -> list[str]:
        """Ids to send again now: alarms on their own back-off, then the rest oldest send first
        (the caller orders them alarms first)."""
        alarms = [event_id for event_id, sent in self._awaiting.items()
                  if sent.prio == 0 and now - sent.at >= self.alarm_timeout(sent.sends)][:limit]
        return alarms + self._due_rest(now, limit - len(alarms), set(alarms))

    def _due_rest(self, now: float, limit: int, taken: set[str]) -> list[str]:
        timeout = self.timeout(now)
        if self._round and now - self._round_at >= timeout:  # unanswered: start small again
            self._round.clear()
            self._round_size = 1
        overtaken = self._acked_first - REORDER_S
        probing = not self._round
        due: list[str] = []
        for event_id, sent in self._awaiting.items():
            lost, timed_out = sent.at < overtaken, now - sent.at >= timeout
            if not (lost or timed_out) or len(due) >= limit:
                break  # in order of the last send: nothing later is due either
            if event_id in taken:
                continue
            if lost:
                due.append(event_id)
            elif sent.prio == 0:
                continue  # an alarm not lost waits for its own back-off (due() above)
            elif probing and len(self._round) < self._round_size:
                due.append(event_id)
                self._round.add(event_id)
        if probing and self._round:
            self._round_at = now
        return due
