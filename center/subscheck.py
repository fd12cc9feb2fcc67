"""Whether the broker lets the center's identity read what a receiver subscribes to.

Two ways a broker says no. It may refuse a subscription in its SUBACK (reason code 0x80 and up:
EMQX, HiveMQ, Mosquitto's dynamic-security plugin). Or it grants the subscription and then
delivers nothing: Mosquitto 2.0's acl_file is checked at delivery, not at SUBSCRIBE (measured:
2.0.11 grants QoS 1 to a certificate its ACL gives no read right, then stays silent). So the
receiver, and `trygg center doctor`, also send themselves one probe on an exact topic of the
kind they read, and say "receives nothing" when the broker took the probe (PUBACK success) but
never delivered it back. A probe carries PROBE_MARK at the start of its payload; every receiver
drops probes silently (its own, and other receivers' that its wildcard subscriptions also get).

Reading keeps one receiver lane's side of this across its connections (what its SUBACK refused,
its probe); it never decides what the receiver shows or does: it says what changed, and the
receiver shows the link. The rest only reads codes and makes topics and lines.
"""

import logging
import os
from pathlib import Path

from protocol.topics import HOME_ID_RE, PREFIX

log = logging.getLogger(__name__)

PROBE_MARK = b"trygg-probe/1:"
PROBE_WAIT_S = 5.0
RECEIVES_NOTHING = "receives nothing"  # in every line that says so: doctor fails a receiver on it
ACL_FIX = ("allow the receiver's certificate user to read and write trygg/v1/# in the broker's ACL "
           "(config/mosquitto-trygg.acl.example: user center)")


def refusals(filters: list[str], reason_codes) -> list[str]:
    """One plain line per filter whose SUBACK code is a failure (0x80 and up)."""
    out = []
    for topic, code in zip(filters, reason_codes):
        value = code.value if hasattr(code, "value") else int(code)
        if value >= 0x80:
            out.append(f"{RECEIVES_NOTHING} on {topic}: the broker refused the subscription ({code}, "
                       f"0x{value:02x}); {ACL_FIX}")
    return out


def unseen(topic: str, identity: str | None, wait_s: float = PROBE_WAIT_S) -> str:
    who = f"certificate {identity!r}" if identity else "this certificate"
    return (f"{RECEIVES_NOTHING} on {topic}: the broker granted the subscription but did not deliver a "
            f"probe sent to it within {wait_s:g} s (its ACL gives {who} no read right there); {ACL_FIX}")


def publish_refused(topic: str, code) -> str:
    return (f"could not check reading {topic}: the broker refused the probe publish ({code}); "
            f"{ACL_FIX}")


def identity_name(cert: Path) -> str | None:
    """The certificate's CN: with use_identity_as_username, the user the broker's ACL knows."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        names = x509.load_pem_x509_certificate(Path(cert).read_bytes()).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except (OSError, ValueError):
        return None
    return str(names[0].value) if names else None


def probe_topic(subscription: str, identity: str | None) -> str:
    """An exact topic the subscription covers: its wildcards filled in, the home segment with
    the identity's own name when that is a home id (an ACL pattern with %u then applies as to
    the receiver's own reading), the class `test`."""
    if subscription.startswith("$share/"):
        subscription = subscription.split("/", 2)[2]
    home = identity if identity and HOME_ID_RE.fullmatch(identity) else "trygg-probe"
    parts = subscription.split("/")
    base = PREFIX.count("/") + 1
    filled = [home if i == base and p == "+" else "test" if p in ("+", "#") else p for i, p in enumerate(parts)]
    return "/".join(filled)


def without_fix(line: str) -> str:
    """The line without its fix, for a report that prints the fix on a line of its own."""
    return line.removesuffix(f"; {ACL_FIX}")


def new_probe() -> bytes:
    return PROBE_MARK + os.urandom(8).hex().encode()


def is_probe(payload) -> bool:
    return bytes(payload[:len(PROBE_MARK)]) == PROBE_MARK


