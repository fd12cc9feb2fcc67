"""A real Mosquitto broker process for tests and benchmarks, mutual TLS on loopback only.

It owns one work directory: the generated `mosquitto.conf` and `acl`, the persistence
directory `data/`, the broker's `mosquitto.log` and `mosquitto.stderr`, and the one process
it started. It must never listen on anything but 127.0.0.1, never touch a system-wide
Mosquitto (config, service or port), and never leave its process running after close().

Surprises in Mosquitto 2.0 this module deals with:

* Started as root, Mosquitto drops privileges to the `mosquitto` user *before* it reads the
  certificates, the log file and the persistence directory, so it cannot read the lab PKI's
  0600 keys in a 0700 directory and exits. Running as root (CI), the config therefore says
  `user root`, which Mosquitto 2.0 accepts (it only prints a warning to stderr). As a normal
  user the `user` option is ignored and everything is simply owned by that user.
* `log_type` takes one type per line; `log_type error warning` silently logs errors only.
* `acl_file` is enforced when messages are published and delivered, not at SUBSCRIBE: a
  home subscribing to another home's topics gets a successful SUBACK and then nothing.
* Persistence is written on clean shutdown (SIGTERM) and every `autosave_interval` (default
  1800 s), so after `kill()` the broker restarts with the state of its last save.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import weakref
from pathlib import Path
from types import TracebackType

from base.labpki import LabPKI

HOST = "127.0.0.1"
LOG_NAME = "mosquitto.log"
STDERR_NAME = "mosquitto.stderr"
LOG_TYPES = ("error", "warning", "notice", "information")

SHIPPED_ACL = Path(__file__).resolve().parents[2] / "config" / "mosquitto-trygg.acl.example"
ACL_TEXT = SHIPPED_ACL.read_text()  # the lab broker runs the ACL Trygg ships


SHIPPED_CONF = Path(__file__).resolve().parents[2] / "config" / "mosquitto-trygg.conf.example"
LIMIT_SETTINGS = ("max_queued_messages", "max_inflight_messages", "max_queued_bytes", "max_packet_size")


def broker_limits_shipped() -> tuple[str, ...]:
    """The limits lines of the broker config Trygg ships, read from it: what labs and benches
    run when they say they run "Trygg's broker config"."""
    lines = []
    for line in SHIPPED_CONF.read_text().splitlines():
        setting = line.split("#", 1)[0].strip()
        if setting.split(" ", 1)[0] in LIMIT_SETTINGS:
            lines.append(setting)
    return tuple(lines)


def free_port() -> int:
    """A loopback port that was free a moment ago (the kernel picks it; small race accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def find_mosquitto() -> str:
    """Path of the mosquitto binary; Debian puts it in /usr/sbin, often not on a user's PATH."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise RuntimeError("mosquitto not installed: apt-get install mosquitto")
    return found


def write_config(workdir: Path, pki: LabPKI, port: int, acl: bool = True, persistence: bool = True,
                 max_queued: int | None = None, extra: tuple[str, ...] = ()) -> Path:
    """Write `mosquitto.conf` (and `acl`) into workdir for an mTLS listener on 127.0.0.1:port.

    max_queued: Mosquitto's per-subscriber queue (default 1000, beyond which it drops QoS 1
    silently); a load generator that does not re-send as homes do needs it larger.
    extra: more lines, e.g. Trygg's shipped limits (broker_limits_shipped()) or "sys_interval 1".
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = [workdir, pki.ca.resolve(), pki.broker_cert.resolve(), pki.broker_key.resolve()]
    if any("\n" in str(p) for p in paths):
        raise ValueError("paths with newlines cannot be written into mosquitto.conf")
    lines = []
    if os.geteuid() == 0:
        # Else mosquitto drops to user 'mosquitto' before it reads the 0600 keys (see above).
        lines += ["# running as root: keep root, the lab PKI keys are 0600 root-owned", "user root"]
    lines += [
        "per_listener_settings false",
        "allow_anonymous false",
        f"listener {int(port)} {HOST}",
        f"cafile {pki.ca.resolve()}",
        f"certfile {pki.broker_cert.resolve()}",
        f"keyfile {pki.broker_key.resolve()}",
        "require_certificate true",
        "use_identity_as_username true",
        "set_tcp_nodelay true",
        f"log_dest file {workdir / LOG_NAME}",
        *(f"log_type {t}" for t in LOG_TYPES),
    ]
    if max_queued is not None:
        lines.append(f"max_queued_messages {int(max_queued)}")
    if any("\n" in line for line in extra):
        raise ValueError("one setting per line")
    lines += list(extra)
    if persistence:
        data = workdir / "data"
        data.mkdir(mode=0o700, exist_ok=True)
        lines += ["persistence true", f"persistence_location {data}/"]
    else:
        lines.append("persistence false")
    if acl:
        acl_path = workdir / "acl"
        acl_path.write_text(ACL_TEXT)
        lines.append(f"acl_file {acl_path}")
    conf = workdir / "mosquitto.conf"
    conf.write_text("".join(line + "\n" for line in lines))
    return conf


