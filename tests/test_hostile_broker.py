"""Hostile traffic on a home's command topic through the real broker and `trygg run`.

A raw MQTT client holding the center's certificate (what a stolen broker login allows)
replays a captured command and floods the command topic while the home raises alarms: the
daemon keeps running and delivering alarms, never moves the lock, and audits the refusals.
"""

import random
import threading
from datetime import datetime, timedelta, timezone

from agent.commands import MAX_COMMAND_BYTES
from base.keys import load_public
from protocol import envelope, topics
from protocol.ids import new_id
from protocol.messages import CommandMessage, encode
from tests.support.lab import RawCenter, trygg, wait_for
from tests.test_at_rest import audit_at_center

HOME = "hem-hostile"
UTC = timezone.utc
SUPPRESSED = "command_refusals_suppressed"


def flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset % len(out)] ^= 1
    return bytes(out)


PER_MIN = 20
FLOOD = 2000


def test_hostile_mqtt_traffic_is_refused_audited_and_never_delays_alarms(lab):
    home = lab.home(HOME, commands={"refusals_audited_per_min": PER_MIN}).start()
    berit = lab.enroll(home, "berit", "nurse")
    device = load_public(home.dir / "device.pub")
    watch = lab.watch()
    raw = RawCenter(lab)
    topic = topics.command(home.id)

    def send(action: str) -> tuple[CommandMessage, bytes]:
        now = datetime.now(UTC)
        cmd = CommandMessage(id=new_id(), home=home.id, action=action, args={"lock": "front-door"}, issued=now,
                             expires=now + timedelta(seconds=60), challenge=home.status()["commands"]["challenge"])
        payload = envelope.seal(encode(cmd), topic, berit.sign, device.kem)
        raw.publish(topic, payload)
        return cmd, payload

    def result(cmd: CommandMessage, outcome: str) -> dict:
        return watch.wait_event(lambda o: o.get("kind") == "command_result" and o["body"]["command"] == cmd.id
                                and o["body"]["outcome"] == outcome)["body"]

    try:
        # a valid command, captured on the way: done once, refused when the same bytes come again
        unlock, captured = send("unlock")
        assert result(unlock, "done")["state"] == "unlocked"
        raw.publish(topic, captured)  # a replay: refused and audited, not answered (the original was)
        wait_for(lambda: any(e["kind"] == "command" and e["detail"]["command"] == unlock.id
                             and e["detail"]["reason"].startswith("replayed") for e in audit_at_center(lab, home)),
                 10, "the replay to be refused")
        lock, _ = send("lock")
        assert result(lock, "done")["state"] == "locked"

        # the flood: garbage, bytes past the header, mangled and exact copies of the captured unlock
        rng = random.Random(1)
        header = captured[:10]
        payloads = [[rng.randbytes(rng.randint(0, 300)), header + rng.randbytes(rng.randint(0, 400)),
                     captured[: rng.randrange(len(captured))], flip(captured, rng.randrange(len(captured))),
                     captured][i % 5] for i in range(FLOOD - 1)] + [bytes(MAX_COMMAND_BYTES + 1)]
        flooding = threading.Thread(target=lambda: [raw.client.publish(topic, p, qos=0) for p in payloads])
        flooding.start()
        alarms = home.simulate("alarm", kind="fall", count=3)
        flooding.join()
        watch.wait_ids(alarms, timeout=15)

        def judged():
            counts = home.status()["commands"]
            return counts["refused"] + counts["dropped"]
        seen = []
        wait_for(lambda: seen.append(judged()) or (len(seen) > 3 and seen[-1] == seen[-4]), 15,
                 "the daemon to finish judging the flood", interval=0.2)
        status = home.status()
        assert home.proc.poll() is None and status["link"] == "connected"
        assert status["locks"] == {"front-door": "locked"}, "a replayed or mangled unlock moved the lock"
        counts = status["commands"]
        assert counts["done"] == 2 and counts["failed"] == 0
        assert counts["refused"] + counts["dropped"] > 10 * PER_MIN, counts  # the flood did reach the daemon

        entries = audit_at_center(lab, home)  # who and why are sealed to the center
        refused = [e["detail"] for e in entries if e["kind"] == "command" and e["detail"]["outcome"] == "refused"]
        assert all(d["reason"] for d in refused)
        assert any(d["reason"].startswith("envelope:") for d in refused)
        assert any(d["reason"].startswith("replayed") and d["staff"] == "berit" for d in refused)
        summarized = sum(e["detail"]["suppressed"] for e in entries if e["kind"] == SUPPRESSED)
        # within the daemon's first minute(s) at most PER_MIN a minute are audited one by one; the
        # rest are counted (status) and summarized once each minute is over
        minutes = 1 + int(status["uptime_s"] // 60)
        assert len(refused) <= PER_MIN * minutes
        assert len(refused) + summarized < counts["refused"] + counts["dropped"]
        assert "unexpected error judging a command" not in home.log.read_text()
        verify = trygg("audit", "verify", "--config", home.config, check=False)
        assert verify.returncode == 0 and verify.stdout.startswith("audit trail intact"), verify.stderr
    finally:
        raw.close()
