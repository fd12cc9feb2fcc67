"""The test infrastructure itself: lab PKI, the real Mosquitto broker and the bad-link proxy.

Everything runs on 127.0.0.1. These tests are fast (a few seconds) and poll with deadlines
instead of sleeping, so the fault-injection tests built on these helpers can trust them.
"""

import queue
import socket
import ssl
import stat
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from base.labpki import LabPKI, add_client, make_lab_pki
from tests.support.broker import ACL_TEXT, Broker, write_config
from tests.support.netproxy import TcpProxy

HOMES = ["center", "home-1", "home-2"]


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LabPKI:
    return make_lab_pki(tmp_path_factory.mktemp("lab") / "pki", HOMES)


@pytest.fixture
def broker(tmp_path: Path, pki: LabPKI) -> Iterator[Broker]:
    with Broker(tmp_path / "broker", pki) as b:
        yield b


# ---- lab PKI ------------------------------------------------------------------------------


def test_pki_files_modes_and_extensions(pki: LabPKI) -> None:
    assert stat.S_IMODE(pki.directory.stat().st_mode) == 0o700
    names = {p.name for p in pki.directory.iterdir()}
    clients = {f"{n}.{ext}" for n in HOMES for ext in ("crt", "key")}
    assert names == {"ca.crt", "ca.key", "broker.crt", "broker.key"} | clients
    for p in pki.directory.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == (0o600 if p.suffix == ".key" else 0o644), p
        if p.suffix == ".key":
            assert p.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8, unencrypted

    ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    broker = x509.load_pem_x509_certificate(pki.broker_cert.read_bytes())
    broker.verify_directly_issued_by(ca)
    assert not broker.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert ExtendedKeyUsageOID.SERVER_AUTH in broker.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value

    cert_path, key_path = pki.client("home-1")
    assert key_path == pki.directory / "home-1.key"
    home = x509.load_pem_x509_certificate(cert_path.read_bytes())
    home.verify_directly_issued_by(ca)
    assert home.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "home-1"
    assert ExtendedKeyUsageOID.CLIENT_AUTH in home.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    for cert in (ca, broker, home):
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    for cert in (broker, home):
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def test_pki_refuses_to_overwrite_and_adds_clients(tmp_path: Path) -> None:
    pki = make_lab_pki(tmp_path / "pki", ["home-1"], days=1)
    old_ca = pki.ca.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_lab_pki(tmp_path / "pki", ["home-1"])
    assert pki.ca.read_bytes() == old_ca

    cert, key = add_client(pki, "home-9")
    assert (cert, key) == pki.client("home-9")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(old_ca)
    x509.load_pem_x509_certificate(cert.read_bytes()).verify_directly_issued_by(ca)
    with pytest.raises(FileExistsError):
        add_client(pki, "home-9")
    with pytest.raises(FileNotFoundError):
        pki.client("home-404")
    for bad in ("../evil", "a/b", "home+1", "#", "", "ca", "broker"):
        with pytest.raises(ValueError):
            add_client(pki, bad)

    fresh = make_lab_pki(tmp_path / "pki", ["home-2"], overwrite=True)
    assert fresh.ca.read_bytes() != old_ca
    assert not (tmp_path / "pki" / "home-9.key").exists()  # nothing of the old CA is left
    assert stat.S_IMODE(fresh.broker_key.stat().st_mode) == 0o600


