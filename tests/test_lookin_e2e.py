"""Look-ins end to end: `trygg center lookin` through the lab's Mosquitto to a daemon and back.

Real parts on loopback: mutual TLS, staff keys made by `trygg center staff-key` and enrolled with
`trygg staff add`, the synthetic camera, the device's trust.db. The daemon runs in this process
(its clock says "synchronized", as NTP would on a Pi: this VM's kernel clock is not) so the
test can stop its link and look at its state directory while the CLI runs as its own process.
"""

import hashlib
import json
import os
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest

from agent import config as cfgmod
from base.clock import SystemClock
from agent.commands import ActionRefused
from agent.daemon import Daemon
from base.errors import EnvelopeError
from base.keys import load_private
from protocol import envelope, topics
from tests.support.lab import TRYGG, ENV, wait_for
from tests.test_at_rest import audit_at_center

ALL_DAY = [{"start": "00:00", "end": "00:00"}]
CAMERA = {"camera": "synthetic", "windows": ALL_DAY, "max_per_night": 2, "privacy": "blur",
          "roles": ["night-staff"], "indicator": {"pin": 9}, "shutter": {"pin": 10}, "shutter_open_s": 0.05}


class NtpClock(SystemClock):
    def synced(self) -> bool:
        return True


@pytest.fixture
def camera_home(lab):
    """A home with a synthetic camera, its daemon in this process, anna (night staff) and carl (nurse)."""
    home = lab.home("hem-cam", lookin=CAMERA)
    lab.enroll(home, "anna", "night-staff")
    lab.enroll(home, "carl", "nurse")
    daemon = Daemon(cfgmod.load(home.config), clock=NtpClock())
    daemon.start()
    wait_for(lambda: daemon.status()["link"] == "connected", 20, "the home to connect")
    yield lab, home, daemon
    daemon.stop()


def center(lab, *args) -> subprocess.CompletedProcess:
    return subprocess.run([*TRYGG, "center", *map(str, args), "--config", str(lab.center_config)],
                          capture_output=True, text=True, env=ENV, timeout=120)


def lookin(lab, staff: str, out: Path) -> subprocess.CompletedProcess:
    return center(lab, "lookin", "hem-cam", "--as", staff, "--out", out, "--timeout", 20)


