"""Session fixtures: a throwaway lab PKI and a real Mosquitto with mutual TLS, loopback only."""

import pytest

from base.labpki import make_lab_pki
from tests.support.broker import Broker
from tests.support.lab import Lab

pytest_plugins = ["tests.support.cards", "tests.support.pgfixture", "tests.support.receiverdesk"]  # tmpfs cards; PostgreSQL; the receiver desk


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return make_lab_pki(tmp_path_factory.mktemp("pki") / "lab", ["center"])


@pytest.fixture(scope="session")
def broker(pki, tmp_path_factory):
    with Broker(tmp_path_factory.mktemp("broker"), pki) as b:
        yield b


@pytest.fixture
def own_broker(pki, tmp_path):
    """A broker of the test's own, for tests that stop, kill or restart it."""
    with Broker(tmp_path / "broker", pki) as b:
        yield b


@pytest.fixture
def lab(tmp_path, pki, broker):
    lab = Lab(tmp_path, pki, broker.port)
    yield lab
    lab.close()


@pytest.fixture
def run_daemon(lab):
    """Start a lab home's daemon in this process (its drivers on mock pins the test can reach);
    stopped afterwards, in reverse order."""
    from agent import config as cfgmod
    from agent.daemon import Daemon
    from tests.support.lab import wait_for

    started: list = []

    def start(home):
        daemon = Daemon(cfgmod.load(home.config))
        started.append(daemon)
        daemon.start()
        wait_for(lambda: daemon.status()["link"] == "connected", 20, f"home {home.id} to connect")
        return daemon

    yield start
    for daemon in reversed(started):
        daemon.stop()

