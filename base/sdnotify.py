"""systemd notifications (READY, STATUS, WATCHDOG, STOPPING), a no-op outside systemd.

Uses systemd-python when installed; otherwise speaks the documented sd_notify datagram
protocol itself (one sendto on $NOTIFY_SOCKET), so the optional dependency is truly optional.
"""

import os
import socket


def _fallback_notify(message: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
        return True
    except OSError:
        return False


try:  # pragma: no cover - depends on the machine
    from systemd import daemon as _sd_daemon

    def notify(message: str) -> bool:
        return bool(_sd_daemon.notify(message))

except ImportError:
    notify = _fallback_notify


def watchdog_interval() -> float | None:
    """Half the WatchdogSec systemd asked for, or None when no watchdog is enabled."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