def test_a_look_in_writes_a_filtered_picture_only_the_asker_can_open(camera_home, tmp_path):
    lab, home, daemon = camera_home
    out = tmp_path / "staff" / "look.jpg"
    out.parent.mkdir()
    result = lookin(lab, "anna", out)
    assert result.returncode == 0, result.stderr
    assert "1 look-in(s) left tonight" in result.stdout
    assert out.stat().st_mode & 0o777 == 0o600
    picture = cv2.imdecode(np.frombuffer(out.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (720, 1280, 3)
    # blurred: almost no fine detail left (the synthetic room's sensor noise alone is far above this)
    assert float(np.abs(cv2.Laplacian(cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY), cv2.CV_64F)).mean()) < 2.0
    assert daemon.lookin.indicator.value == 0 and daemon.lookin.shutter.value == 0  # off again after


def test_the_count_the_role_and_the_audit(camera_home, tmp_path):
    lab, home, daemon = camera_home
    assert lookin(lab, "anna", tmp_path / "1.jpg").returncode == 0
    assert lookin(lab, "anna", tmp_path / "2.jpg").returncode == 0
    third = lookin(lab, "anna", tmp_path / "3.jpg")
    assert third.returncode == 4
    assert "the 2 look-in(s) granted for tonight are used" in third.stderr
    assert not (tmp_path / "3.jpg").exists()
    nurse = lookin(lab, "carl", tmp_path / "4.jpg")
    assert nurse.returncode == 4 and "role nurse may not give the command 'lookin'" in nurse.stderr
    lookins = daemon.status()["lookin"]
    assert (lookins["used"], lookins["left"], lookins["refused"]) == (2, 0, 1)
    shown = subprocess.run([*TRYGG, "status", "--config", str(home.config)], capture_output=True, text=True, env=ENV)
    assert "look-ins tonight: 2 used, 0 left of 2, 1 refused" in shown.stdout
    audited = [e["detail"] for e in audit_at_center(lab, home)  # who is sealed to the center
               if e["kind"] == "command" and e["detail"]["action"] == "lookin"]
    assert [(a["staff"], a["outcome"]) for a in audited] == [
        ("anna", "done"), ("anna", "done"), ("anna", "refused"), ("carl", "refused")]


def test_the_count_survives_a_restart(camera_home, tmp_path):
    lab, home, daemon = camera_home
    assert lookin(lab, "anna", tmp_path / "1.jpg").returncode == 0
    daemon.stop()
    again = Daemon(cfgmod.load(home.config), clock=NtpClock())
    again.start()
    try:
        wait_for(lambda: again.status()["link"] == "connected", 20, "the home to reconnect")
        assert again.status()["lookin"]["left"] == 1
    finally:
        again.stop()


def _snapshot(*dirs: Path) -> dict[str, str]:
    """Every file under these directories with a hash of its content."""
    found = {}
    for directory in dirs:
        for root, _, files in os.walk(directory):
            for name in files:
                path = Path(root, name)
                try:
                    found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
                except OSError:
                    pass
    return found


def test_nothing_of_the_picture_is_written_on_the_device(camera_home, tmp_path):
    lab, home, daemon = camera_home
    temp_dirs = {Path(tempfile.gettempdir()), Path("/var/tmp"), Path("/dev/shm")}
    temp_before = {d: set(os.listdir(d)) for d in temp_dirs if d.exists()}
    state_before = _snapshot(home.dir)
    out = tmp_path / "look.jpg"
    assert lookin(lab, "anna", out).returncode == 0
    state_after = _snapshot(home.dir)
    # Only the databases change (the count, the audit entry, the sealed command result) ...
    changed = {Path(p).name for p in set(state_after) | set(state_before) if state_after.get(p) != state_before.get(p)}
    assert changed <= {"trust.db", "trust.db-wal", "trust.db-shm", "outbox.db", "outbox.db-wal", "outbox.db-shm"}, changed
    # ... and no piece of the picture is in any file of the home, not even inside a database page.
    jpeg = out.read_bytes()
    pieces = [jpeg[i : i + 48] for i in range(len(jpeg) // 4, len(jpeg) - 48, len(jpeg) // 5)]
    for path in state_after:
        data = Path(path).read_bytes()
        assert not any(piece in data for piece in pieces), f"a piece of the picture is in {path}"
    created = {d: set(os.listdir(d)) - before for d, before in temp_before.items()}
    assert not any(created.values()), f"files appeared in temp dirs during the look-in: {created}"


def test_the_picture_is_sealed_to_the_staff_member_not_to_the_center(camera_home, tmp_path):
    lab, home, daemon = camera_home
    anna = load_private(lab.root / "center" / "staff" / "anna.key")
    center_key = load_private(lab.root / "center" / "center.key")
    device = load_private(home.dir / "device.key")
    staff = daemon.commands.staff.get("anna")
    from protocol.ids import new_id
    from protocol.messages import CommandMessage
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    cmd = CommandMessage(id=new_id(), home="hem-cam", action="lookin", issued=now, expires=now + timedelta(minutes=1))
    sealed = daemon.lookin._seal(cmd, staff, daemon.grant.cfg, daemon.lookin._capture(daemon.grant.cfg))
    topic = topics.lookin("hem-cam")
    signer = lambda kid: device.sign.public_key() if kid == envelope.signer_kid(device.sign.public_key()) else None
    assert envelope.open_sealed(sealed, topic, [anna.kem], signer).body.startswith(b"{")
    with pytest.raises(EnvelopeError):
        envelope.open_sealed(sealed, topic, [center_key.kem], signer)


def test_with_the_link_down_a_look_in_is_refused_not_queued(camera_home, tmp_path, broker):
    lab, home, daemon = camera_home
    staff = daemon.commands.staff.get("anna")
    used = daemon.status()["lookin"]["used"]
    daemon.uplink.link = "disconnected"  # what the uplink thread sets when the broker goes away
    try:
        with pytest.raises(ActionRefused, match="link is down: a look-in is not queued"):
            daemon.lookin(None, staff)
    finally:
        daemon.uplink.link = "connected"
    assert daemon.status()["lookin"]["used"] == used and daemon.status()["lookin"]["refused"] == 1
    assert daemon.lookin.indicator.value == 0  # the camera was never switched on


def test_a_nurse_changes_the_grant_with_a_signed_command_and_the_center_learns_the_plan(camera_home, tmp_path):
    lab, home, daemon = camera_home
    watch = lab.watch()
    refused = center(lab, "grant", "hem-cam", "--as", "anna", "--max-per-night", 5)
    assert refused.returncode == 4 and "role night-staff may not give the command 'lookin_grant'" in refused.stdout
    changed = center(lab, "grant", "hem-cam", "--as", "carl", "--times", "23:00,03:00", "--max-per-night", 1)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    plan = watch.wait_event(lambda e: e.get("kind") == "lookin_plan" and e["body"]["times"] == ["23:00", "03:00"])
    assert plan["body"]["max_per_night"] == 1 and plan["body"]["timezone"] == "Europe/Stockholm"
    bad = center(lab, "grant", "hem-cam", "--as", "carl", "--roles", "janitor")
    assert bad.returncode == 4 and "janitor" in bad.stdout
    assert daemon.grant.cfg.roles == ["night-staff"]  # the bad change changed nothing
    kinds = [e["kind"] for e in home.audit()]
    assert kinds.count("lookin_grant_changed") == 1


def test_a_technician_changes_the_grant_on_the_device_and_the_running_daemon_tells_the_center(camera_home):
    lab, home, daemon = camera_home
    watch = lab.watch()
    device = ["--config", str(home.config)]
    bad = subprocess.run([*TRYGG, "grant", "set", "--times", "25:00", "--by", "tom", *device],
                         capture_output=True, text=True, env=ENV)
    assert bad.returncode == 1 and "times.0: expected a time as HH:MM" in bad.stderr
    good = subprocess.run([*TRYGG, "grant", "set", "--times", "23:30", "--tolerance", "600", "--by", "tom", *device],
                          capture_output=True, text=True, env=ENV)
    assert good.returncode == 0, good.stderr
    shown = subprocess.run([*TRYGG, "grant", "show", "--json", *device], capture_output=True, text=True, env=ENV)
    grant = json.loads(shown.stdout)
    assert (grant["times"], grant["tolerance_s"], grant["max_per_night"]) == (["23:30"], 600.0, 2)
    plan = watch.wait_event(lambda e: e.get("kind") == "lookin_plan" and e["body"]["times"] == ["23:30"])
    assert plan["body"]["tolerance_s"] == 600.0
    changes = [e["detail"] for e in audit_at_center(lab, home) if e["kind"] == "lookin_grant_changed"]
    assert [(c["by"], c["changed"]) for c in changes] == [("technician tom", ["times", "tolerance_s"])]


def test_the_receiver_shows_a_due_look_in_and_calls_a_visit_when_the_home_goes_offline(camera_home):
    """The rounds through the real receiver: the nurse agrees a look-in time of now; `trygg center
    watch` shows it due; the home's daemon stops (its link is gone) while it is due: a visit."""
    lab, home, daemon = camera_home
    with open(lab.center_config, "a") as f:
        f.write("\n[rounds]\nevaluate_every_s = 0.2\n")
    watch = lab.watch()
    while "11:58" <= datetime.now(ZoneInfo("Europe/Stockholm")).strftime("%H:%M") <= "12:02":
        time.sleep(10)  # a night turns at noon: an agreed time of "now" must not straddle it
    now = datetime.now(ZoneInfo("Europe/Stockholm")).strftime("%H:%M")
    assert center(lab, "grant", "hem-cam", "--as", "carl", "--times", now).returncode == 0
    due = watch.wait_event(lambda e: e.get("type") == "lookin" and e["kind"] == "lookin_due")
    assert (due["home"], due["body"]["slot"]) == ("hem-cam", now)
    daemon.stop()  # a clean stop publishes "offline": the home is unreachable while a look-in is due
    visit = watch.wait_event(lambda e: e.get("type") == "lookin" and e["kind"] == "visit_needed", timeout=20)
    assert visit["class"] == "alarm" and "home unreachable" in visit["body"]["reason"]
    rounds = center(lab, "rounds", "--json")
    assert rounds.returncode == 0 and "visit_needed" in rounds.stdout