def test_python_ssl_mutual_tls_against_broker(broker: Broker, pki: LabPKI) -> None:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # what Python 3.13 turns on by default
    ctx.load_cert_chain(*pki.client("center"))
    with socket.create_connection((broker.host, broker.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            cn = dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]
            assert cn == "localhost"
            tls.sendall(bytes([0xC0, 0]))  # MQTT PINGREQ before CONNECT: broker hangs up, politely

    no_cert = ssl.create_default_context(cafile=str(pki.ca))
    with socket.create_connection((broker.host, broker.port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, EOFError)):
            with no_cert.wrap_socket(raw, server_hostname="localhost") as tls:
                if tls.recv(1) == b"":  # TLS 1.3: the broker's refusal arrives after the handshake
                    raise EOFError


# ---- broker -------------------------------------------------------------------------------


class Peer:
    """A paho 2.x MQTT v5 client over mutual TLS that records what happens to it."""

    def __init__(self, pki: LabPKI, name: str, host: str, port: int) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connects = 0
        self.disconnects = 0
        self.subacks: dict[int, list] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        cert, key = pki.client(name)
        self.client.tls_set(ca_certs=str(pki.ca), certfile=str(cert), keyfile=str(key))
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.2)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()
        wait_for(lambda: self.connects > 0, what=f"{name} to connect")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if not reason_code.is_failure:
            self.connects += 1

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self.disconnects += 1

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # noqa: ANN001
        self.subacks[mid] = reason_codes

    def subscribe(self, topic: str) -> bool:
        """True if the broker granted the subscription."""
        _, mid = self.client.subscribe(topic, qos=1)
        wait_for(lambda: mid in self.subacks, what=f"SUBACK for {topic}")
        return not self.subacks[mid][0].is_failure

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def receive(self, timeout: float = 5.0) -> tuple[str, bytes]:
        msg = self.messages.get(timeout=timeout)
        return msg.topic, msg.payload

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peers(pki: LabPKI) -> Iterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(name: str, port: int, host: str = "127.0.0.1") -> Peer:
        made.append(Peer(pki, name, host, port))
        return made[-1]

    yield make
    for p in made:
        p.close()


def test_broker_config_is_loopback_mtls_with_acl(tmp_path: Path, pki: LabPKI) -> None:
    conf = write_config(tmp_path / "w", pki, 18999, acl=True, persistence=False).read_text().splitlines()
    assert "listener 18999 127.0.0.1" in conf
    assert {"require_certificate true", "use_identity_as_username true", "allow_anonymous false"} <= set(conf)
    assert "persistence false" in conf
    assert (tmp_path / "w" / "acl").read_text() == ACL_TEXT
    assert not any(line.startswith("listener") and "127.0.0.1" not in line for line in conf)


def test_mqtt_round_trip_between_center_and_home(broker: Broker, peers: Callable[..., Peer]) -> None:
    center, home = peers("center", broker.port), peers("home-1", broker.port)
    assert center.subscribe("trygg/v1/#")
    assert home.subscribe("trygg/v1/home-1/down/#")
    home.publish("trygg/v1/home-1/up/alarm", b"fall")
    assert center.receive() == ("trygg/v1/home-1/up/alarm", b"fall")
    center.publish("trygg/v1/home-1/down/ack", b"ok")
    assert home.receive() == ("trygg/v1/home-1/down/ack", b"ok")


def test_acl_keeps_homes_apart(broker: Broker, peers: Callable[..., Peer]) -> None:
    center, home1, home2 = (peers(n, broker.port) for n in HOMES)
    # Mosquitto 2.0 grants every SUBACK and enforces acl_file when it delivers each message.
    for topic in ("trygg/v1/home-2/#", "trygg/v1/#", "trygg/v1/+/down/cmd", "other/#"):
        home1.subscribe(topic)
    assert home2.subscribe("trygg/v1/home-2/#")
    assert center.subscribe("trygg/v1/#")

    center.publish("trygg/v1/home-2/down/cmd", b"for home-2")
    center.publish("other/x", b"outside trygg")
    center.publish("trygg/v1/home-1/down/ack", b"for home-1")  # same publisher: arrives after the others
    assert home1.receive() == ("trygg/v1/home-1/down/ack", b"for home-1")
    assert home2.receive() == ("trygg/v1/home-2/down/cmd", b"for home-2")
    assert center.receive() == ("trygg/v1/home-2/down/cmd", b"for home-2")
    assert center.receive() == ("trygg/v1/home-1/down/ack", b"for home-1")

    home1.publish("trygg/v1/home-2/up/alarm", b"forged")  # dropped by the broker: not its subtree
    home2.publish("trygg/v1/home-2/down/cmd", b"self-command")  # dropped: homes only receive commands
    home2.publish("trygg/v1/home-2/up/event", b"barrier")
    assert center.receive() == ("trygg/v1/home-2/up/event", b"barrier")
    center.publish("trygg/v1/home-2/down/cmd", b"barrier")
    assert home2.receive() == ("trygg/v1/home-2/down/cmd", b"barrier")
    center.publish("trygg/v1/home-1/down/ack", b"end")
    assert home1.receive() == ("trygg/v1/home-1/down/ack", b"end")  # nothing of home-2's came before it
    assert center.receive() == ("trygg/v1/home-2/down/cmd", b"barrier")
    assert center.receive() == ("trygg/v1/home-1/down/ack", b"end")
    assert home1.messages.empty() and home2.messages.empty() and center.messages.empty()