class Probe:
    """One connection's loopback check: subscribed to its exact topic, probe published, then
    heard back (or anything else heard on the subscriptions) before the deadline, or not.
    Anything heard counts: after an outage the probe may queue behind a backlog that shows
    reading works anyway. Times are the caller's monotonic seconds."""

    def __init__(self, topic: str, identity: str | None, wait_s: float = PROBE_WAIT_S) -> None:
        self.topic, self.identity, self.wait_s = topic, identity, wait_s
        self.payload = new_probe()
        self.sub_mid: int | None = None
        self.pub_mid: int | None = None
        self.deadline: float | None = None
        self.heard = False
        self.verdict: str | None = None  # the line saying it receives nothing, or could not check

    def sent(self, mid: int, now: float) -> None:
        self.pub_mid, self.deadline = mid, now + self.wait_s

    def publish_result(self, mid: int, code) -> str | None:
        """The broker's PUBACK for the probe: a refusal means reading cannot be checked this way."""
        if mid != self.pub_mid or not getattr(code, "is_failure", False):
            return None
        self.deadline = None
        self.verdict = publish_refused(self.topic, code)
        return self.verdict

    def hear(self) -> bool:
        """Something came back; True when that ends an earlier "receives nothing"."""
        recovered = self.verdict is not None and RECEIVES_NOTHING in self.verdict
        self.heard, self.deadline = True, None
        if recovered:
            self.verdict = None
        return recovered

    def overdue(self, now: float) -> str | None:
        """The "receives nothing" line, once, when the deadline passed with nothing heard."""
        if self.heard or self.deadline is None or now < self.deadline:
            return None
        self.deadline = None
        self.verdict = unseen(self.topic, self.identity, self.wait_s)
        return self.verdict


class Reading:
    """Whether one receiver lane reads, connection by connection: the SUBACK of its topics and its
    loopback probe. `refusals` holds what it receives nothing on (one line each, [] when it reads);
    a SUBACK refusal stands until the next connect, a probe never delivered until something is heard.
    `lane` only labels its log lines."""

    def __init__(self, identity: str | None, lane: str, wait_s: float = PROBE_WAIT_S) -> None:
        self.identity, self.lane, self.wait_s = identity, lane, wait_s
        self.probe: Probe | None = None
        self.refusals: list[str] = []
        self._subscribing: tuple[int | None, list[str]] = (None, [])  # the last SUBSCRIBE's mid and filters
        self._optional: dict[str, str] = {}
        self._suback_refused = False

    def subscribe(self, client, topics: list[str], optional: dict[str, str]) -> None:
        """At connect: the lane's topics (QoS 1), the optional ones (QoS 0; topic -> what it is for,
        a refusal only logged), then the probe's topic."""
        self._optional = optional
        filters = [(topic, 1) for topic in topics] + [(topic, 0) for topic in optional]
        self._subscribing = (client.subscribe(filters)[1], [topic for topic, _ in filters])
        self.refusals, self._suback_refused = [], False
        self.probe = Probe(probe_topic(topics[0], self.identity), self.identity, self.wait_s)
        self.probe.sub_mid = client.subscribe(self.probe.topic, qos=1)[1]

    def suback(self, client, mid: int, reason_codes, now: float) -> list[str] | None:
        """A SUBACK. For the lane's topics: what it receives nothing on ([] when all were granted).
        For the probe's topic: the probe is published (unless something was heard already); None."""
        probe = self.probe
        if probe is not None and mid == probe.sub_mid:
            refused = refusals([probe.topic], reason_codes)
            if refused:
                log.warning("receiver (%s lane): probe not possible: %s", self.lane, refused[0])
            elif not probe.heard:
                probe.sent(client.publish(probe.topic, probe.payload, qos=1).mid, now)
            return None
        if mid != self._subscribing[0]:
            return None
        own = []
        for topic, code in zip(self._subscribing[1], reason_codes):
            for line in refusals([topic], [code]):
                if topic in self._optional:
                    log.info("receiver (%s lane): %s cannot be read: %s", self.lane, self._optional[topic], line)
                else:
                    own.append(line)
        if own:
            self._suback_refused, self.refusals = True, own
        return own

    def puback(self, mid: int, code) -> None:
        if self.probe is not None:
            refused = self.probe.publish_result(mid, code)
            if refused:
                log.warning("receiver (%s lane): %s", self.lane, refused)

    def heard(self, client) -> bool:
        """A message came in. The first since connect: reading works, so the probe's topic is left,
        and True when that takes back a "receives nothing" the probe said (it had queued behind a
        backlog); a SUBACK refusal stands."""
        if self.probe is None or self.probe.heard:
            return False
        recovered = self.probe.hear() and not self._suback_refused
        if recovered:
            self.refusals = []
        client.unsubscribe(self.probe.topic)
        return recovered

    def overdue(self, now: float) -> list[str]:
        """The "receives nothing" line, once, when the probe's wait ran out with nothing heard."""
        if self.probe is None or self.refusals:
            return []
        line = self.probe.overdue(now)
        if line is None:
            return []
        self.refusals = [line]
        return [line]

    @property
    def warnings(self) -> list[str]:
        """What it receives nothing on, and a probe that could not check (publish refused)."""
        verdict = self.probe.verdict if self.probe is not None else None
        return self.refusals + ([verdict] if verdict and verdict not in self.refusals else [])
