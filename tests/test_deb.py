"""The Debian packages, installed and upgraded the way a municipality's machines are: from a signed
apt repository, on this machine, as root (CI runs on a throwaway machine).

`make deb`'s builder makes the packages (one venv per session, two versions from it); reprepro
publishes them signed with a throwaway key; apt-get installs them through a sources file with
Signed-By and its own lists (the machine's sources are never touched); everything installed is
purged afterwards, and the users and groups the packages created are deleted.

Not run here: systemd is not PID 1 on this machine or in CI, so no unit is started and
`systemctl try-restart` cannot act; the restart *decision* is tested against a real daemon.
"""

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.aptrepo import Apt, ReleaseKey, Repository, installed_version, sh
from tests.support.lab import stop_process, wait_for

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("trygg", "trygg-center", "trygg-runtime", "trygg-archive-keyring")
KEYRING = Path("/usr/share/keyrings/trygg-archive-keyring.gpg")
STATE = (Path("/etc/trygg"), Path("/var/lib/trygg"), Path("/etc/trygg-center"), Path("/var/lib/trygg-center"))
RESTART = "/usr/libexec/trygg/restart-when-idle"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "installs packages: needs root (CI runs as root on a throwaway machine)"
    tools = ("dpkg-deb", "reprepro", "gpg", "apt-get")
    if any(shutil.which(t) is None for t in tools) or not Path("/usr/lib/python3/dist-packages/systemd").is_dir():
        return "needs dpkg-deb, reprepro, gpg and python3-systemd: run `make system-packages`"
    if any(installed_version(p) for p in PACKAGES) or any(p.exists() for p in STATE):
        return "Trygg is installed on this machine (or its directories exist): not touching a real installation"
    return None


needs_root = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    """Version 1 and version 2 of the three packages, built from one venv."""
    out = tmp_path_factory.mktemp("debs")
    built = {}
    for n in (1, 2):
        version = f"0.1.0-0test{n}"
        proc = sh("/usr/bin/python3", ROOT / "packaging/build_deb.py", "--out", out / str(n), "--version", version,
                  "--venv-cache", ROOT / "build/deb-venv", "--fast", timeout=600)
        built[version] = [Path(line) for line in proc.stdout.split()]
        assert len(built[version]) == 3, proc.stdout
    return built


