"""A userspace TCP proxy on loopback that plays a bad rural mobile link between client and broker.

It owns its listening socket on 127.0.0.1, the connections it accepted, their upstream
connections to the target, and one I/O thread. It must never listen on or connect to anything
but loopback, never leave a thread or socket behind after close(), and never print: an
unexpected error in the I/O thread is logged and aborts all connections.

Faults it can inject, all switchable while connections are open:

* `cut()`: every open connection is reset (RST) at once, new connections are accepted and
  reset immediately, until `restore()`.
* `set_delay(s)`: one-way latency per direction. Data read at t is written at t + s, in
  order and pipelined, so the delay does not limit throughput. A new delay applies to data
  read after the call.
* `set_rate(bps)`: pace each direction to at most bps bytes per second (None = unlimited).
* `blackhole()`: connections stay open but nothing is forwarded, like a dead mobile link that
  TCP has not noticed. Data arriving meanwhile, and data still queued, is DROPPED, not held;
  after `restore()` old connections carry on with a gap in their byte stream (an MQTT peer
  sees garbage and disconnects, as after a link that came back too late), new ones are clean.
  A FIN that arrives during a blackhole is held and forwarded on restore.

Design: one thread runs a selectors loop over non-blocking sockets; each direction has a
FIFO of (due time, bytes) and an output buffer. Control methods hand a function to that
thread and wait for it, so sockets are only ever touched by one thread.
"""

import ipaddress
import logging
import selectors
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Callable

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
RECV_SIZE = 65536
OUT_MAX = 256 * 1024  # bytes handed to a socket's send buffer per direction at a time
QUEUE_MAX = 16 * 1024 * 1024  # stop reading a source while this much is in flight (backpressure)
PUMP_ROUNDS = 8  # fill/send rounds per direction per loop iteration
PACE_QUANTUM = 0.01  # with a rate limit, send this many seconds' worth of bytes at a time
CONNECT_TIMEOUT = 2.0
CONTROL_TIMEOUT = 5.0


@dataclass(eq=False)
class _Flow:
    """One direction of one connection: bytes read from src, delayed, written to dst."""

    src: socket.socket
    dst: socket.socket
    up: bool
    queue: deque[tuple[float, bytes | None]] = field(default_factory=deque)  # None = FIN
    queued: int = 0
    out: bytearray = field(default_factory=bytearray)
    last_due: float = 0.0
    pace: float = 0.0
    eof_in: bool = False
    eof_out: bool = False


@dataclass(eq=False)
class _Link:
    client: socket.socket
    upstream: socket.socket
    up: _Flow
    down: _Flow


