"""`trygg center doctor`: every check a technician would otherwise make one failure at a time.

The config first (every error in one pass; nothing else can be checked without it), then the
store (reachable, at the latest schema step), the broker (TLS with the center's identity, the
receivers' subscriptions granted, a loopback probe delivered: subscheck.py), the keys, the
enrolled homes, the broker certificate (dates, use, chain), the receivers as they report
themselves in the store, and the web console's files. Verdicts and exit codes are base/doctor.py's.

It only looks: it never migrates the store, writes a key, or takes a message from the receivers
(its subscriptions are never shared ones, so no event is handed to it instead of a receiver;
a receiver drops its probe). The broker check is bounded by TIMEOUT_S per step.
"""

import datetime
import os
import ssl
import threading
import time
from pathlib import Path

from base import mqttconn
from base.doctor import Verdict, failed, passed, run_checks, warned
from base.errors import ConfigError

from . import config as cfgmod
from . import doctorchecks, subscheck
from .receiver import lane_subscriptions

TIMEOUT_S = 10.0


def diagnose(config_path: Path, now: datetime.datetime | None = None,
             probe_wait_s: float = subscheck.PROBE_WAIT_S) -> list[Verdict]:
    """Every verdict for the center configured at config_path."""
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        cfg = cfgmod.load(config_path)
    except ConfigError as exc:
        lines = str(exc).splitlines()
        fix = (f"give the center's config: --config PATH (default {cfgmod.DEFAULT_CENTER_CONFIG})"
               if "not found" in lines[0] or "this is a device config" in lines[0] else
               f"correct what is named above in {config_path} (every problem is listed) and run doctor again")
        return [failed("config", "; ".join(lines), fix)]
    opened: dict = {}

    def store() -> Verdict:
        verdict, opened["db"] = doctorchecks.store(cfg)
        return verdict

    def receivers() -> Verdict | list[Verdict]:
        db = opened.get("db")
        if db is None:
            return failed("receivers", "cannot be checked without the store", "fix the store first (above)")
        return doctorchecks.receivers(db, now.timestamp())

    try:
        return run_checks([
            ("config", lambda: passed("config", f"{config_path} is valid")),
            ("store", store),
            ("broker", lambda: broker(cfg, probe_wait_s)),
            ("keys", lambda: doctorchecks.keys(cfg)),
            ("homes", lambda: doctorchecks.homes(cfg)),
            ("broker certificate", lambda: doctorchecks.certificate(
                "broker certificate", cfg.broker.cert, cfg.broker.key, cfg.broker.ca, "client", now)),
            ("receivers", receivers),
            ("web console", lambda: doctorchecks.web(cfg, now)),
        ])
    finally:
        if opened.get("db") is not None:
            opened["db"].close()


def doctor_filters(cfg: cfgmod.CenterConfig) -> list[str]:
    """What the service's lanes subscribe to, without $share/GROUP/: read the same, take nothing."""
    out = []
    for lane in ("alarm", "bulk"):
        for topic in lane_subscriptions(cfg, lane):
            topic = topic.split("/", 2)[2] if topic.startswith("$share/") else topic
            if topic not in out:
                out.append(topic)
    return out


def broker(cfg: cfgmod.CenterConfig, probe_wait_s: float = subscheck.PROBE_WAIT_S) -> Verdict:
    """TLS with the center's identity, the CONNACK, the SUBACK's codes, then the loopback probe."""
    b = cfg.broker
    where = f"{b.host}:{b.port}"
    filters = doctor_filters(cfg)
    identity = subscheck.identity_name(b.cert)
    probe = subscheck.Probe(subscheck.probe_topic(filters[0], identity), identity, probe_wait_s)
    events = {name: threading.Event() for name in ("connack", "suback", "probe_suback", "puback", "heard")}
    seen: dict = {}

    def on_connect(client, userdata, flags, rc, properties):
        seen["connack"] = rc
        events["connack"].set()

    def on_subscribe(client, userdata, mid, codes, properties):
        key = "probe_suback" if mid == probe.sub_mid else "suback"
        seen[key] = codes
        events[key].set()

    def on_publish(client, userdata, mid, rc, properties):
        seen["puback"] = rc
        events["puback"].set()

    def on_message(client, userdata, message):
        if bytes(message.payload) == probe.payload:
            events["heard"].set()

    try:
        client = mqttconn.make_client(f"{cfg.center.name}-doctor-{os.urandom(3).hex()}", b)
    except (OSError, ValueError) as exc:
        return failed("broker", f"cannot load the TLS files broker.ca/cert/key: {exc}",
                      "check the paths and that the key belongs to the certificate")
    client.on_connect, client.on_subscribe = on_connect, on_subscribe
    client.on_publish, client.on_message = on_publish, on_message
    try:
        client.connect(b.host, b.port, keepalive=b.keepalive_s)
    except ssl.SSLCertVerificationError as exc:
        return failed("broker", f"{where}: the broker's certificate is not accepted: {exc.verify_message}",
                      f"the broker's certificate must chain to {b.ca} and name {b.host} in its subjectAltName")
    except (OSError, ValueError) as exc:
        return failed("broker", f"{where}: cannot connect: {type(exc).__name__}: {exc}",
                      "check broker.host/port, that the broker runs, and the firewall")
    client.loop_start()
    try:
        return _session(client, where, filters, probe, events, seen)
    finally:
        client.disconnect()
        client.loop_stop()


def _session(client, where, filters, probe, events, seen) -> Verdict:
    if not events["connack"].wait(TIMEOUT_S):
        return failed("broker", f"{where}: no answer to CONNECT in {TIMEOUT_S:g} s (TLS refused our certificate?)",
                      "check the broker's log: it names why it dropped the connection")
    if seen["connack"].is_failure:
        return failed("broker", f"{where} refused the center's identity: {seen['connack']}",
                      "let the center's certificate user in (use_identity_as_username, clientid_prefixes, ACL)")
    client.subscribe([(topic, 1) for topic in filters])
    if not events["suback"].wait(TIMEOUT_S):
        return failed("broker", f"{where}: no SUBACK in {TIMEOUT_S:g} s", "check the broker's log")
    refused = subscheck.refusals(filters, seen["suback"])
    if refused:
        return failed("broker", "; ".join(map(subscheck.without_fix, refused)), subscheck.ACL_FIX)
    probe.sub_mid = client.subscribe(probe.topic, qos=1)[1]
    if not events["probe_suback"].wait(TIMEOUT_S) or subscheck.refusals([probe.topic], seen["probe_suback"]):
        return warned("broker", f"{where}: TLS and subscriptions granted; the probe topic {probe.topic} was not",
                      "reading could not be checked: see the receivers' check")
    started = time.monotonic()
    probe.sent(client.publish(probe.topic, probe.payload, qos=1).mid, started)
    if events["puback"].wait(TIMEOUT_S):
        refused = probe.publish_result(probe.pub_mid, seen["puback"])
        if refused:
            return warned("broker", subscheck.without_fix(refused), "reading could not be checked: see the receivers' check")
    if not events["heard"].wait(probe.wait_s):
        return failed("broker", subscheck.without_fix(subscheck.unseen(probe.topic, probe.identity, probe.wait_s)),
                      subscheck.ACL_FIX)
    ms = (time.monotonic() - started) * 1000
    return passed("broker", f"{where}: TLS as {probe.identity!r}, {len(filters)} subscription(s) granted, "
                            f"probe delivered back in {ms:.1f} ms")