@pytest.fixture
def machine():
    """Leaves the machine as found: purges the packages, deletes the users and groups they made."""
    users = {line.split(":")[0] for line in Path("/etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0] for line in Path("/etc/group").read_text().splitlines()}
    yield
    subprocess.run(["dpkg", "--purge", *PACKAGES], capture_output=True, check=False)
    for user in ("trygg", "trygg-center"):
        if user not in users:
            subprocess.run(["userdel", user], capture_output=True, check=False)
    for group in ("trygg", "trygg-center", "gpio", "video", "audio"):
        if group not in groups:
            subprocess.run(["groupdel", group], capture_output=True, check=False)


def _repo(tmp_path: Path, name: str, *debs: Path, key: ReleaseKey | None = None) -> tuple[ReleaseKey, Repository]:
    key = key or ReleaseKey(tmp_path / f"key-{name}", f"Trygg {name} release")
    repo = Repository(tmp_path / f"repo-{name}", key)
    repo.publish(*debs)
    return key, repo


def _owner_mode(path: Path) -> tuple[str, str, str]:
    out = sh("stat", "-c", "%U %G %a", path).stdout.split()
    return out[0], out[1], out[2]


@pytest.mark.slow
@needs_root
def test_install_from_signed_repository_then_upgrade_keeps_config_keys_and_state(debs, machine, tmp_path):
    (v1, first), (v2, second) = debs.items()
    key = ReleaseKey(tmp_path / "key-kommun", "Trygg kommun release")
    keyring = sh("/usr/bin/python3", ROOT / "packaging/build_deb.py", "--out", tmp_path, "--version", "1",
                 "--keyring", key.keyring).stdout.strip()
    _, repo = _repo(tmp_path, "kommun", *first, Path(keyring), key=key)
    apt = Apt(tmp_path / "apt", repo.url, key.keyring)
    apt("update")
    apt("install", "-y", "trygg", "trygg-center", "trygg-archive-keyring")
    assert installed_version("trygg") == installed_version("trygg-center") == installed_version("trygg-runtime") == v1
    assert KEYRING.read_bytes() == key.keyring.read_bytes()
    apt.trust(KEYRING)  # from now on the device trusts the key its package installed, as in production

    # The service user, its groups, the directories; the daemon neither enabled nor started.
    groups = sh("id", "-nG", "trygg").stdout.split()
    assert {"trygg", "gpio", "video", "audio"} <= set(groups)
    assert _owner_mode(Path("/etc/trygg")) == ("root", "trygg", "750")
    assert _owner_mode(Path("/var/lib/trygg")) == ("trygg", "trygg", "750")
    assert _owner_mode(Path("/etc/trygg-center")) == ("root", "trygg-center", "750")
    assert _owner_mode(Path("/var/lib/trygg-center")) == ("trygg-center", "trygg-center", "750")
    for unit in ("trygg.service", "trygg-center.service", "trygg-web.service", "trygg-update.timer"):
        assert Path("/lib/systemd/system", unit).is_file(), unit
    assert not list(Path("/etc/systemd/system").glob("*.wants/trygg.service"))
    assert not list(Path("/etc/systemd/system").glob("*.wants/trygg-center.service"))
    assert not list(Path("/etc/systemd/system").glob("*.wants/trygg-web.service"))
    assert Path("/etc/systemd/system/timers.target.wants/trygg-update.timer").is_symlink()
    assert "/usr/bin/trygg" in Path("/lib/systemd/system/trygg.service").read_text()

    # The packaged venv: Trygg's own libraries (Debian 12's are too old), Debian's python3-systemd.
    probe = sh("/usr/lib/trygg/bin/python3", "-c", "import agent, center, cryptography, paho.mqtt, systemd.journal; "
               "print(agent.__file__, cryptography.__version__, systemd.journal.__file__)").stdout.split()
    assert probe[0].startswith("/usr/lib/trygg/") and int(probe[1].split(".")[0]) >= 50
    assert probe[2].startswith("/usr/lib/python3/dist-packages/")
    assert sh("/usr/bin/trygg", "--version").stdout.strip() == "trygg, version 0.1.0"

    # A configured home and a center: config, keys and state a technician and the daemons made.
    token = os.urandom(8).hex()
    config = Path("/etc/trygg/trygg.toml")
    config.write_text(f'home = "hem-deb"  # {token}\n')
    device_key = Path("/etc/trygg/device.key")
    device_key.write_bytes(os.urandom(32))
    os.chmod(device_key, 0o600)
    outbox = Path("/var/lib/trygg/outbox.db")
    with sqlite3.connect(outbox) as db:
        db.execute("CREATE TABLE kept (token TEXT)")
        db.execute("INSERT INTO kept VALUES (?)", (token,))
    db.close()
    trust = Path("/var/lib/trygg/trust.db")
    trust.write_bytes(os.urandom(4096))
    store = Path("/var/lib/trygg-center/store.db")
    store.write_bytes(os.urandom(4096))
    Path("/etc/trygg-center/center.toml").write_text(f"[center]  # {token}\n")
    before = {p: (p.read_bytes(), _owner_mode(p)) for p in (config, device_key, outbox, trust, store)}

    # Version 2 published; the package's own updater (the timer's job) applies it through apt.
    repo.publish(*second)
    update = subprocess.run(["/usr/libexec/trygg/update"], env=apt.env, capture_output=True, text=True, timeout=300,
                            check=False)
    assert update.returncode == 0, update.stdout + update.stderr
    assert installed_version("trygg") == installed_version("trygg-center") == installed_version("trygg-runtime") == v2
    for path, (content, owner_mode) in before.items():
        assert path.read_bytes() == content and _owner_mode(path) == owner_mode, f"{path} changed by the upgrade"
    with sqlite3.connect(outbox) as db:
        assert db.execute("SELECT token FROM kept").fetchall() == [(token,)]
    db.close()
    assert not list(Path("/etc/systemd/system").glob("*.wants/trygg.service")), "the upgrade enabled the daemon"

    # remove keeps everything; only purge deletes it.
    apt("remove", "-y", "trygg", "trygg-center", "trygg-runtime")
    assert installed_version("trygg") is None and not Path("/usr/lib/trygg").exists()
    assert config.read_text().endswith(f"{token}\n") and outbox.exists() and store.exists()
    sh("dpkg", "--purge", *PACKAGES)
    assert not any(p.exists() for p in STATE) and not KEYRING.exists()


@pytest.mark.slow
@needs_root
def test_restart_waits_while_an_alarm_waits_for_acknowledgement(debs, machine, lab, tmp_path):
    """restart-when-idle against the installed daemon: no alarm waiting, restart; an alarm the
    center has not acknowledged (no receiver runs), wait; the daemon gone, restart."""
    _, second = list(debs.items())[1]
    key, repo = _repo(tmp_path, "kommun", *second)
    apt = Apt(tmp_path / "apt", repo.url, key.keyring)
    apt("update")
    apt("install", "-y", "trygg")
    home = lab.home("hem-deb")
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(["/usr/bin/trygg", "run", "--config", str(home.config)], stdin=subprocess.DEVNULL,
                              stdout=log, stderr=subprocess.STDOUT, cwd="/")

    def ask(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([RESTART, "--config", str(home.config), "--dry-run", *extra], capture_output=True,
                              text=True, timeout=60, cwd="/", check=False)

    try:
        wait_for(lambda: subprocess.run(["/usr/bin/trygg", "status", "--json", "--config", str(home.config)],
                                        capture_output=True, check=False).returncode == 0,
                 30, "the installed daemon to answer")
        idle = ask()
        assert (idle.returncode, idle.stdout.splitlines()[0]) == (0, "restart: no alarm waiting"), idle
        sh("/usr/bin/trygg", "simulate", "alarm", "--kind", "fall", "--config", home.config)
        status = json.loads(sh("/usr/bin/trygg", "status", "--json", "--config", home.config).stdout)
        assert status["unacked_alarms"]["depth"] == 1
        started = time.monotonic()
        busy = ask("--wait", "2", "--every", "1")
        assert busy.returncode == 75, busy
        assert busy.stdout.count("wait: 1 alarm(s) waiting for the center's acknowledgement") == 2, busy.stdout
        assert time.monotonic() - started >= 1
    finally:
        stop_process(daemon)
        log.close()
    gone = ask()
    assert (gone.returncode, gone.stdout.splitlines()[0]) == (0, "restart: the daemon is not running"), gone


@pytest.mark.slow
@needs_root
def test_repository_signed_by_another_key_is_refused(debs, machine, tmp_path):
    (_, first), _ = debs.items()
    trusted = ReleaseKey(tmp_path / "key-trusted", "Trygg kommun release")
    _, repo = _repo(tmp_path, "other", *first)  # signed with its own key, not the trusted one
    apt = Apt(tmp_path / "apt", repo.url, trusted.keyring)
    update = apt("update", check=False)
    assert update.returncode != 0
    assert "NO_PUBKEY" in update.stdout + update.stderr and "is not signed" in update.stdout + update.stderr
    install = apt("install", "-y", "trygg", check=False)
    assert install.returncode != 0 and installed_version("trygg") is None


@pytest.mark.slow
@needs_root
def test_tampered_package_is_refused(debs, machine, tmp_path):
    """Bytes changed in the pool: the signed index's hash no longer matches. The index then
    rewritten to match: the signed Release's hash of the index no longer matches."""
    (_, first), _ = debs.items()
    key, repo = _repo(tmp_path, "kommun", *first)
    pool = repo.pool_file("trygg")
    data = bytearray(pool.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the hash can tell
    pool.write_bytes(bytes(data))
    apt = Apt(tmp_path / "apt", repo.url, key.keyring)
    apt("update")
    install = apt("install", "-y", "trygg", check=False)
    assert install.returncode != 0 and "Hash Sum mismatch" in install.stdout + install.stderr, install.stdout
    assert installed_version("trygg") is None

    import gzip
    import hashlib

    index = repo.dir / "dists/bookworm/main/binary-amd64/Packages"
    text = index.read_text()
    stanza = next(s for s in text.split("\n\n") if s.startswith("Package: trygg\n"))
    forged = "\n".join(f"SHA256: {hashlib.sha256(data).hexdigest()}" if line.startswith("SHA256:") else line
                       for line in stanza.splitlines() if not line.startswith(("MD5sum:", "SHA1:")))
    index.write_text(text.replace(stanza, forged))
    (index.parent / "Packages.gz").write_bytes(gzip.compress(index.read_bytes()))
    shutil.rmtree(apt.dir / "lists")
    (apt.dir / "lists/partial").mkdir(parents=True)
    update = apt("update", check=False)
    assert update.returncode != 0 and "Hash Sum mismatch" in update.stdout + update.stderr, update.stdout
    install = apt("install", "-y", "trygg", check=False)
    assert install.returncode != 0 and installed_version("trygg") is None


_JOURNAL = Path("/run/systemd/journal/socket")


@pytest.mark.skipif(not Path("/usr/lib/python3/dist-packages/systemd").is_dir(), reason="needs python3-systemd")
@pytest.mark.skipif(_JOURNAL.parent.exists(), reason="a real journald runs here: not standing in for it")
@pytest.mark.skipif(os.geteuid() != 0, reason="stands in for journald at its fixed path in /run: needs root")
def test_journal_gets_home_component_and_event_id_fields():
    """base/logs.py through Debian's python3-systemd into a socket standing in for journald."""
    made = [p for p in (_JOURNAL.parent.parent, _JOURNAL.parent) if not p.exists()]
    for p in made:
        p.mkdir()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(str(_JOURNAL))
        sock.settimeout(10)
        code = ("import logging; from base import logs; logs.setup('info', home='hem-0042'); "
                "logging.getLogger('agent.uplink').warning('alarm sent', extra={'event_id': '01JTEST'}); "
                "logging.getLogger('center.receiver').info('recorded', extra={'home': 'hem-0007'})")
        env = {"PATH": os.environ["PATH"], "INVOCATION_ID": "0" * 32, "PYTHONPATH": str(ROOT)}
        sh("/usr/bin/python3", "-c", code, env=env)
        first = dict(line.split("=", 1) for line in sock.recv(65536).decode().splitlines() if "=" in line)
        second = dict(line.split("=", 1) for line in sock.recv(65536).decode().splitlines() if "=" in line)
    finally:
        sock.close()
        _JOURNAL.unlink(missing_ok=True)
        for p in reversed(made):
            p.rmdir()
    assert (first["MESSAGE"], first["SYSLOG_IDENTIFIER"], first["PRIORITY"]) == ("alarm sent", "trygg", "4")
    assert (first["TRYGG_HOME"], first["TRYGG_COMPONENT"], first["TRYGG_EVENT_ID"]) == ("hem-0042", "uplink", "01JTEST")
    assert (second["TRYGG_HOME"], second["TRYGG_COMPONENT"]) == ("hem-0007", "receiver")
    assert "TRYGG_EVENT_ID" not in second


def test_without_python3_systemd_logs_go_to_stderr_as_before():
    """A development venv has no systemd module: under systemd too, stderr (journald reads it)."""
    code = ("import logging, sys\n"
            "try:\n    import systemd.journal\n    sys.exit(5)\nexcept ImportError:\n    pass\n"
            "from base import logs; logs.setup('info', home='hem-1')\n"
            "logging.getLogger('agent.outbox').warning('full')\n"
            "print(type(logging.getLogger().handlers[0]).__name__)")
    proc = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "INVOCATION_ID": "0" * 32}, check=False)
    if proc.returncode == 5:
        pytest.skip("this venv has systemd-python")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "StreamHandler"
    assert proc.stderr.rstrip().endswith("WARNING agent.outbox: full")
