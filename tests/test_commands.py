"""Signed commands end to end: staff keys, enrollment, unlock through the real broker, audit.

Everything goes through the CLI as installers and night staff use it: `trygg center
staff-key`, `trygg staff add`, `trygg center unlock|lock|ping|status`, `trygg audit`.
"""

import json
import sqlite3

import pytest

from tests.support.lab import Lab, trygg, wait_for

EXIT_REFUSED, EXIT_NO_ANSWER = 4, 6


def enroll(lab: Lab, home, name: str, role: str) -> None:
    pub = trygg("center", "staff-key", name, "--config", lab.center_config).stdout.strip()
    trygg("staff", "add", name, "--key", pub, "--role", role, "--config", home.config)


def command(lab: Lab, action: str, home, staff: str, *extra, timeout: float = 10) -> tuple[int, dict | None, str]:
    proc = trygg("center", action, home.id, "--as", staff, "--json", "--timeout", timeout, *extra,
                 "--config", lab.center_config, check=False)
    result = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, result, proc.stderr


def audit(home) -> list[dict]:
    return [json.loads(line) for line in trygg("audit", "show", "--json", "--config", home.config).stdout.splitlines()]


@pytest.fixture
def staffed(lab):
    home = lab.home("hem-cmd").start()
    enroll(lab, home, "berit", "nurse")
    enroll(lab, home, "anna", "night-staff")
    enroll(lab, home, "tove", "technician")
    return lab, home


def test_nurse_unlock_is_confirmed_by_the_device_and_audited(staffed):
    lab, home = staffed
    watch = lab.watch()
    code, result, err = command(lab, "unlock", home, "berit")
    assert code == 0, err
    assert result["outcome"] == "done" and result["lock"] == "front-door" and result["state"] == "unlocked"
    assert result["staff"] == "berit" and result["role"] == "nurse"
    assert home.status()["locks"]["front-door"] == "unlocked"
    entry = [e for e in audit(home) if e["kind"] == "command"][-1]
    assert entry["detail"]["outcome"] == "done" and entry["detail"]["command"] == result["command"]
    # the signed result is an ordinary event too: the night-staff console shows it
    watch.wait_event(lambda o: o.get("kind") == "command_result" and o["body"]["command"] == result["command"])
    code, result, err = command(lab, "lock", home, "berit")
    assert code == 0 and result["state"] == "locked", err
