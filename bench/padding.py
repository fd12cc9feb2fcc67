#!/usr/bin/env python3
"""What padding costs a quiet home on a metered mobile link (issue 13), before and after.

Prints the envelope sizes (agent/protocol/padding.py), then one quiet day of a home configured
as config/trygg.example.toml: the message counts come from that file and the code's defaults
(heartbeat_s, challenge_ttl_s, health every_s, the motion sensors and dose times configured),
the sizes from really sealing each message with today's envelope (padded) and from the same
signed message without padding (what version 1 sent: signed + 58 bytes with X25519). Nothing
here talks to a broker; "on the link" adds an estimate of MQTT 5 and TLS 1.3 framing per
publish (stated below), which padding does not change.

    python bench/padding.py            (or: python bench/run_all.py padding)
"""

import base64
import json
import subprocess
import sys
import tomllib
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.config import DeviceConfig  # noqa: E402
from protocol.events import Event  # noqa: E402
from base.keys import Identity  # noqa: E402
from protocol.presence import signed_status  # noqa: E402
from protocol import envelope, padding, topics  # noqa: E402
from protocol.ids import new_id  # noqa: E402
from protocol.messages import AckMessage, LookinMessage, encode  # noqa: E402
from agent.sealer import Sealer  # noqa: E402
from bench._common import header, result, say  # noqa: E402
from tests.support.fakes import FakeClock  # noqa: E402

DAY = 86400
NOW = datetime(2026, 1, 15, 3, 0, tzinfo=timezone.utc)
# Per publish on the link, both ways (estimate): TLS 1.3 record 5 B header + 1 B type + 16 B tag
# around the PUBLISH and around its PUBACK; MQTT 5 PUBLISH QoS 1: fixed header 2-4 B, topic
# length 2 B + topic, packet id 2 B, property length 1 B; PUBACK 4 B. TCP/IP headers not counted.
TLS_RECORD = 22
PUBACK = 4 + TLS_RECORD


def wire(payload: int, topic: str) -> int:
    fixed = 2 if payload < 128 else 3 if payload < 16384 else 4
    return TLS_RECORD + fixed + 2 + len(topic.encode()) + 2 + 1 + payload + PUBACK


def unpadded(body: bytes, suite_id: int) -> int:
    """What version 1 sent for the same message: no length field, no padding."""
    return padding.overhead(suite_id) + 8 + envelope.SIG_LEN + len(body)


def quiet_day(cfg: DeviceConfig) -> list[tuple[str, int, str, bytes, str]]:
    """(what, per day, topic, body, direction) for one quiet day of this home."""
    home = cfg.home.id
    device, center = Identity.generate(home), Identity.generate("center")
    sealer = Sealer(home, device, center.kem.public, FakeClock(NOW))
    rows = []

    def event(what: str, per_day: int, ev: Event) -> None:
        message, row = sealer.seal(ev)
        rows.append((what, per_day, row.topic, encode(message), "up"))
        ack = AckMessage(home=home, ids=[message.id], time=NOW)  # a quiet home's batch is one event
        rows.append((f"ack of {what}", per_day, topics.ack(home), encode(ack), "down"))

    event("device_health", round(DAY / cfg.health.every_s), Event("telemetry", "device_health", {
        "health": "device", "cpu_temp_c": 48.3, "disk_free_mb": 27310, "disk_free_pct": 91.2,
        "under_voltage": False, "clock_synced": True}))
    for name in cfg.motion:
        event(f"activity_summary ({name})", 1, Event("telemetry", "activity_summary", {
            "motion": name, "date": "2026-01-14", "per_hour": [0, 0, 1, 0, 0, 0, 3, 14, 22, 9, 11, 17, 25, 8, 6, 12,
                                                              19, 23, 31, 16, 12, 4, 1, 0], "total": 254}))
    for name, disp in cfg.dispensers.items():
        event(f"dose_taken ({name})", len(disp.doses), Event("event", "dose_taken", {
            "dispenser": name, "dose": disp.doses[0].time, "after_s": 412, "late": False}))
        event(f"dose_summary ({name})", 1, Event("telemetry", "dose_summary", {
            "dispenser": name, "date": "2026-01-14", "taken": len(disp.doses), "late": 0, "missed": 0, "faults": 0,
            "power_interruptions": 0, "doses_left": 19, "days_left": 6.3}))
    status = signed_status(home, "online", NOW, cfg.uplink.heartbeat_s, device.sign, clock_synced=True,
                           challenge="2aa5c3be165637f3195d8233e6f2cef7")
    per_day = round(DAY / cfg.uplink.heartbeat_s) + round(DAY / cfg.commands.challenge_ttl_s)
    rows.append(("status (heartbeat + challenge renewal), signed only", per_day, topics.status(home), status, "status"))
    return rows, device, center


def measure(rows, device, center):
    out = []
    for what, per_day, topic, body, direction in rows:
        if direction == "status":
            before = after = len(body)  # not sealed: neither version pads it
        else:
            signer, to = (device.sign, center.kem.public) if direction == "up" else (center.sign, device.kem.public)
            after = len(envelope.seal(body, topic, signer, to))
            before = unpadded(body, to.suite_id)
        out.append((what, per_day, topic, before, after))
    return out


