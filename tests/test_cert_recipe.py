"""docs/operations.md's certificate recipe, followed step by step against a real Mosquitto.

The openssl blocks are read from the document (tests/support/certrecipe.py) and run as written,
with only the documented placeholders replaced: `mqtt.kommun.example` -> `localhost`,
`192.0.2.10` -> `127.0.0.1`, and `hem-0042` -> `hem-0043` where a second home is needed; the
CA's passphrase is given in CA_PASS as the section says. The broker is the lab Mosquitto of
tests/support/broker.py (the shipped ACL, mutual TLS, `use_identity_as_username`) started with
the recipe's files and its `crlfile`; clients are Trygg's own (base.mqttconn: paho, MQTT 5,
the default TLS context that checks the broker's name). Change the document and this follows.
"""

import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from base import mqttconn
from base.configbase import BrokerConfig
from base.labpki import LabPKI
from tests.support import certrecipe
from tests.support.broker import Broker, find_mosquitto, free_port
from tests.support.lab import wait_for

HOME, OTHER = certrecipe.HOME_ID, "hem-0043"
TIMEOUT = 10.0


class Session:
    """One real Trygg MQTT connection (base.mqttconn) and what came back on it."""

    def __init__(self, host: str, port: int, workdir: Path, cert: str, key: str, client_id: str) -> None:
        self.cfg = BrokerConfig(host=host, port=port, ca=workdir / "ca.crt", cert=workdir / cert,
                                key=workdir / key, keepalive_s=30)
        self.connack: mqtt.ReasonCode | None = None
        self.gone = threading.Event()
        self.ready = threading.Event()
        self.acks: dict[int, mqtt.ReasonCode] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.client = mqttconn.make_client(client_id, self.cfg)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda c, u, flags, rc, props: self.gone.set()
        self.client.on_publish = lambda c, u, mid, rc, props: self.acks.__setitem__(mid, rc)
        self.client.on_subscribe = lambda c, u, mid, rcs, props: self.ready.set()
        self.client.on_message = lambda c, u, msg: self.messages.append((msg.topic, msg.payload))

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        self.connack = reason
        self.ready.set()

    def open(self) -> "Session":
        """TCP + TLS + CONNECT; raises what the TLS handshake raises (e.g. a name mismatch)."""
        mqttconn.connect(self.client, self.cfg)
        self.client.loop_start()
        return self

    def accepted(self) -> bool:
        """True once the broker said yes; False once it said no or closed the connection."""
        wait_for(lambda: self.ready.is_set() or self.gone.is_set(), TIMEOUT, "CONNACK or disconnect")
        return self.connack is not None and not self.connack.is_failure and not self.gone.is_set()

    def publish(self, topic: str, payload: bytes) -> mqtt.ReasonCode:
        """QoS 1; returns the broker's PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        wait_for(lambda: info.mid in self.acks, TIMEOUT, f"PUBACK for {topic}")
        return self.acks[info.mid]

    def subscribe(self, topic: str) -> None:
        self.ready.clear()
        self.client.subscribe(topic, qos=1)
        wait_for(self.ready.is_set, TIMEOUT, f"SUBACK for {topic}")

    def peer_certificate(self) -> bytes:
        return self.client.socket().getpeercert(binary_form=True)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def sessions():
    opened: list[Session] = []

    def open_session(broker_port: int, workdir: Path, name: str, host: str = "localhost") -> Session:
        cert, key = (f"{name}.crt", f"{name}.key") if name != "center" else ("center.crt", "center-tls.key")
        session = Session(host, broker_port, workdir, cert, key, f"{name}-{len(opened)}")
        opened.append(session)
        return session.open()

    yield open_session
    for session in reversed(opened):
        session.close()


def recipe_broker(workdir: Path, brokerdir: Path) -> Broker:
    """The lab Mosquitto with the recipe's CA, broker certificate and key, and CRL."""
    pki = LabPKI(workdir, workdir / "ca.crt", workdir / "broker.crt", workdir / "broker.key")
    return Broker(brokerdir, pki, persistence=False, extra=(f"crlfile {workdir / 'crl.pem'}",))


def reload(broker: Broker) -> None:
    """`systemctl reload mosquitto` is SIGHUP; Mosquitto logs the reload and finishes it before
    it serves the next connection (one thread)."""
    seen = broker.log_text().count("Reloading config.")
    os.kill(broker.pid, signal.SIGHUP)
    wait_for(lambda: broker.log_text().count("Reloading config.") > seen, TIMEOUT, "Mosquitto to reload")


def tls_refusal(port: int, workdir: Path, name: str) -> str:
    """The TLS alert the broker sends a client certificate it refuses ("" if none came)."""
    context = ssl.create_default_context(cafile=str(workdir / "ca.crt"))
    context.load_cert_chain(str(workdir / f"{name}.crt"), str(workdir / f"{name}.key"))
    try:
        with (socket.create_connection(("localhost", port), timeout=TIMEOUT) as raw,
              context.wrap_socket(raw, server_hostname="localhost") as tls):
            tls.recv(1)  # TLS 1.3: the server judges the client's certificate after the handshake
    except ssl.SSLError as exc:
        return str(exc)
    return ""


