"""The local control socket: a Unix socket (0660) the CLI uses to ask the daemon things.

Protocol: the client sends one JSON object on a line; the daemon answers with one or more
JSON lines, the last carrying "done": true (or "error"). Requests are validated here; the
daemon's handlers never see malformed input. Only local users in the socket's group reach it.
"""

import json
import logging
import os
import socket
import socketserver
import stat
import threading
import time
from pathlib import Path
from typing import Iterator, NamedTuple

from base.errors import DaemonNotRunning, TryggError
from base.ratelimit import TokenBucket
from protocol.events import DRIVER_KINDS, TEST_KIND, Event, simulate_kinds, test_event

log = logging.getLogger(__name__)
MAX_REQUEST = 4096
MAX_SIMULATE = 100_000
# Test events a device sends: 10 at once, then one every 6 s. The receiving side limits each home
# too (center/testlimit.py); this keeps an installer's script from flooding the region's broker.
TESTS_BURST, TESTS_PER_S = 10, 1 / 6


class Injected(NamedTuple):
    """What became of an event: accepted (it will reach the center) and stored (on disk, so it
    also survives a crash) - accepted but not stored when a full card left only memory."""

    id: str
    accepted: bool
    stored: bool


class Handlers:
    """What the daemon offers over the socket; the daemon implements these."""

    def status(self) -> dict:
        raise NotImplementedError

    def inject(self, event: Event) -> Injected:
        """Commit one simulated event; return once committed, or accepted but not stored when a
        full card left only memory. It is sent like a driver's, but authorizes
        nothing (a simulated alarm opens no door)."""
        raise NotImplementedError

    def refill(self, dispenser: str, count: int | None) -> dict:
        """A dispenser was refilled; its dose count starts again."""
        raise NotImplementedError


def _parse_refill(req: dict) -> tuple[str, int | None]:
    unknown = set(req) - {"op", "dispenser", "count"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    name, count = req.get("dispenser"), req.get("count")
    if not isinstance(name, str) or not 1 <= len(name) <= 32:
        raise ValueError("dispenser must be a device name")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000):
        raise ValueError("count must be 1-1000")
    return name, count


def _parse_simulate(req: dict) -> tuple[Event, int]:
    unknown = set(req) - {"op", "class", "kind", "count"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    cls = req.get("class")
    if cls not in DRIVER_KINDS:
        raise ValueError(f"class must be one of {', '.join(DRIVER_KINDS)}")
    count = req.get("count", 1)
    if not isinstance(count, int) or not 1 <= count <= MAX_SIMULATE:
        raise ValueError(f"count must be 1-{MAX_SIMULATE}")
    kind, allowed = req.get("kind"), simulate_kinds(cls)
    if kind is None:  # no default: a test alarm must say what it pretends to be
        raise ValueError(f"no kind given: simulate {cls} needs --kind, one of {', '.join(allowed)}")
    if kind not in allowed:
        raise ValueError(f"no driver sends {kind!r} as {cls}: --kind must be one of {', '.join(allowed)}")
    if kind == TEST_KIND:  # travels as class test, last, never in the alarm lane
        return test_event(cls), count
    # Always marked: a simulated alarm must never be mistaken for a real one at the center. The
    # daemon commits it through inject(), which never opens the night staff's unlock window.
    return Event(cls, kind, {"simulated": True}), count


def _check_test_budget(budget: TokenBucket, count: int) -> None:
    now = time.monotonic()
    if not budget.take(count, now):
        wait = budget.wait_s(count, now)
        when = f"try again in {wait:.0f} s" if wait != float("inf") else f"send at most {budget.burst} at a time"
        raise ValueError(f"test events are limited to {budget.burst} at once and one every "
                         f"{1 / budget.per_s:g} s on a device, so that tests never crowd the network "
                         f"real alarms use: {when}")


class _Handler(socketserver.StreamRequestHandler):
    timeout = 30  # an idle or stalled client must not hold a thread forever

    def handle(self) -> None:
        handlers: Handlers = self.server.handlers  # type: ignore[attr-defined]
        try:
            line = self.rfile.readline(MAX_REQUEST + 1)
            if len(line) > MAX_REQUEST:
                raise ValueError("request too long")
            req = json.loads(line or b"null")
            if not isinstance(req, dict):
                raise ValueError("request must be a JSON object")
            op = req.get("op")
            if op == "status":
                self._send({**handlers.status(), "done": True})
            elif op == "simulate":
                event, count = _parse_simulate(req)
                if event.cls == "test":
                    _check_test_budget(self.server.test_budget, count)  # type: ignore[attr-defined]
                for _ in range(count):
                    result = handlers.inject(event)
                    self._send({"id": result.id, "accepted": result.accepted, "stored": result.stored})
                self._send({"done": True})
            elif op == "refill":
                self._send({**handlers.refill(*_parse_refill(req)), "done": True})
            else:
                raise ValueError(f"unknown op {op!r}")
        except (ValueError, TryggError) as exc:
            self._send({"error": str(exc)})
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the CLI went away (Ctrl-C); committed events stay committed
        except Exception as exc:  # noqa: BLE001 - any request gets an answer, the server keeps serving
            log.exception("control request failed")
            self._send({"error": f"internal error: {type(exc).__name__}"})

    def _send(self, obj: dict) -> None:
        self.wfile.write(json.dumps(obj).encode() + b"\n")
        self.wfile.flush()


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 64  # the default 5 refuses a burst of CLI calls as "not running"

    def handle_error(self, request, client_address) -> None:
        log.warning("control: a client connection failed", exc_info=True)


class ControlServer:
    def __init__(self, path: Path, handlers: Handlers) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise TryggError(f"control.socket {self.path} exists and is not a socket; refusing to replace it")
            if _alive(self.path):
                raise TryggError(f"another daemon is already listening on {self.path}")
            self.path.unlink()  # a stale socket from a crashed daemon
        old = os.umask(0o117)  # socket created 0660, never wider
        try:
            self._server = _Server(str(self.path), _Handler)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o660)
        self._server.handlers = handlers  # type: ignore[attr-defined]
        self._server.test_budget = TokenBucket(TESTS_BURST, TESTS_PER_S, time.monotonic())  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)


def _alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def request(path: Path, req: dict, timeout: float = 60.0) -> Iterator[dict]:
    """Send one request to the daemon and yield its answers; raise DaemonNotRunning if absent."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise DaemonNotRunning(f"the Trygg daemon is not running (no answer on {path}: {exc.strerror or exc})") from None
    with sock, sock.makefile("rwb") as f:
        f.write(json.dumps(req).encode() + b"\n")
        f.flush()
        for line in f:
            answer = json.loads(line)
            if "error" in answer:
                raise TryggError(f"daemon refused the request: {answer['error']}")
            yield answer
            if answer.get("done"):
                return
    raise DaemonNotRunning("the daemon closed the connection before answering")
