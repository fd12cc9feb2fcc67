"""Doctor: can this home reach its broker over TLS with its own identity, and does the broker's
ACL let it publish its status and subscribe to its commands and acknowledgements?

The probe is a short MQTT 5 session of its own (its own client id, so the running daemon's
session is never taken over). Publishing is checked on the home's status topic with a QoS 1
PUBACK: a reason code of 0x80 or more (0x87 Not authorized) means the ACL refused it. The
status topic is retained and staff see it, so the probe is never retained (the daemon's
retained status stays) and is a real signed offline status stamped at the Unix epoch: the
receiver and `trygg center` take a status only when it is newer than the last one they took,
so this one changes nothing anyone sees. Subscriptions are checked by their SUBACK reason
codes; Mosquitto's acl_file grants every subscription and filters at delivery, so there a
refused read cannot be seen from the device (the report says so).
"""

import secrets
import ssl
import threading
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from base import mqttconn
from base.doctor import Verdict, failed, passed
from base.errors import TryggError
from protocol import topics
from protocol.presence import signed_status

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # older than any status a receiver has taken


class _Probe:
    """One session's answers, filled in by paho's callbacks (loop thread), read by the doctor."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.connack = self.puback = self.suback = self.disconnect = None

    def set(self, name: str, value) -> None:
        with self.changed:
            setattr(self, name, value)
            self.changed.notify_all()

    def wait(self, name: str, timeout: float):
        with self.changed:
            self.changed.wait_for(lambda: getattr(self, name) is not None or self.disconnect is not None, timeout)
            return getattr(self, name)


def check_broker(cfg, device_sign, timeout: float = 10.0, section: str = "broker") -> list[Verdict]:
    """Verdicts for: the TLS connection, publishing the status, subscribing to the down topics.
    device_sign: the device's Ed25519 key (signs the probe status), or None when it cannot be read.
    section: the config section of the broker ([broker], or a second one such as [broker_fallback])."""
    broker = getattr(cfg, section)
    where = f"{broker.host}:{broker.port}"
    try:
        client = mqttconn.make_client(f"{cfg.home.id}-doctor-{secrets.token_hex(3)}", broker, section=section)
    except TryggError as exc:
        return [failed(section, f"cannot set up TLS: {exc}", "fix the file named above (trygg config validate)")]
    probe = _Probe()
    client.on_connect = lambda c, u, f, rc, p: probe.set("connack", rc)
    client.on_publish = lambda c, u, mid, rc, p: probe.set("puback", rc)
    client.on_subscribe = lambda c, u, mid, rcs, p: probe.set("suback", rcs)
    client.on_disconnect = lambda c, u, f, rc, p: probe.set("disconnect", rc)
    try:
        mqttconn.connect(client, broker)
    except ssl.SSLCertVerificationError as exc:
        return [failed(section, f"{where}: the broker's certificate is not accepted: {exc.verify_message}",
                       f"the broker certificate needs a SAN with the name in {section}.host, issued by the CA "
                       f"in {section}.ca (docs/operations.md, certificates)")]
    except (OSError, ValueError) as exc:
        return [failed(section, f"cannot connect to {where}: {type(exc).__name__}: {exc}",
                       f"check {section}.host and {section}.port, the network, and that the broker is running")]
    client.loop_start()
    try:
        return _session(client, probe, cfg, device_sign, where, timeout, section)
    finally:
        client.disconnect()
        client.loop_stop()


def _session(client, probe: _Probe, cfg, device_sign, where: str, timeout: float, section: str) -> list[Verdict]:
    connack = probe.wait("connack", timeout)
    if connack is None:
        why = f"disconnected ({probe.disconnect})" if probe.disconnect is not None else f"no answer in {timeout:g} s"
        return [failed(section, f"{where} did not accept the connection: {why}",
                       "the broker must trust this certificate's CA (its cafile) and allow the home's CN; "
                       "see the broker's log")]
    if connack.is_failure:
        return [failed(section, f"{where} refused the connection: {connack}",
                       "the broker must accept this certificate (use_identity_as_username, its CA) - see its log")]
    verdicts = [passed(section, f"connected to {where} over TLS as {cfg.home.id}")]
    home = cfg.home.id
    if device_sign is None:
        verdicts.append(failed(f"{section} publish", "not tried: the device key could not be read (see keys.device)",
                               "fix keys.device, then run trygg doctor again"))
    else:
        status = probe_status(home, cfg.uplink.heartbeat_s, device_sign)
        info = client.publish(topics.status(home), status, qos=1, retain=False)
        code = probe.wait("puback", timeout) if info.rc == mqtt.MQTT_ERR_SUCCESS else None
        if code is None:
            verdicts.append(failed(f"{section} publish", f"no PUBACK for {topics.status(home)} within {timeout:g} s",
                                   "see the broker's log for this client"))
        elif code.is_failure:
            verdicts.append(failed(f"{section} publish", f"the broker refused {topics.status(home)}: {code} "
                                   f"(0x{code.value:02x})", acl_fix(home)))
        else:
            verdicts.append(passed(f"{section} publish", f"{topics.status(home)} accepted ({code})"))
    wanted = [topics.ack(home), topics.command(home)]
    client.subscribe([(topic, 1) for topic in wanted])
    codes = probe.wait("suback", timeout)
    if codes is None:
        verdicts.append(failed(f"{section} subscribe", f"no SUBACK within {timeout:g} s", "see the broker's log"))
    elif refused := [f"{t}: {c} (0x{c.value:02x})" for t, c in zip(wanted, codes) if c.is_failure]:
        verdicts.append(failed(f"{section} subscribe", "the broker refused " + "; ".join(refused), acl_fix(home)))
    else:
        verdicts.append(passed(f"{section} subscribe", f"{', '.join(wanted)} granted (a Mosquitto acl_file grants every "
                               "subscription and filters on delivery: its ACL is checked by the publish above)"))
    return verdicts


def probe_status(home: str, heartbeat_s: int, device_sign) -> bytes:
    """The probe's payload: a real signed status the receiver accepts and, being older than any
    status it took, drops as no news (center/homes.py is_new_status)."""
    return signed_status(home, "offline", EPOCH, heartbeat_s, device_sign)


def acl_fix(home: str) -> str:
    return (f"the broker's ACL must let user {home} (certificate CN = home id) write trygg/v1/{home}/up/#, "
            f"/status, /lookin and read trygg/v1/{home}/down/# (config/mosquitto-trygg.acl.example)")