def der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def openssl(*args: str, cwd: Path) -> str:
    env = {**os.environ, "CA_PASS": certrecipe.CA_PASS}
    return subprocess.run(["openssl", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def test_recipe_keys_are_private_and_certificates_say_what_the_broker_needs(tmp_path):
    work = certrecipe.issue_all(tmp_path / "ca")
    for key in ("private/ca.key", "broker.key", f"{HOME}.key", "center-tls.key"):
        assert stat.S_IMODE((work / key).stat().st_mode) == 0o600, key
    assert "ENCRYPTED PRIVATE KEY" in (work / "private/ca.key").read_text()
    ca = openssl("x509", "-in", "ca.crt", "-noout", "-text", cwd=work)
    assert "CA:TRUE" in ca and "Certificate Sign, CRL Sign" in ca
    broker = openssl("x509", "-in", "broker.crt", "-noout", "-text", cwd=work)
    assert "DNS:localhost, IP Address:127.0.0.1" in broker and "TLS Web Server Authentication" in broker
    for name, cn in ((f"{HOME}.crt", HOME), ("center.crt", "center")):
        text = openssl("x509", "-in", name, "-noout", "-subject", "-ext", "extendedKeyUsage", cwd=work)
        assert f"subject=CN = {cn}\n" in text and "TLS Web Client Authentication" in text
        assert "ASN1 OID: prime256v1" in openssl("x509", "-in", name, "-noout", "-text", cwd=work)
    days = certrecipe.run("days-left", work)
    assert "1095 days left" in days or "1094 days left" in days


def test_home_publishes_on_its_own_topic_and_the_receiver_gets_it(tmp_path, sessions):
    work = certrecipe.issue_all(tmp_path / "ca", homes=(HOME, OTHER))
    with recipe_broker(work, tmp_path / "broker") as broker:
        receiver = sessions(broker.port, work, "center")
        assert receiver.accepted()
        receiver.subscribe("trygg/v1/#")
        home = sessions(broker.port, work, HOME)
        assert home.accepted()
        assert not home.publish(f"trygg/v1/{HOME}/up/event", b"sealed-1").is_failure
        wait_for(lambda: (f"trygg/v1/{HOME}/up/event", b"sealed-1") in receiver.messages, TIMEOUT, "delivery")

        # Another home's certificate (CN hem-0043) is refused on hem-0042's topic by the ACL.
        other = sessions(broker.port, work, OTHER)
        assert other.accepted()
        refused = other.publish(f"trygg/v1/{HOME}/up/event", b"forged")
        assert refused.is_failure, refused
        assert not other.publish(f"trygg/v1/{OTHER}/up/event", b"own").is_failure
        # Mosquitto handles one client's publishes in order: once the later one is in, the
        # refused one would have been too.
        wait_for(lambda: (f"trygg/v1/{OTHER}/up/event", b"own") in receiver.messages, TIMEOUT, "delivery")
        assert (f"trygg/v1/{HOME}/up/event", b"forged") not in receiver.messages


def test_broker_certificate_without_the_san_is_refused_by_the_home(tmp_path, sessions):
    with_san = certrecipe.issue_all(tmp_path / "ca")
    without = tmp_path / "no-san"
    shutil.copytree(with_san, without)
    certrecipe.run("broker-sign", without, drop_line="subjectAltName")
    assert "Subject Alternative Name" not in openssl("x509", "-in", "broker.crt", "-noout", "-text", cwd=without)
    for work, works in ((with_san, True), (without, False)):
        with recipe_broker(work, tmp_path / f"broker-{works}") as broker:
            for host, error in (("localhost", "Hostname mismatch"), ("127.0.0.1", "IP address mismatch")):
                if works:
                    assert sessions(broker.port, work, HOME, host=host).accepted()
                else:
                    with pytest.raises(ssl.SSLCertVerificationError, match=error):
                        sessions(broker.port, work, HOME, host=host)


def test_renewed_home_and_broker_certificates_work_without_a_broker_restart(tmp_path, sessions):
    work = certrecipe.issue_all(tmp_path / "ca")
    old_home, old_broker = der(work / f"{HOME}.crt"), der(work / "broker.crt")
    with recipe_broker(work, tmp_path / "broker") as broker:
        pid = broker.pid
        receiver = sessions(broker.port, work, "center")
        assert receiver.accepted()
        receiver.subscribe("trygg/v1/#")
        certrecipe.run("renew-home", work)
        certrecipe.run("renew-broker", work)
        assert der(work / f"{HOME}.crt") != old_home and der(work / "broker.crt") != old_broker
        key = openssl("pkey", "-in", f"{HOME}.key", "-pubout", cwd=work)
        assert openssl("x509", "-in", f"{HOME}.crt", "-noout", "-pubkey", cwd=work) == key  # same key
        reload(broker)
        home = sessions(broker.port, work, HOME)
        assert home.accepted()
        assert home.peer_certificate() == der(work / "broker.crt")  # the renewed one, after a reload
        assert not home.publish(f"trygg/v1/{HOME}/up/event", b"after renewal").is_failure
        wait_for(lambda: (f"trygg/v1/{HOME}/up/event", b"after renewal") in receiver.messages, TIMEOUT, "delivery")
        assert broker.pid == pid and not receiver.gone.is_set()  # no restart, nobody dropped


def test_revoked_home_is_refused_after_a_reload_and_others_still_connect(tmp_path, sessions):
    work = certrecipe.issue_all(tmp_path / "ca", homes=(HOME, OTHER))
    first = work / "first.crt"
    shutil.copy(work / f"{HOME}.crt", first)
    certrecipe.run("renew-home", work)  # two valid certificates for the same key: both must go
    with recipe_broker(work, tmp_path / "broker") as broker:
        before = []
        for cert in (first, work / f"{HOME}.crt"):
            shutil.copy(cert, work / "probe.crt")
            shutil.copy(work / f"{HOME}.key", work / "probe.key")
            before.append(sessions(broker.port, work, "probe"))
            assert before[-1].accepted()
        # OpenSSL prefers the newest CRL it holds by its issue time, in whole seconds.
        issued = openssl("crl", "-in", "crl.pem", "-noout", "-lastupdate", cwd=work)
        time.sleep(1.1)
        certrecipe.run("revoke", work)
        assert openssl("crl", "-in", "crl.pem", "-noout", "-lastupdate", cwd=work) != issued
        reload(broker)
        for cert in (first, work / f"{HOME}.crt"):
            shutil.copy(cert, work / "probe.crt")
            assert not sessions(broker.port, work, "probe").accepted()
            assert "certificate revoked" in tls_refusal(broker.port, work, "probe")
        assert not any(s.gone.is_set() for s in before)  # a connection already up is not checked again
        assert sessions(broker.port, work, OTHER).accepted()
        assert sessions(broker.port, work, "center").accepted()


def test_an_expired_crl_makes_the_broker_refuse_every_client(tmp_path, sessions):
    work = certrecipe.issue_all(tmp_path / "ca")
    # The CA's own -gencrl, dated in the past: a CRL nobody renewed in time.
    openssl("ca", "-config", "ca.cnf", "-passin", "env:CA_PASS", "-gencrl", "-out", "crl.pem",
            "-crl_lastupdate", "20250101000000Z", "-crl_nextupdate", "20250201000000Z", cwd=work)
    with recipe_broker(work, tmp_path / "broker") as broker:
        assert not sessions(broker.port, work, HOME).accepted()
        assert not sessions(broker.port, work, "center").accepted()
        # What a home sees: its own certificate is valid, the alert says "expired" all the same.
        assert "certificate expired" in tls_refusal(broker.port, work, HOME)


def _mosquitto_gid() -> int | None:
    try:
        import grp
        import pwd

        pwd.getpwnam("mosquitto")
        return grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        return None


@pytest.mark.skipif(os.geteuid() != 0 or _mosquitto_gid() is None,
                    reason="installing as the recipe does needs root and the mosquitto user (Debian's package)")
def test_broker_files_installed_as_written_are_readable_by_mosquitto_after_it_drops_root(tmp_path, sessions):
    work = certrecipe.issue_all(tmp_path / "ca")
    # Not under pytest's 0700 tmp: the mosquitto user must be able to reach the files, as in /etc.
    root = Path(tempfile.mkdtemp(prefix="trygg-recipe-", dir="/tmp"))
    proc = None
    try:
        os.chmod(root, 0o755)
        certrecipe.run("broker-install", work, etc=root / "etc")
        etc = root / "etc" / "mosquitto"
        key = etc / "certs" / "broker.key"
        assert (stat.S_IMODE(key.stat().st_mode), key.stat().st_uid, key.stat().st_gid) == (0o640, 0, _mosquitto_gid())
        for public in ("certs/broker.crt", "ca_certificates/trygg-ca.crt", "ca_certificates/trygg-ca.crl"):
            assert stat.S_IMODE((etc / public).stat().st_mode) == 0o644, public
        port = free_port()
        conf = root / "mosquitto.conf"
        conf.write_text("\n".join([
            "user mosquitto", "per_listener_settings false", "allow_anonymous false", "persistence false",
            f"listener {port} 127.0.0.1", f"cafile {etc}/ca_certificates/trygg-ca.crt",
            f"certfile {etc}/certs/broker.crt", f"keyfile {key}", f"crlfile {etc}/ca_certificates/trygg-ca.crl",
            "require_certificate true", "use_identity_as_username true", "log_dest stderr", ""]))

        def start() -> subprocess.Popen:
            started = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            wait_for(lambda: started.poll() is not None or _listening(port), TIMEOUT, "mosquitto to start or exit")
            return started

        proc = start()
        assert proc.poll() is None, proc.stdout.read().decode()
        assert sessions(port, work, HOME).accepted()
        proc.terminate()
        proc.wait(TIMEOUT)
        # The same key readable by root only: Mosquitto, already the mosquitto user, cannot load it.
        os.chown(key, 0, 0)
        os.chmod(key, 0o600)
        proc = start()
        assert proc.wait(TIMEOUT) != 0
        assert "Unable to load server key file" in proc.stdout.read().decode()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(root)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