class Broker:
    """One Mosquitto process on a fixed loopback port that survives stop/kill/restart."""

    host = HOST

    def __init__(
        self, workdir: Path, pki: LabPKI, port: int | None = None, acl: bool = True, persistence: bool = True,
        max_queued: int | None = None, extra: tuple[str, ...] = (),
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.pki = pki
        self.port = free_port() if port is None else port
        self.conf = write_config(self.workdir, pki, self.port, acl, persistence, max_queued, extra)
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc else None

    def start(self, timeout: float = 10.0) -> None:
        """Spawn mosquitto; return once it logged "running" and its port accepts TCP connections.

        Already running: nothing to do (so `with Broker(...) as b: b.start()` is fine).
        """
        if self.running:
            return
        binary = find_mosquitto()
        log_start = self._log_size()
        with open(self.workdir / STDERR_NAME, "ab") as err:
            self._proc = subprocess.Popen(
                [binary, "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                cwd=self.workdir,
                start_new_session=True,  # Ctrl-C hits the test run only; its cleanup stops us
            )
        # Why: a test that dies without close() must not leave a broker holding its port.
        self._finalizer = weakref.finalize(self, _reap, self._proc)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._reaped()
                raise RuntimeError(f"mosquitto exited with {code}:\n{self._tail()}")
            # Why the log too: if another process holds the port, connect() succeeds while
            # our mosquitto is still on its way to "Address already in use".
            if self._says_running(log_start) and _accepts(self.port) and self._proc.poll() is None:
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mosquitto did not listen on {HOST}:{self.port} in {timeout}s:\n{self._tail()}")
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait: a clean shutdown that saves the persistence database."""
        if self.running and self._proc:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reaped()

    def kill(self) -> None:
        """SIGKILL and wait: a crash, unsaved in-memory state is lost."""
        if self.running and self._proc:
            self._proc.kill()
            self._proc.wait()
        self._reaped()

    def restart(self, hard: bool = False, timeout: float = 10.0) -> None:
        """Stop (or with hard=True kill) and start again on the same port and data directory."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start(timeout)

    def log_text(self) -> str:
        """The broker's log so far, across restarts (Mosquitto 2.0 flushes every line)."""
        try:
            return (self.workdir / LOG_NAME).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        """Stop the process if it runs; safe to call twice."""
        self.stop(timeout=5.0)

    def __enter__(self) -> "Broker":
        if not self.running:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self._proc.pid}" if self.running and self._proc else "stopped"
        return f"Broker({HOST}:{self.port}, {state}, {self.workdir})"

    def _reaped(self) -> None:
        self._proc = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None

    def _log_size(self) -> int:
        try:
            return (self.workdir / LOG_NAME).stat().st_size
        except FileNotFoundError:
            return 0

    def _says_running(self, offset: int) -> bool:
        """Mosquitto logs "mosquitto version X running" once all its listeners are open."""
        try:
            with open(self.workdir / LOG_NAME, "rb") as f:
                f.seek(offset)
                return re.search(rb"mosquitto version \S+ running", f.read()) is not None
        except FileNotFoundError:
            return False

    def _tail(self, lines: int = 30) -> str:
        try:
            err = (self.workdir / STDERR_NAME).read_text(errors="replace")
        except FileNotFoundError:
            err = ""
        log = self.log_text().splitlines()[-lines:]
        return "\n".join(["--- mosquitto.log (tail) ---", *log, "--- stderr ---", *err.splitlines()[-lines:]])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Finalizer: kill a broker whose owner forgot to close it (also at interpreter exit)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
