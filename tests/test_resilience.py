"""Failures around the edges must never silence an alarm: a dead console, a re-keyed home,
missing TLS files, a driver whose emit fails."""

import json
import subprocess
import time

from base.clock import SystemClock
from base.keys import Identity, write_public
from center.provision import add_home
from center.homes import HomeRegistry
from drivers.base import Driver
from tests.support.lab import ENV, TRYGG, edit_toml, wait_for


def test_a_view_whose_screen_is_gone_stops_and_receiving_goes_on(lab):
    """Watching is a view: a console that can no longer print stops with an error, and the
    service goes on recording and acknowledging; a new view shows the open case at once."""
    home = lab.home("hem-blind").start()
    lab.watch()  # the service (and a view of its own)
    blind = subprocess.Popen([*TRYGG, "center", "watch", "--json", "--config", str(lab.center_config)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    blind.stderr.readline()  # it has started (its first line: the receivers it sees)
    blind.stdout.close()  # nobody reads this screen any more (no reader thread holds the pipe)
    [alarm] = home.simulate("alarm", kind="fall")
    assert blind.wait(20) != 0, "a view that cannot print must stop and say so"
    wait_for(lambda: home.status()["unacked_alarms"]["depth"] == 0, 20, "the alarm acknowledged by the service")
    cases = json.loads(subprocess.run([*TRYGG, "center", "cases", "--open", "--json", "--config",
                                       str(lab.center_config)], capture_output=True, text=True, env=ENV).stdout)
    assert [c["alarms"] for c in cases] == [[alarm]]


def test_rekeyed_home_is_trusted_without_restarting_the_receiver(tmp_path):
    homes = tmp_path / "homes"
    old, new = Identity.generate("hem-rekey"), Identity.generate("hem-rekey")
    write_public(old.public(), tmp_path / "old.pub")
    write_public(new.public(), tmp_path / "new.pub")
    add_home(homes, tmp_path / "old.pub")
    registry = HomeRegistry(homes)
    from protocol.envelope import signer_kid

    assert registry.signer_for("hem-rekey")(signer_kid(old.sign.public_key())) is not None
    add_home(homes, tmp_path / "new.pub", force=True)
    registry.refresh()  # the receiver does this once per batch
    lookup = registry.signer_for("hem-rekey")
    assert lookup(signer_kid(new.sign.public_key())) is not None
    assert lookup(signer_kid(old.sign.public_key())) is None, "the replaced key must no longer be trusted"


def test_missing_tls_file_is_reported_and_retried_not_fatal(lab):
    home = lab.home("hem-noca")
    ca = home.dir / "ca-copy.crt"
    ca.write_bytes(lab.pki.ca.read_bytes())
    edit_toml(home.config, {"broker": {"ca": str(ca)}})
    ca.unlink()  # the technician has not copied it yet
    home.start()
    status = wait_for(lambda: (s := home.status())["last_error"] and s, 10, "the error in status")
    assert "FileNotFoundError" in status["last_error"] and status["link"] != "connected"
    ca.write_bytes(lab.pki.ca.read_bytes())  # fixed while the daemon runs
    wait_for(lambda: home.status()["link"] == "connected", 20, "the uplink to connect once the file is there")


def test_driver_keeps_running_when_an_emit_fails():
    calls = []

    def flaky_emit(event):
        calls.append(event)
        if len(calls) == 1:
            raise OSError("disk I/O error")
        return True

    class Ticker(Driver):
        kind = "ticker"

        def step(self, now):
            if len(calls) < 3:
                self.emit("telemetry", "tick")
            return now + 0.01

    driver = Ticker("t", flaky_emit, SystemClock())
    driver.start()
    wait_for(lambda: len(calls) >= 3, 5, "emits after the failed one")
    driver.stop()
    assert "disk I/O error" in driver.error and driver.crashes == 0


def test_crashing_driver_reports_a_fault_event():
    emitted = []

    class Broken(Driver):
        kind = "broken"

        def step(self, now):
            raise RuntimeError("pin 17 not found")

    driver = Broken("b", lambda e: emitted.append(e) or True, SystemClock(), restart=(0.05, 0.1))
    driver.start()
    wait_for(lambda: len(emitted) >= 2, 5, "a fault event per crash")
    driver.stop()
    assert driver.crashes >= 2 and not driver.alive()
    assert emitted[0].kind == "fault" and "pin 17" in emitted[0].body["detail"]