def test_broker_kill_restart_and_client_reconnects(broker: Broker, peers: Callable[..., Peer]) -> None:
    home = peers("center", broker.port)  # the center may read what it writes; a home may not
    assert home.subscribe("trygg/v1/home-1/#")
    old_pid = broker.pid
    broker.start()  # already running: a no-op
    assert broker.pid == old_pid
    broker.kill()
    assert not broker.running
    wait_for(lambda: home.disconnects > 0, what="client to notice the crash")
    broker.restart()
    assert broker.running and broker.pid != old_pid and broker.port == home.client.port
    wait_for(lambda: home.connects > 1, what="client to reconnect")
    assert home.subscribe("trygg/v1/home-1/#")
    home.publish("trygg/v1/home-1/status", b"back")
    assert home.receive() == ("trygg/v1/home-1/status", b"back")
    assert "mosquitto version" in broker.log_text()


def test_broker_start_failure_reports_log(tmp_path: Path, pki: LabPKI) -> None:
    with Broker(tmp_path / "a", pki) as first:
        second = Broker(tmp_path / "b", pki, port=first.port)
        with pytest.raises(RuntimeError, match="(?s)exited.*Address already in use"):
            second.start(timeout=5)
        assert not second.running
        second.close()


# ---- proxy --------------------------------------------------------------------------------


