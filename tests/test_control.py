"""The control socket the CLI talks to: only good requests reach the daemon, and it keeps serving.

A real Unix socket under tmp_path; the daemon side is a small fake `Handlers` subclass (our
own seam, not a third-party library), so every request the handlers see can be checked.
"""

import json
import os
import socket
import stat
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import control
from agent.control import MAX_REQUEST, MAX_SIMULATE, ControlServer, Handlers, Injected, request
from base.errors import DaemonNotRunning, TryggError
from protocol.events import DRIVER_KINDS, Event, simulate_kinds

STATUS = {"home": "hem-1", "uptime_s": 12.0, "link": "connected", "clock_synced": True}


class FakeDaemon(Handlers):
    """Records what it was asked to do; accepts every event unless told otherwise."""

    def __init__(self) -> None:
        self.injected: list[Event] = []
        self.accept = True
        self.lock = threading.Lock()

    def status(self) -> dict:
        return dict(STATUS)

    def inject(self, event: Event) -> Injected:
        with self.lock:
            self.injected.append(event)
            return Injected(f"id-{len(self.injected)}", self.accept, self.accept)


@pytest.fixture
def sock_path(tmp_path):
    path = tmp_path / "trygg.sock"
    assert len(str(path)) < 100, "AF_UNIX paths must stay short"
    return path


@pytest.fixture
def serve(sock_path):
    """Factory: start a ControlServer with a FakeDaemon; everything started is closed afterwards."""
    started: list[ControlServer] = []

    def _serve(path=None, daemon=None):
        daemon = daemon or FakeDaemon()
        server = ControlServer(path or sock_path, daemon)
        server.start()
        started.append(server)
        return server, daemon

    yield _serve
    for server in started:
        server.close()


@pytest.fixture(scope="module")
def _shared_server(tmp_path_factory):
    path = tmp_path_factory.mktemp("ctl") / "trygg.sock"
    daemon = FakeDaemon()
    server = ControlServer(path, daemon)
    server.start()
    yield path, daemon
    server.close()


@pytest.fixture
def shared(_shared_server):
    """One running server for the request tests (closing a server costs up to 0.5 s)."""
    path, daemon = _shared_server
    daemon.injected.clear()
    daemon.accept = True
    return path, daemon


