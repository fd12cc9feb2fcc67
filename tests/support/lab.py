"""A lab of real processes: homes running `trygg run`, a center running `trygg center watch --json`.

Everything goes through the real CLI, the real broker and real files, as an installer's
script would; tests and benchmarks only read what the CLI prints. Loopback only.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import paho.mqtt.client as mqtt

from base.keys import Identity, load_private
from base.labpki import LabPKI, add_client
from agent.provision import render_toml

# What labs and benches send when any event of a class will do: an everyday kind a driver sends.
# Not `test`: tests travel as their own class and are rate-limited (agent/control.py).
FILLER_KINDS = {"alarm": "help", "event": "door_closed", "telemetry": "device_health"}

TRYGG = [sys.executable, "-m", "agent"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def trygg(*args: str, check: bool = True, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([*TRYGG, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV,
                          input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"trygg {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def stop_process(proc: subprocess.Popen | None, timeout: float = 10) -> int | None:
    """SIGTERM, wait, then SIGKILL if it does not go: no test leaves a process behind."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def read_notify(sock, wanted: set[str], seen: list[str], timeout: float = 20) -> list[str]:
    """sd_notify lines from a bound datagram socket (0.5 s recv timeout) until all of wanted arrived."""
    import socket as _socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not wanted <= set(seen):
        try:
            seen += sock.recv(4096).decode().splitlines()
        except _socket.timeout:
            pass
    return seen


def edit_toml(path: Path, overrides: dict[str, dict]) -> None:
    """Merge overrides into a config file written by trygg init."""
    data = tomllib.loads(path.read_text())
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    path.write_text(render_toml(data))