class EchoServer:
    """Echoes every byte back; on EOF from the client it finishes echoing and closes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.conns: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            self.conns.append(conn)
            t = threading.Thread(target=self._echo, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stopping = True
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:
            t.join(2)
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", echo.port) as p:
        yield p


def connect(proxy: TcpProxy) -> socket.socket:
    s = socket.create_connection((proxy.host, proxy.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def fails(proxy: TcpProxy) -> bool:
    """True if a fresh connection through the proxy cannot echo one byte."""
    try:
        with connect(proxy) as s:
            s.settimeout(2)
            s.sendall(b"x")
            return s.recv(1) != b"x"
    except OSError:
        return True


def test_proxy_round_trip_and_counters(proxy: TcpProxy) -> None:
    with connect(proxy) as s:
        s.sendall(b"hello")
        assert recv_exactly(s, 5) == b"hello"
        big = bytes(range(256)) * 4096  # 1 MiB, order must survive
        threading.Thread(target=s.sendall, args=(big,), daemon=True).start()
        assert recv_exactly(s, len(big)) == big
    wait_for(lambda: proxy.bytes_down == 5 + len(big), what="counters")
    assert proxy.bytes_up == 5 + len(big)
    assert proxy.connections_accepted == 1


def test_proxy_half_close_is_forwarded(proxy: TcpProxy) -> None:
    with connect(proxy) as s:
        s.sendall(b"last words")
        s.shutdown(socket.SHUT_WR)  # echo server sees EOF, echoes, closes
        assert recv_exactly(s, 10) == b"last words"
        assert s.recv(1) == b""
    wait_for(lambda: proxy.open_connections == 0, what="link to close")


def test_proxy_delay_is_pipelined(proxy: TcpProxy) -> None:
    with connect(proxy) as s:
        proxy.set_delay(0.05)  # while the connection is open
        t0 = time.monotonic()
        s.sendall(b"ping")
        assert recv_exactly(s, 4) == b"ping"
        rtt = time.monotonic() - t0
        assert rtt >= 0.1

        t0 = time.monotonic()
        for i in range(100):
            s.sendall(b"%08d" % i)
            time.sleep(0.001)  # separate segments, spread over ~0.1 s
        assert recv_exactly(s, 800) == b"".join(b"%08d" % i for i in range(100))
        assert time.monotonic() - t0 < 1.0  # serialized it would take 100 * 0.1 s

        bulk = bytes(range(256)) * 16384  # 4 MiB: throughput must not be limited by the delay
        t0 = time.monotonic()
        threading.Thread(target=s.sendall, args=(bulk,), daemon=True).start()
        assert recv_exactly(s, len(bulk)) == bulk
        assert time.monotonic() - t0 < 2.0

        proxy.set_delay(0)
        t0 = time.monotonic()
        s.sendall(b"fast")
        assert recv_exactly(s, 4) == b"fast"
        assert time.monotonic() - t0 < 0.09  # with the delay it would be >= 0.1 s


def test_proxy_rate_limit(proxy: TcpProxy) -> None:
    proxy.set_rate(50_000)
    with connect(proxy) as s:
        t0 = time.monotonic()
        s.sendall(b"r" * 10_000)
        assert recv_exactly(s, 10_000) == b"r" * 10_000
        assert time.monotonic() - t0 >= 0.15  # 10 kB at 50 kB/s is 0.2 s per direction
    proxy.set_rate(None)


def test_proxy_cut_and_restore(proxy: TcpProxy) -> None:
    s = connect(proxy)
    s.sendall(b"a")
    assert recv_exactly(s, 1) == b"a"
    proxy.cut()
    with pytest.raises((ConnectionError, EOFError)):
        s.sendall(b"b")
        recv_exactly(s, 1)
    s.close()
    assert proxy.open_connections == 0
    assert fails(proxy)
    assert fails(proxy)
    proxy.restore()
    assert not fails(proxy)


def test_proxy_blackhole_drops_then_restores(proxy: TcpProxy) -> None:
    with connect(proxy) as s:
        proxy.blackhole()
        s.sendall(b"lost")
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(1)
        assert proxy.open_connections == 1  # the link looks alive to both ends
        proxy.restore()
        s.settimeout(5)
        s.sendall(b"found")
        assert recv_exactly(s, 5) == b"found"  # "lost" was dropped, not delivered late
    assert not fails(proxy)


def test_proxy_target_down_resets_client() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        dead_port = s.getsockname()[1]
    with TcpProxy("127.0.0.1", dead_port) as p:
        assert fails(p)
    with pytest.raises(ValueError):
        TcpProxy("192.0.2.1", 1883)


def test_proxy_close_leaves_no_threads(echo: EchoServer) -> None:
    before = set(threading.enumerate())
    p = TcpProxy("127.0.0.1", echo.port).start()
    conns = [connect(p) for _ in range(5)]
    for c in conns:
        c.sendall(b"z")
        assert recv_exactly(c, 1) == b"z"
    p.close()
    p.close()
    assert [t for t in set(threading.enumerate()) - before if t.name.startswith("TcpProxy")] == []
    for c in conns:
        with pytest.raises((ConnectionError, EOFError)):
            recv_exactly(c, 1)
        c.close()


def test_mqtt_through_proxy_survives_cut(broker: Broker, peers: Callable[..., Peer]) -> None:
    with TcpProxy(broker.host, broker.port) as link:
        link.set_delay(0.02)
        home = peers("center", link.port)  # the center may read what it writes; a home may not
        assert home.subscribe("trygg/v1/home-1/#")
        link.cut()
        wait_for(lambda: home.disconnects > 0, what="client to see the cut")
        link.restore()
        wait_for(lambda: home.connects > 1, what="client to reconnect through the proxy")
        assert home.subscribe("trygg/v1/home-1/#")  # v5 session expiry 0: the session died with the link
        home.publish("trygg/v1/home-1/alarm", b"through")
        assert home.receive() == ("trygg/v1/home-1/alarm", b"through")
        home.close()  # before the proxy goes away
