"""The daemon speaks sd_notify (READY, WATCHDOG, STATUS, STOPPING) to a real notify socket."""

import os
import signal
import socket
import time

from tests.support.lab import ENV, TRYGG, read_notify


def test_daemon_notifies_ready_feeds_watchdog_and_says_stopping(lab, tmp_path):
    import subprocess

    home = lab.home("hem-notify")
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.5)
    env = {**ENV, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen([*TRYGG, "run", "--config", str(home.config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: list[str] = []
    try:
        read_notify(sock, {"READY=1", "WATCHDOG=1"}, seen)
        assert "READY=1" in seen and "WATCHDOG=1" in seen, seen
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "STOPPING=1" not in seen:
            try:
                seen += sock.recv(4096).decode().splitlines()
            except socket.timeout:
                pass
        assert "STOPPING=1" in seen
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
        os.unlink(path)