class TcpProxy:
    """Forward 127.0.0.1:port to target_host:target_port with injectable link faults."""

    host = HOST

    def __init__(self, target_host: str, target_port: int, listen_port: int | None = None) -> None:
        if not _is_loopback(target_host):
            raise ValueError(f"TcpProxy only forwards to loopback, not {target_host!r}")
        self.target = (target_host, target_port)
        self.bytes_up = 0  # client -> target, counted when written to the target
        self.bytes_down = 0  # target -> client, counted when written to the client
        self.connections_accepted = 0
        self._delay = 0.0
        self._rate: float | None = None
        self._cut = False
        self._blackholed = False
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._commands: deque[tuple[Callable[[], None], threading.Event]] = deque()
        self._running = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._closed = False
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((HOST, listen_port or 0))
            self._listener.listen(128)
            self._listener.setblocking(False)
        except OSError:
            self._listener.close()
            raise
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._masks: dict[socket.socket, int] = {}

    # ---- control, from any thread -------------------------------------------------------

    def start(self) -> "TcpProxy":
        """Start forwarding; returns self so `TcpProxy(...).start()` reads naturally."""
        if self._closed:
            raise RuntimeError("TcpProxy is closed")
        if self._thread is None:
            self._sel.register(self._listener, selectors.EVENT_READ)
            self._sel.register(self._wake_r, selectors.EVENT_READ)
            self._running = True
            self._thread = threading.Thread(target=self._run, name=f"TcpProxy:{self.port}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Reset all connections, stop the thread, close every socket; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._stopping = True
            self._wake()
            self._thread.join(CONTROL_TIMEOUT)
            if self._thread.is_alive():
                log.error("TcpProxy thread on port %d did not stop", self.port)
        else:
            self._teardown()

    def cut(self) -> None:
        """Reset every open connection now, and reset new ones until restore()."""

        def do() -> None:
            self._cut = True
            for link in list(self._links):
                self._abort(link)

        self._call(do)

    def restore(self) -> None:
        """Undo cut() and blackhole(); delay and rate stay as set."""

        def do() -> None:
            self._cut = False
            self._blackholed = False

        self._call(do)

    def blackhole(self) -> None:
        """Keep connections open but forward nothing, dropping data, until restore()."""

        def do() -> None:
            self._blackholed = True
            for link in self._links:
                for flow in (link.up, link.down):
                    _drop_data(flow)

        self._call(do)

    def set_delay(self, seconds_each_way: float) -> None:
        """One-way latency for data read from now on, in both directions."""
        if seconds_each_way < 0:
            raise ValueError("delay must be >= 0")
        self._call(lambda: setattr(self, "_delay", float(seconds_each_way)))

    def set_rate(self, bytes_per_second: float | None) -> None:
        """Throttle each direction to bytes_per_second; None removes the limit."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError("rate must be > 0 or None")
        self._call(lambda: setattr(self, "_rate", bytes_per_second))

    @property
    def open_connections(self) -> int:
        return len(self._links)

    def __enter__(self) -> "TcpProxy":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TcpProxy({HOST}:{self.port} -> {self.target[0]}:{self.target[1]})"

    def _call(self, fn: Callable[[], None]) -> None:
        """Why: sockets belong to the I/O thread; run fn there and wait until it has."""
        done = threading.Event()
        with self._lock:
            if not self._running:
                fn()
                return
            self._commands.append((fn, done))
        self._wake()
        if not done.wait(CONTROL_TIMEOUT):
            raise RuntimeError(f"{self!r}: I/O thread did not answer")

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # buffer full (a wake-up is pending anyway) or already closed
            pass

    # ---- the I/O thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                timeout = self._step()
                for key, events in self._sel.select(timeout):
                    sock = key.fileobj
                    if sock is self._wake_r:
                        self._drain_wake()
                    elif sock is self._listener:
                        self._accept()
                    elif events & selectors.EVENT_READ and key.data in self._links:
                        self._read(key.data, sock)  # type: ignore[arg-type]
                    # EVENT_WRITE needs nothing here: the next _step() writes.
        except Exception:
            log.exception("TcpProxy on port %d failed; dropping all connections", self.port)
        finally:
            self._teardown()

    def _step(self) -> float | None:
        """Run commands, move due data, update interest; returns the select timeout."""
        while self._commands:
            fn, done = self._commands.popleft()
            try:
                fn()
            finally:
                done.set()
        now = time.monotonic()
        wake: float | None = None
        for link in list(self._links):
            try:
                for flow in (link.up, link.down):
                    due = self._pump(flow, now)
                    if due is not None:
                        wake = due if wake is None else min(wake, due)
            except OSError:
                self._abort(link)
                continue
            if link.up.eof_out and link.down.eof_out:
                self._finish(link)
            else:
                self._interest(link)
        return None if wake is None else max(0.0, wake - now)

    def _pump(self, flow: _Flow, now: float) -> float | None:
        """Write due bytes to dst until it blocks or nothing is due; returns when to look again."""
        if self._blackholed:
            _drop_data(flow)
        for _ in range(PUMP_ROUNDS):  # bounded, so one fast link cannot starve the others
            wake = self._fill(flow, now)
            if not flow.out:
                return wake
            try:
                sent = flow.dst.send(flow.out)
            except BlockingIOError:
                sent = 0
            del flow.out[:sent]
            if flow.up:
                self.bytes_up += sent
            else:
                self.bytes_down += sent
            if flow.out:  # dst is full: EVENT_WRITE brings us back
                return wake
        return now

    def _fill(self, flow: _Flow, now: float) -> float | None:
        """Move due bytes (paced if rate-limited) from the queue to the output buffer."""
        rate = self._rate
        while flow.queue and len(flow.out) < OUT_MAX:
            due, data = flow.queue[0]
            if due > now:
                return due
            if data is None:  # FIN: forward once everything before it is written
                if not flow.out and not self._blackholed:
                    flow.queue.popleft()
                    flow.dst.shutdown(socket.SHUT_WR)
                    flow.eof_out = True
                return None
            if rate is not None:
                if flow.pace > now:
                    return flow.pace
                size = max(1, int(rate * PACE_QUANTUM))
                piece, rest = data[:size], data[size:]
                flow.pace = max(flow.pace, now) + len(piece) / rate
            else:
                piece, rest = data, b""
            if rest:
                flow.queue[0] = (due, rest)
            else:
                flow.queue.popleft()
            flow.queued -= len(piece)
            flow.out += piece
        return None

    def _read(self, link: _Link, sock: socket.socket) -> None:
        flow = link.up if sock is link.client else link.down
        try:
            data = sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:  # reset by the peer: pass the reset on
            self._abort(link)
            return
        now = time.monotonic()
        flow.last_due = due = max(now + self._delay, flow.last_due)
        if not data:
            flow.eof_in = True
            flow.queue.append((due, None))
        elif not (self._blackholed or self._cut):
            flow.queue.append((due, data))
            flow.queued += len(data)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. EMFILE, ECONNABORTED: drop this one, keep serving
                log.warning("TcpProxy on port %d: accept failed", self.port, exc_info=True)
                return
            self.connections_accepted += 1
            if self._cut:
                _reset(conn)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT)
            except OSError:  # target down: the client sees a reset, as with a dead broker
                _reset(conn)
                continue
            for s in (conn, upstream):
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(conn, upstream, _Flow(conn, upstream, up=True), _Flow(upstream, conn, up=False))
            self._links.append(link)
            self._interest(link)

    def _interest(self, link: _Link) -> None:
        """Read a source while its queue has room; watch for writability while output waits."""
        for sock in (link.client, link.upstream):
            src_flow = link.up if sock is link.client else link.down
            dst_flow = link.down if sock is link.client else link.up
            mask = 0
            if not src_flow.eof_in and src_flow.queued < QUEUE_MAX:
                mask |= selectors.EVENT_READ
            if dst_flow.out:
                mask |= selectors.EVENT_WRITE
            old = self._masks.get(sock, 0)
            if mask == old:
                continue
            if not old:
                self._sel.register(sock, mask, link)
            elif not mask:
                self._sel.unregister(sock)
            else:
                self._sel.modify(sock, mask, link)
            self._masks[sock] = mask

    def _forget(self, link: _Link) -> None:
        if link in self._links:
            self._links.remove(link)
        for sock in (link.client, link.upstream):
            if self._masks.pop(sock, 0):
                self._sel.unregister(sock)

    def _abort(self, link: _Link) -> None:
        """Reset both legs (RST), as a broken link or a crashed peer would."""
        self._forget(link)
        _reset(link.client)
        _reset(link.upstream)

    def _finish(self, link: _Link) -> None:
        """Both sides sent FIN and everything was delivered: an orderly close."""
        self._forget(link)
        link.client.close()
        link.upstream.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _teardown(self) -> None:
        """Last act of the I/O thread (or of close() if never started): release everything."""
        with self._lock:
            self._running = False
            commands, self._commands = self._commands, deque()
        for fn, done in commands:  # callers racing with close(): run them here so nobody waits
            try:
                fn()
            finally:
                done.set()
        for link in list(self._links):
            self._abort(link)
        self._sel.close()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()


def _drop_data(flow: _Flow) -> None:
    """Blackhole: discard queued and unsent bytes, keep a pending FIN."""
    fin = any(data is None for _, data in flow.queue)
    flow.queue.clear()
    if fin:
        flow.queue.append((flow.last_due, None))
    flow.queued = 0
    flow.out.clear()


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0 so the peer gets an RST, not a polite FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