def picture_jpeg_bytes(cfg: DeviceConfig, privacy: str) -> int | None:
    """A real capture with the synthetic camera at the configured size (drivers/capture.py)."""
    request = {"camera": "synthetic", "device": 0, "width": cfg.lookin.width, "height": cfg.lookin.height,
               "burst": cfg.lookin.burst, "privacy": privacy, "max_bytes": 700000}
    done = subprocess.run([sys.executable, "-m", "drivers.capture"], input=json.dumps(request).encode() + b"\n",
                          capture_output=True, timeout=120, cwd=ROOT, check=False)
    if done.returncode != 0:
        return None
    from drivers.capture import read_pictures
    return sum(map(len, read_pictures(done.stdout)))


def main() -> int:
    cfg = DeviceConfig.model_validate(tomllib.loads((ROOT / "config" / "trygg.example.toml").read_text()))
    header("padding: envelope sizes and what they cost a quiet home per day")
    say(f"  envelope sizes (bytes): {', '.join(f'{s:,}' for s in padding.SMALL)}; pictures "
        f"(trygg/v1/<home>/lookin): {', '.join(f'{s:,}' for s in padding.PICTURE)}")
    for suite_id, smallest in ((1, 1024), (2, 2048)):
        say(f"  suite {suite_id}: the smallest envelope it uses, {smallest:,} B, holds "
            f"{padding.max_signed(smallest, suite_id) - 72:,} B of body; 8,192 B (the command limit) holds "
            f"{padding.max_signed(8192, suite_id) - 72:,} B")
    rows, device, center = quiet_day(cfg)
    measured = measure(rows, device, center)
    say(f"\n  one quiet day of {cfg.home.id} (config/trygg.example.toml, X25519 center key):")
    say(f"  {'message':<52} {'per day':>7} {'before B':>9} {'after B':>8}")
    totals = {"before": 0, "after": 0, "wire_before": 0, "wire_after": 0, "count": 0}
    for what, per_day, topic, before, after in measured:
        say(f"  {what:<52} {per_day:>7} {before:>9} {after:>8}")
        totals["before"] += per_day * before
        totals["after"] += per_day * after
        totals["wire_before"] += per_day * wire(before, topic)
        totals["wire_after"] += per_day * wire(after, topic)
        totals["count"] += per_day
    pings = round(DAY / cfg.broker.keepalive_s) - round(DAY / cfg.uplink.heartbeat_s)  # idle keepalive gaps
    ping_bytes = pings * 2 * (2 + TLS_RECORD)
    say(f"  {'MQTT PINGREQ/PINGRESP between heartbeats (estimate)':<52} {pings:>7} {48:>9} {48:>8}")
    result("padding", "messages per quiet day", totals["count"], "msgs")
    result("padding", "payload bytes per day, before (unpadded)", totals["before"], "B")
    result("padding", "payload bytes per day, after (padded)", totals["after"], "B")
    result("padding", "padding cost, payload", totals["after"] - totals["before"], "B/day",
           note=f"{(totals['after'] - totals['before']) * 30 / 2**20:.1f} MiB per 30 days")
    before_link = totals["wire_before"] + ping_bytes
    after_link = totals["wire_after"] + ping_bytes
    result("padding", "on the link per day, before (est. MQTT+TLS)", before_link, "B",
           note=f"{before_link * 30 / 2**20:.1f} MiB per 30 days")
    result("padding", "on the link per day, after (est. MQTT+TLS)", after_link, "B",
           note=f"{after_link * 30 / 2**20:.1f} MiB per 30 days, +{100 * (after_link / before_link - 1):.0f} %")

    say(f"\n  look-ins (a home with a camera, {cfg.lookin.width}x{cfg.lookin.height}, burst {cfg.lookin.burst}, "
        f"at most {cfg.lookin.max_per_night} a night; synthetic camera):")
    staff = Identity.generate("staff")
    for privacy in ("blur", "silhouette", "none"):
        jpeg = picture_jpeg_bytes(cfg, privacy)
        if jpeg is None:
            say(f"  {privacy}: the capture did not run here")
            continue
        body = encode(LookinMessage(home=cfg.home.id, command=new_id(), staff="anna", time=NOW, privacy=privacy,
                                    width=cfg.lookin.width, height=cfg.lookin.height,
                                    frames=[base64.b64encode(bytes(jpeg)).decode()]))
        after = len(envelope.seal(body, topics.lookin(cfg.home.id), device.sign, staff.kem.public))
        before = unpadded(body, 1)
        result("padding", f"look-in picture ({privacy}), before -> after", after, "B",
               note=f"{jpeg:,} B JPEG, {before:,} B unpadded; {cfg.lookin.max_per_night} a night: "
                    f"+{(after - before) * cfg.lookin.max_per_night * 30 / 2**20:.1f} MiB per 30 days")
    return 0


if __name__ == "__main__":
    sys.exit(main())
