"""MQTT plumbing shared by the device uplink and the center receiver.

A paho-mqtt 2.x client set up the way every Trygg connection needs (MQTT 5, mutual TLS,
TCP_NODELAY), an external network loop step that also waits on the owner's wake-up socket,
and a reconnect loop with capped, jittered backoff. It never decides what to publish.
"""

import logging
import os
import random
import select
import socket
import ssl
import stat
import threading
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .configbase import BrokerConfig
from .errors import ConfigError, KeyFileError

log = logging.getLogger(__name__)


def _no_delay(client, userdata, sock) -> None:
    """Nagle against delayed ACK costs ~40 ms per hop; alarms must not wait for it."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def make_client(client_id: str, broker: BrokerConfig, tcp_nodelay: bool = True, inflight: int = 100,
                manual_ack: bool = False, section: str = "broker") -> mqtt.Client:
    """section: the config section the broker came from, named in errors (`broker.key: ...`)."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        reconnect_on_failure=False,
        manual_ack=manual_ack,
    )
    client.tls_set_context(tls_context(broker, section))
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    if tcp_nodelay:
        client.on_socket_open = _no_delay
    return client


def tls_context(broker: BrokerConfig, section: str = "broker") -> ssl.SSLContext:
    """The mutual-TLS context; a missing or wrong file is a ConfigError naming its key and path, a
    private key all users can read a KeyFileError."""
    for key in ("ca", "cert", "key"):
        path = getattr(broker, key)
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"{section}.{key}: cannot read {path} ({type(exc).__name__}: "
                              f"{exc.strerror or exc})") from None
    mode = stat.S_IMODE(os.stat(broker.key).st_mode)
    if mode & 0o007:  # fail closed, as for device.key; a group (the service's, staff's CLI) may read it
        raise KeyFileError(f"{section}.key: {broker.key} is a TLS private key readable by all users (mode {mode:o}); "
                           f"run chmod 600 {broker.key} (or 640 with the service's group)")
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(broker.ca))
    except ssl.SSLError as exc:
        raise ConfigError(f"{section}.ca: {broker.ca} is not a usable CA certificate: {exc.reason or exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(broker.cert), str(broker.key))
    except ssl.SSLError as exc:
        raise ConfigError(f"{section}.cert / {section}.key: {broker.cert} and {broker.key} are not a matching "
                          f"certificate and private key: {exc.reason or exc}") from None
    return context


def connect(client: mqtt.Client, broker: BrokerConfig, session_expiry_s: int = 0, receive_maximum: int = 0) -> None:
    """Blocking TCP connect + TLS handshake + CONNECT sent; CONNACK arrives through `pump`.

    session_expiry_s > 0 asks the broker to keep our session (subscriptions and queued QoS 1
    messages) that long while we are away: the receiver uses it so events published while it
    restarts wait at the broker instead of waiting for the device's re-send timer.
    receive_maximum > 0 caps the QoS 1 messages the broker sends us before we acknowledge: a
    receiver that acknowledges after recording would otherwise be handed a whole region's
    backlog at once (65,535 by default; measured 382 MiB of RSS for 2,000 homes).
    """
    properties = None
    if session_expiry_s or receive_maximum:
        properties = Properties(PacketTypes.CONNECT)
    if session_expiry_s:
        properties.SessionExpiryInterval = session_expiry_s
    if receive_maximum:
        properties.ReceiveMaximum = receive_maximum
    client.connect(broker.host, broker.port, keepalive=broker.keepalive_s, clean_start=not session_expiry_s,
                   properties=properties)


def pump(client: mqtt.Client, extra: list, timeout: float) -> tuple[bool, list]:
    """One round of the external network loop: read, write, keepalive.

    Returns (still_connected, readable extra sockets). Lets the owner wait on its own wake-up
    socket in the same select() as the MQTT socket, so new alarms go out without polling.
    """
    sock = client.socket()
    if sock is None:
        return False, []
    if getattr(sock, "pending", lambda: 0)() > 0:
        timeout = 0.0
    wlist = [sock] if client.want_write() else []
    try:
        readable, writable, _ = select.select([sock, *extra], wlist, [], timeout)
    except (OSError, ValueError):
        return False, []
    if sock in readable or getattr(sock, "pending", lambda: 0)() > 0:
        if client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
            return False, []
    if sock in writable or client.want_write():
        if client.loop_write() != mqtt.MQTT_ERR_SUCCESS:
            return False, []
    if client.loop_misc() != mqtt.MQTT_ERR_SUCCESS:
        return False, []
    return True, [s for s in readable if s is not sock]


class Backoff:
    """Capped exponential backoff with jitter, so a thousand homes don't reconnect in lockstep."""

    def __init__(self, low: float, high: float, rand: random.Random | None = None) -> None:
        self.low, self.high, self.rand = low, high, rand or random.Random()
        self.current = low

    def next_delay(self) -> float:
        delay = self.rand.uniform(self.current / 2, self.current)
        self.current = min(self.current * 2, self.high)
        return delay

    def reset(self) -> None:
        self.current = self.low


def close_socket(client: mqtt.Client | None) -> None:
    """Close a session's socket for sure (paho leaves it open after some failed connects)."""
    sock = client.socket() if client is not None else None
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def keep_connected(
    stop: threading.Event,
    broker: BrokerConfig,
    new_client: Callable[[], mqtt.Client],
    session: Callable[[mqtt.Client], None],
    backoff: Backoff,
    on_error: Callable[[str], None],
    session_expiry_s: int = 0,
    name: str = "mqtt",
    receive_maximum: int = 0,
) -> None:
    """Connect, run the session until the link drops, wait a jittered backoff, repeat until stop.

    The session resets the backoff itself once the broker accepts it (CONNACK success), so
    a broker that accepts TCP but refuses us still backs off. Missing or unreadable TLS files
    are reported and retried like a dead link (a technician may be fixing them right now).
    Each distinct problem is logged once, not once per retry; on_error hears every one.
    """
    last = None
    while not stop.is_set():
        client = None
        try:
            client = new_client()
            connect(client, broker, session_expiry_s, receive_maximum)
            session(client)
        except (OSError, ValueError) as exc:  # ssl.SSLError and FileNotFoundError are OSErrors
            message = f"cannot connect to {broker.host}:{broker.port}: {type(exc).__name__}: {exc}"
            if message != last:
                log.warning("%s: %s", name, message)
            last = message
            on_error(message)
        else:
            last = None
        finally:
            close_socket(client)
        if stop.is_set():
            break
        delay = backoff.next_delay()
        log.debug("reconnecting to %s:%s in %.1f s", broker.host, broker.port, delay)
        stop.wait(delay)