def exchange(path, data: bytes, timeout: float = 5.0) -> list[dict]:
    """Send raw bytes, read every answer line until the server closes the connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return [json.loads(line) for line in b"".join(chunks).splitlines()]


def still_serving(path) -> None:
    answers = list(request(path, {"op": "status"}, timeout=5))
    assert answers == [{**STATUS, "done": True}]


# -- good requests ---------------------------------------------------------------------------


def test_status_is_answered_with_done(shared):
    path, _ = shared
    still_serving(path)


def test_simulate_injects_each_event_and_reports_its_id(shared):
    path, daemon = shared
    answers = list(request(path, {"op": "simulate", "class": "alarm", "kind": "fall", "count": 3}))
    assert answers == [{"id": "id-1", "accepted": True, "stored": True}, {"id": "id-2", "accepted": True, "stored": True},
                       {"id": "id-3", "accepted": True, "stored": True}, {"done": True}]
    assert daemon.injected == [Event("alarm", "fall", {"simulated": True})] * 3


def test_simulate_without_a_kind_is_refused_naming_the_kinds_of_that_class(shared):
    path, daemon = shared
    for cls in DRIVER_KINDS:
        with pytest.raises(TryggError) as err:
            list(request(path, {"op": "simulate", "class": cls, "kind": None}))
        assert f"no kind given: simulate {cls} needs --kind, one of {', '.join(simulate_kinds(cls))}" in str(err.value)
    assert daemon.injected == []


def test_simulate_sends_a_drivers_kind_of_that_class_or_a_test_as_class_test(shared):
    path, daemon = shared
    for cls in DRIVER_KINDS:
        list(request(path, {"op": "simulate", "class": cls, "kind": DRIVER_KINDS[cls][0]}))
        list(request(path, {"op": "simulate", "class": cls, "kind": "test"}))
    assert [(e.cls, e.kind, e.body) for e in daemon.injected] == [
        row for cls in DRIVER_KINDS for row in ((cls, DRIVER_KINDS[cls][0], {"simulated": True}),
                                                ("test", "test", {"simulated": True, "tests": cls}))]
    with pytest.raises(TryggError, match="no driver sends 'banana' as alarm: --kind must be one of bed_exit, "):
        list(request(path, {"op": "simulate", "class": "alarm", "kind": "banana"}))
    with pytest.raises(TryggError, match="class must be one of alarm, event, telemetry"):
        list(request(path, {"op": "simulate", "class": "test", "kind": "test"}))
    assert len(daemon.injected) == 2 * len(DRIVER_KINDS)


def test_test_events_are_rate_limited_at_the_device_and_a_refused_request_commits_nothing(tmp_path):
    daemon = FakeDaemon()
    server = ControlServer(tmp_path / "c.sock", daemon)
    server.start()
    try:
        list(request(tmp_path / "c.sock", {"op": "simulate", "class": "alarm", "kind": "test", "count": control.TESTS_BURST - 1}))
        with pytest.raises(TryggError, match=r"test events are limited to 10 at once and one every 6 s .*try again in [56] s"):
            list(request(tmp_path / "c.sock", {"op": "simulate", "class": "alarm", "kind": "test", "count": 2}))
        with pytest.raises(TryggError, match="send at most 10 at a time"):
            list(request(tmp_path / "c.sock", {"op": "simulate", "class": "alarm", "kind": "test", "count": 11}))
        list(request(tmp_path / "c.sock", {"op": "simulate", "class": "event", "kind": "test"}))
        list(request(tmp_path / "c.sock", {"op": "simulate", "class": "alarm", "kind": "fall", "count": 50}))  # real kinds are not limited
        assert [e.cls for e in daemon.injected] == ["test"] * control.TESTS_BURST + ["alarm"] * 50
    finally:
        server.close()


@given(cls=st.sampled_from(list(DRIVER_KINDS)), kind=st.one_of(st.none(), st.integers(), st.text(max_size=45),
                                                  st.sampled_from([k for ks in DRIVER_KINDS.values() for k in ks])))
def test_simulate_accepts_a_kind_exactly_when_a_driver_sends_it_as_that_class_or_it_is_test(cls, kind):
    req = {"op": "simulate", "class": cls, "kind": kind}
    if kind == "test":
        assert control._parse_simulate(req) == (Event("test", "test", {"simulated": True, "tests": cls}), 1)
    elif kind in DRIVER_KINDS[cls]:
        assert control._parse_simulate(req) == (Event(cls, kind, {"simulated": True}), 1)
    else:
        with pytest.raises(ValueError, match="--kind"):
            control._parse_simulate(req)


def test_refused_event_is_reported_not_accepted(shared):
    path, daemon = shared
    daemon.accept = False
    answers = list(request(path, {"op": "simulate", "class": "telemetry", "kind": "device_health"}))
    assert answers == [{"id": "id-1", "accepted": False, "stored": False}, {"done": True}]
    # simulated events are always marked so, whatever the request says
    assert daemon.injected == [Event("telemetry", "device_health", {"simulated": True})]


# -- malformed requests ----------------------------------------------------------------------

MALFORMED = {
    "not-json": b"hello daemon\n",
    "not-utf8": b"\xff\xfe{}\n",
    "array": b'["status"]\n',
    "string": b'"status"\n',
    "null": b"null\n",
    "empty-object": b"{}\n",
    "unknown-op": b'{"op": "reboot"}\n',
    "count-zero": b'{"op": "simulate", "class": "alarm", "count": 0}\n',
    "count-negative": b'{"op": "simulate", "class": "alarm", "count": -3}\n',
    "count-too-large": json.dumps({"op": "simulate", "class": "alarm", "count": MAX_SIMULATE + 1}).encode() + b"\n",
    "count-string": b'{"op": "simulate", "class": "alarm", "count": "5"}\n',
    "count-float": b'{"op": "simulate", "class": "alarm", "count": 1.5}\n',
    "bad-class": b'{"op": "simulate", "class": "panic"}\n',
    "no-class": b'{"op": "simulate"}\n',
    "kind-uppercase": b'{"op": "simulate", "class": "alarm", "kind": "Fall"}\n',
    "kind-too-long": json.dumps({"op": "simulate", "class": "alarm", "kind": "f" * 41}).encode() + b"\n",
    "kind-trailing-newline": b'{"op": "simulate", "class": "alarm", "kind": "fall\\n"}\n',
    "kind-not-a-string": b'{"op": "simulate", "class": "alarm", "kind": 5}\n',
    "kind-missing": b'{"op": "simulate", "class": "alarm"}\n',
    "kind-null": b'{"op": "simulate", "class": "alarm", "kind": null}\n',
    "kind-no-driver-sends": b'{"op": "simulate", "class": "alarm", "kind": "banana"}\n',
    "kind-of-another-class": b'{"op": "simulate", "class": "telemetry", "kind": "fall"}\n',
    "kind-event-only-as-alarm": b'{"op": "simulate", "class": "alarm", "kind": "visit"}\n',
    "body-list": b'{"op": "simulate", "class": "alarm", "body": [1, 2]}\n',
    "body-string": b'{"op": "simulate", "class": "alarm", "body": "fall"}\n',
    "over-long-line": json.dumps({"op": "status", "pad": "x" * (3 * MAX_REQUEST)}).encode() + b"\n",
    "deeply-nested": b"[" * (MAX_REQUEST - 100) + b"\n",
}


@pytest.mark.parametrize("raw", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_request_gets_an_error_answer_and_the_server_keeps_serving(shared, raw):
    path, daemon = shared

    answers = exchange(path, raw)

    assert len(answers) == 1 and set(answers[0]) == {"error"}, f"expected one error answer, got {answers!r}"
    assert isinstance(answers[0]["error"], str) and answers[0]["error"]
    assert daemon.injected == [], "a malformed request reached the daemon's handlers"
    still_serving(path)


def test_request_exactly_at_the_size_limit_is_served(shared):
    sock_path, _ = shared
    line = json.dumps({"op": "status", "pad": ""}).encode()
    line = json.dumps({"op": "status", "pad": "x" * (MAX_REQUEST - len(line) - 1)}).encode() + b"\n"
    assert len(line) == MAX_REQUEST
    assert exchange(sock_path, line) == [{**STATUS, "done": True}]


def test_client_that_hangs_up_without_asking_does_not_stop_the_server(shared):
    sock_path, _ = shared
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(sock_path))
    still_serving(sock_path)


def test_silent_client_does_not_block_other_clients(shared):
    sock_path, _ = shared
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
        idle.connect(str(sock_path))
        idle.sendall(b'{"op": "sta')  # and then nothing more
        still_serving(sock_path)


def test_error_answer_is_raised_by_the_client_as_a_refusal_not_as_daemon_gone(shared):
    sock_path, _ = shared
    with pytest.raises(TryggError) as err:
        list(request(sock_path, {"op": "simulate", "class": "alarm", "count": 0}))
    assert not isinstance(err.value, DaemonNotRunning)
    assert "daemon refused the request" in str(err.value) and "count" in str(err.value)


# -- the socket file -----------------------------------------------------------------------


def test_socket_is_group_accessible_only_even_with_a_permissive_umask(sock_path):
    old = os.umask(0)
    try:
        server = ControlServer(sock_path, FakeDaemon())
    finally:
        os.umask(old)
    server.start()
    try:
        st = os.stat(sock_path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
    finally:
        server.close()


def test_request_raises_daemon_not_running_when_the_socket_is_absent(sock_path):
    assert not sock_path.exists()
    with pytest.raises(DaemonNotRunning) as err:
        next(request(sock_path, {"op": "status"}))
    assert "not running" in str(err.value) and str(sock_path) in str(err.value)
    assert isinstance(err.value, ConnectionError)


def test_request_raises_daemon_not_running_after_the_server_closed(sock_path):
    server = ControlServer(sock_path, FakeDaemon())
    server.start()
    still_serving(sock_path)
    server.close()
    assert not sock_path.exists()
    with pytest.raises(DaemonNotRunning):
        next(request(sock_path, {"op": "status"}))


def test_second_server_on_a_live_socket_refuses_to_start(serve, sock_path):
    serve()
    with pytest.raises(TryggError, match="already listening"):
        ControlServer(sock_path, FakeDaemon())
    assert sock_path.exists()
    still_serving(sock_path)


def test_stale_socket_file_left_by_a_crashed_daemon_is_replaced(serve, sock_path):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))
    stale.close()  # the file stays behind with nobody listening, as after kill -9
    assert stat.S_ISSOCK(os.stat(sock_path).st_mode)
    with pytest.raises(DaemonNotRunning):
        next(request(sock_path, {"op": "status"}))

    serve()

    still_serving(sock_path)


def test_a_regular_file_at_the_socket_path_is_not_deleted(sock_path):
    """A mistyped control.socket (say, the config file's own path) must not cost that file."""
    sock_path.write_text("[home]\nid = \"hem-1\"\n")
    with pytest.raises(TryggError):
        server = ControlServer(sock_path, FakeDaemon())
        server.start()
        server.close()
    assert sock_path.read_text() == "[home]\nid = \"hem-1\"\n"


def test_closing_a_server_that_was_never_started_returns(sock_path):
    """The daemon's stop() may run after a failed start; close() must not wait forever."""
    server = ControlServer(sock_path, FakeDaemon())
    closer = threading.Thread(target=server.close, daemon=True)
    closer.start()
    closer.join(2.0)
    assert not closer.is_alive(), "ControlServer.close() hangs when start() was never called"
    assert not sock_path.exists()


def test_socket_directory_is_created_when_missing(serve, tmp_path):
    path = tmp_path / "run" / "trygg" / "c.sock"
    serve(path)
    still_serving(path)


def test_max_simulate_is_what_the_cli_allows():
    from agent.cli import simulate

    count = next(p for p in simulate.params if p.name == "count")
    assert count.type.max == control.MAX_SIMULATE