class Watch:
    """The center: `trygg center run` (the receiving service; `proc`, what fault tests stop or
    kill) and `trygg center watch --json` (a view of what it records; `view`), in the background,
    the view's lines collected as they arrive: events and rounds alerts in `events`, case
    changes in `cases`, presence, receivers and the rest (stderr) in `other`."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.events: list[dict] = []
        self.cases: list[dict] = []
        self.other: list[dict] = []  # presence and rejected, from stderr
        self.arrived: dict[str, float] = {}  # event id -> wall time its line was read (benchmarks)
        self.log = log
        self._cond = threading.Condition()
        self.proc: subprocess.Popen | None = None
        self.view: subprocess.Popen | None = None

    def start(self) -> "Watch":
        # The view first, and attached (its first line read) before the service starts: what the
        # service records from a queue waiting at the broker is then a change the view shows.
        self.view = subprocess.Popen([*TRYGG, "center", "watch", "--json", "--config", str(self.config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        threading.Thread(target=self._read, args=(self.view.stdout, self.events), daemon=True).start()
        threading.Thread(target=self._read, args=(self.view.stderr, self.other), daemon=True).start()
        self.wait_other(lambda o: o.get("type") == "receiver", timeout=60)
        self.proc = subprocess.Popen([*TRYGG, "center", "run", "--config", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=open(self.log.with_suffix(".service.log"), "a"), stderr=subprocess.STDOUT,
                                     env=ENV)
        self.wait_other(lambda o: o.get("type") == "receiver" and o.get("state") == "connected", timeout=60)
        return self

    def _read(self, stream, into: list) -> None:
        with open(self.log, "a") as log:
            for line in stream:
                now = time.time()
                log.write(line)
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    item = {"type": "text", "line": line.rstrip()}
                with self._cond:
                    if into is self.events and item.get("type") == "case":
                        self.cases.append(item)
                    else:
                        if into is self.events and "id" in item:
                            self.arrived.setdefault(item["id"], now)
                        into.append(item)
                    self._cond.notify_all()

    def ids(self) -> list[str]:
        with self._cond:
            return [e["id"] for e in self.events]

    def wait_ids(self, ids, timeout: float = 30.0) -> None:
        wanted = set(ids)
        wait_for(lambda: wanted <= set(self.ids()), timeout, f"{len(wanted - set(self.ids()))} of {len(wanted)} ids at the center")

    def wait_other(self, match, timeout: float = 15.0) -> dict:
        return self._wait_in(self.other, match, timeout, "a presence/rejected line")

    def wait_event(self, match, timeout: float = 15.0) -> dict:
        return self._wait_in(self.events, match, timeout, "a matching event")

    def _wait_in(self, items: list, match, timeout: float, what: str) -> dict:
        def found():
            with self._cond:
                return next((o for o in items if match(o)), None)
        return wait_for(found, timeout, what)

    def wait_case(self, match, timeout: float = 15.0) -> dict:
        return self._wait_in(self.cases, match, timeout, "a matching case change")

    def stop(self) -> None:
        stop_process(self.view)
        stop_process(self.proc)


class Home:
    """One home: its config directory and its `trygg run` process."""

    def __init__(self, directory: Path, home_id: str) -> None:
        self.dir = directory
        self.id = home_id
        self.config = directory / "trygg.toml"
        self.proc: subprocess.Popen | None = None
        self.log = directory / "daemon.log"

    def start(self) -> "Home":
        self.proc = subprocess.Popen([*TRYGG, "run", "--config", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=open(self.log, "a"), stderr=subprocess.STDOUT, env=ENV)
        wait_for(self.responds, 20, f"home {self.id} to answer on its control socket")
        return self

    def responds(self) -> bool:
        if self.proc and self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        return trygg("status", "--json", "--config", self.config, check=False).returncode == 0

    def simulate(self, cls: str, kind: str | None = None, count: int = 1) -> list[str]:
        """`trygg simulate`: an everyday kind of this class (FILLER_KINDS) unless a kind is given."""
        args = ["simulate", cls, "--kind", kind or FILLER_KINDS[cls], "--count", count, "--config", self.config]
        return trygg(*args).stdout.split()

    def status(self) -> dict:
        return json.loads(trygg("status", "--json", "--config", self.config).stdout)

    def audit(self) -> list[dict]:
        """`trygg audit show --json`, one dict per entry."""
        return [json.loads(line) for line in trygg("audit", "show", "--json", "--config", self.config).stdout.splitlines()]

    def depth(self) -> int:
        return sum(c["depth"] for c in self.status()["outbox"]["classes"].values())

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int | None:
        """SIGTERM, as systemd would; the exit code tells whether it stopped cleanly."""
        return stop_process(self.proc, timeout=15)


class RawCenter:
    """A bare paho-mqtt 2.x client holding the center's TLS identity: it may publish on any
    home's command topic, which is exactly what someone with a stolen center certificate can do."""

    def __init__(self, lab) -> None:
        cert, key = lab.pki.client("center")
        host, port = lab.broker.rsplit(":", 1)
        assert host == "127.0.0.1"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"hostile-{os.urandom(4).hex()}",
                                  protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(lab.pki.ca), certfile=str(cert), keyfile=str(key))
        connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None
        self.client.connect(host, int(port))
        self.client.loop_start()
        assert connected.wait(10), "raw center client did not connect"

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Lab:
    """A center directory and any number of homes, provisioned through the CLI."""

    def __init__(self, root: Path, pki: LabPKI, broker_port: int, kem: str = "x25519") -> None:
        self.root = root
        self.pki = pki
        self.broker = f"127.0.0.1:{broker_port}"
        cert, key = pki.client("center")
        # each lab its own receiver name: the shared test broker keeps every receiver's session
        trygg("center", "init", "--dir", root / "center", "--broker", self.broker, "--ca", pki.ca,
              "--cert", cert, "--key", key, "--name", f"center-{os.urandom(4).hex()}", "--kem", kem)
        self.kem = kem
        self.center_config = root / "center" / "center.toml"
        self.homes: list[Home] = []
        self.watches: list[Watch] = []

    def home(self, home_id: str, port: int | None = None, **overrides: dict) -> Home:
        """Provision a home (optionally behind a proxy port) with config overrides per section."""
        if not (self.pki.directory / f"{home_id}.crt").exists():
            add_client(self.pki, home_id)
        cert, key = self.pki.client(home_id)
        broker = f"127.0.0.1:{port}" if port else self.broker
        directory = self.root / home_id
        trygg("init", "--home", home_id, "--broker", broker, "--ca", self.pki.ca, "--cert", cert, "--key", key,
              "--center-key", self.root / "center" / "center.pub", "--dir", directory, "--kem", self.kem)
        trygg("center", "add-home", directory / "device.pub", "--config", self.center_config)
        defaults = {"uplink": {"backoff_min_s": 0.2, "backoff_max_s": 1.0}, "gpio": {"pins": "mock"}}
        for section, values in overrides.items():
            defaults.setdefault(section, {}).update(values)
        edit_toml(directory / "trygg.toml", defaults)
        home = Home(directory, home_id)
        self.homes.append(home)
        return home

    def enroll(self, home: Home, name: str, role: str) -> Identity:
        """A staff key made at the center (`trygg center staff-key`), enrolled on the home
        (`trygg staff add`); returns the private key, as a test's own sender would hold it."""
        pub = trygg("center", "staff-key", name, "--config", self.center_config).stdout.strip()
        trygg("staff", "add", name, "--key", pub, "--role", role, "--config", home.config)
        return load_private(pub[: -len(".pub")] + ".key")

    def watch(self, config: Path | None = None) -> Watch:
        """A receiving service and a view on it; another receiver of the same center with config."""
        watch = Watch(config or self.center_config, self.root / f"watch-{len(self.watches)}.log")
        self.watches.append(watch)  # before it starts: a start that times out leaves nothing running
        return watch.start()

    def close(self) -> None:
        for home in self.homes:
            home.stop()
        for watch in self.watches:
            watch.stop()
