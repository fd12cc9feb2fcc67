"""What the receiving side needs from the broker, and what it can learn of what it gets.

The sizing rule (docs/operations.md, "Broker sizing"), for N homes whose devices keep at most
W messages unacknowledged by the center (the agent's [uplink] max_unacked, 500 by default):
- each receiving session's queue (Mosquitto's max_queued_messages) holds at least N x W
  messages, so a whole region draining at once never overflows it (the broker drops what does
  not fit, silently, and homes must re-send);
- the receiver asks for RECEIVE_MAXIMUM unacknowledged messages at a time (MQTT 5 Receive
  Maximum) and for a session that outlives a restart (session_expiry_s);
- the broker's largest packet holds a look-in picture's envelope (1 MiB plus headers);
- QoS 1 is granted (QoS 0 would lose alarms).
MQTT 5's CONNACK discloses the packet size, QoS, session expiry and the broker's own Receive
Maximum, not its queue limits. Mosquitto advertises max_inflight_messages as its Receive
Maximum: its default of 20 says the broker runs on defaults, and so on a 1,000-message queue.
What the broker drops is counted on $SYS/broker/publish/messages/dropped when the ACL lets the
receiver read it; a rise there is the one sure sign that the queue is too small.
"""

from dataclasses import dataclass

from protocol.padding import PICTURE

MAX_PICTURE_ENVELOPE = PICTURE[-1]  # the largest sealed look-in picture

MOSQUITTO_DEFAULT_INFLIGHT = 20
MOSQUITTO_DEFAULT_QUEUE = 1000
DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"
DEVICE_WINDOW = 500  # the agent's default [uplink] max_unacked: sent, not yet acknowledged, per home


@dataclass(frozen=True)
class BrokerLimits:
    """What the broker said in its CONNACK (MQTT 5 defaults where it said nothing)."""

    receive_maximum: int = 65535
    maximum_packet_size: int | None = None  # None: no limit announced
    maximum_qos: int = 2
    session_expiry_s: int | None = None  # None: what we asked for

    @classmethod
    def from_connack(cls, properties) -> "BrokerLimits":
        def get(name, default):
            return getattr(properties, name, default) if properties is not None else default
        return cls(get("ReceiveMaximum", 65535), get("MaximumPacketSize", None), get("MaximumQoS", 2),
                   get("SessionExpiryInterval", None))

    def describe(self) -> str:
        size = "no limit" if self.maximum_packet_size is None else f"{self.maximum_packet_size} B"
        expiry = "as asked" if self.session_expiry_s is None else f"{self.session_expiry_s} s"
        return (f"broker limits: Receive Maximum {self.receive_maximum}, largest packet {size}, "
                f"QoS up to {self.maximum_qos}, session kept {expiry}; queue limits are not disclosed")


def queue_needed(homes: int, window: int = DEVICE_WINDOW) -> int:
    """The sizing rule: each receiving session's queue holds every home's whole window."""
    return max(homes, 1) * window


def warnings(limits: BrokerLimits, homes: int, asked_expiry_s: int) -> list[str]:
    """Plain lines for the log and `trygg center receivers`: what is too small for these homes."""
    out = []
    if limits.maximum_qos < 1:
        out.append("the broker grants QoS 0 only: alarms could be lost; allow QoS 1")
    if limits.maximum_packet_size is not None and limits.maximum_packet_size < MAX_PICTURE_ENVELOPE + 1024:
        out.append(f"the broker takes packets of at most {limits.maximum_packet_size} B: look-in pictures "
                   f"({MAX_PICTURE_ENVELOPE} B sealed) would be refused; set message_size_limit 0 or above "
                   f"{MAX_PICTURE_ENVELOPE + 1024}")
    if limits.session_expiry_s is not None and limits.session_expiry_s < asked_expiry_s:
        out.append(f"the broker keeps this receiver's queue only {limits.session_expiry_s} s while it is away "
                   f"(asked {asked_expiry_s} s): a longer restart loses the queue to re-sends")
    if limits.receive_maximum == MOSQUITTO_DEFAULT_INFLIGHT and queue_needed(homes) > MOSQUITTO_DEFAULT_QUEUE:
        out.append(f"the broker looks like Mosquitto on its default limits (Receive Maximum "
                   f"{MOSQUITTO_DEFAULT_INFLIGHT}): its queue per receiver is then {MOSQUITTO_DEFAULT_QUEUE} "
                   f"messages, too small for {homes} homes (needs {queue_needed(homes)}): a regional "
                   f"outage's backlog is dropped and re-sent; use Trygg's broker config "
                   f"(config/mosquitto-trygg.conf.example)")
    return out


def dropped_warning(before: int | None, now: int, homes: int) -> str | None:
    """The broker's dropped counter, as one plain line: any count at the first reading (drops while
    we were away), then each rise."""
    if now <= (before or 0):
        return None
    what = f"has dropped {now} message(s) since it started" if before is None else f"dropped {now - before} more message(s)"
    return (f"the broker {what} (a client's queue was full): raise "
            f"max_queued_messages to at least {queue_needed(homes)} for {homes} homes; homes re-send, "
            f"nothing is lost, but alarms and backlogs then wait for re-sends")
