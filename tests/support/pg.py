"""A throwaway PostgreSQL server for tests and benchmarks: its own cluster, loopback only.

It owns one temp directory under /tmp (`root`): the cluster in `root/data`, the server's log
`root/postgres.log`, its Unix socket, and the one postmaster it started (with that postmaster's
children). It must never listen on anything but 127.0.0.1, never touch a system-wide cluster
(config, service, port 5432 or /var/run/postgresql), and never leave a process or a directory
behind after close().

Why things are done the way they are:

* The binaries come from the OS packages, `/usr/lib/postgresql/<version>/bin` (highest version),
  never from PATH: Debian puts only wrappers there, and a machine may carry a stray build in
  /usr/local/bin that does not match the OS's libpq5.
* initdb and postgres refuse to run as root, and CI runs as root. As root the server runs as the
  system user `trygg-pgtest` (created once, no home, no shell). The processes are started with
  subprocess's own `user=`/`group=`/`extra_groups=[]` rather than through runuser: the postmaster
  is then *our* child, so we reap it (a container's PID 1 may never reap a daemonized postmaster,
  and a zombie postmaster keeps a restart out: "lock file postmaster.pid already exists"), and our
  signals reach it unchanged (runuser's watching parent turns SIGINT into SIGTERM and a SIGKILL
  2 s later). Not root: everything runs as the current user.
* Durability is honest by default: fsync, synchronous_commit and full_page_writes stay on, so a
  test that kill()s the server mid-burst sees what a real crash leaves. `fast=True` turns them off,
  for benchmarks that measure our code and not the disk; never for fault tests.
  (`initdb --no-sync` only skips syncing the freshly made cluster: a kill -9 never loses the
  page cache, only an OS crash would.)
* kill() is a crash of the whole server, not of the postmaster alone: postmaster children call
  setsid(), so there is no process group to kill; the postmaster is stopped (SIGSTOP, so it forks
  nothing new), its children listed, and all of them SIGKILLed together.
* Settings are given on the postmaster's command line (`-c name=value`), so the port and the
  socket directory cannot drift from what this object believes, whatever postgresql.conf says.
"""

import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support.broker import HOST, free_port

PG_GLOB = "/usr/lib/postgresql/*/bin"
TEST_USER = "trygg-pgtest"
SUPERUSER = "postgres"  # the database role; trust authentication, loopback only
LOG_NAME = "postgres.log"
STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
CHILD_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}

HONEST = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class PostgresNotInstalled(RuntimeError):
    """No server binaries from the OS packages on this machine."""


class PostgresFailed(RuntimeError):
    """The server did not come up, or did not go down, as asked; the message ends with its log tail."""


def find_bindir() -> Path:
    """The bin directory of the highest PostgreSQL version installed from the OS packages."""
    found = []
    for path in glob.glob(PG_GLOB):
        version = Path(path).parent.name
        if all(os.access(Path(path, name), os.X_OK) for name in ("initdb", "postgres")):
            key = tuple(int(p) for p in version.split(".") if p.isdigit())
            found.append((key, Path(path)))
    if not found:
        raise PostgresNotInstalled(
            f"no PostgreSQL server in {PG_GLOB} (initdb, postgres): install postgresql from the OS packages: "
            "make test does it (make system-packages)"
        )
    return max(found)[1]


def server_user() -> pwd.struct_passwd | None:
    """Who runs the server: None for the current user; as root, `trygg-pgtest`, created if missing."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        pass
    done = subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", "Trygg throwaway PostgreSQL for tests", TEST_USER],
        check=False, capture_output=True, text=True,
    )
    # Why not trust the exit code alone: two test runs at once may both try; one of them loses.
    for _ in range(50):
        try:
            return pwd.getpwnam(TEST_USER)
        except KeyError:
            time.sleep(0.1)
    raise PostgresFailed(f"could not create the system user {TEST_USER} to run PostgreSQL as "
                         f"(useradd exited {done.returncode}): {done.stderr.strip()}")


class PostgresServer:
    """One PostgreSQL cluster and postmaster on a fixed loopback port that survives stop/kill/restart.

    `settings` are extra server settings (name → value) on top of the defaults; `fast=True` trades
    durability for speed (benchmarks only). The cluster is made by the first start().
    """

    host = HOST

    def __init__(self, *, fast: bool = False, settings: dict[str, str] | None = None, port: int | None = None,
                 parent: str | Path = "/tmp", bindir: str | Path | None = None) -> None:
        self.bindir = Path(bindir) if bindir else find_bindir()
        self.user = server_user()
        self.fast = fast
        self.port = free_port() if port is None else port
        self._port_given = port is not None
        self.root = Path(tempfile.mkdtemp(prefix="trygg-pg-", dir=parent)).resolve()
        self.data = self.root / "data"
        self.log = self.root / LOG_NAME
        # The server's user must reach its socket directory (root) and own its cluster (data, 0700).
        self.root.chmod(0o755)
        self.data.mkdir(mode=0o700)
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
            os.chown(self.data, self.user.pw_uid, self.user.pw_gid)
        self.settings = {
            "listen_addresses": HOST,
            "unix_socket_directories": str(self.root),
            "max_connections": "100",
            **(FAST if fast else HONEST),
            **(settings or {}),
        }
        self._proc: subprocess.Popen[bytes] | None = None
        self._initialized = False
        # Why: a run that dies without close() must not leave a postmaster holding its port and a cluster in /tmp.
        self._finalizer = weakref.finalize(self, _cleanup, self.root, [None])

    # --- state ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The postmaster's process id."""
        return self._proc.pid if self.running and self._proc else None

    def processes(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, WAL writer, ...): the whole server."""
        return [self._proc.pid, *children(self._proc.pid)] if self.running and self._proc else []

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Make the cluster if needed, start the postmaster; return once it accepts connections.

        Already running: nothing to do. A port taken in the meantime on the first start: another port.
        """
        if self.running:
            return
        if not self._initialized:
            self._initdb()
        for attempt in range(3):
            try:
                self._spawn(timeout)
                return
            except PostgresFailed as exc:
                in_use = "could not bind" in str(exc) or "could not create any TCP/IP sockets" in str(exc)
                if not in_use or self._port_given or attempt == 2:
                    raise
                self.port = free_port()

    def stop(self, mode: str = "fast", timeout: float = 30.0) -> None:
        """Shut down: "smart" (wait for clients), "fast" (end sessions, checkpoint) or "immediate"
        (no checkpoint: recovery at the next start). Does not return before every server process is gone."""
        if mode not in STOP_SIGNALS:
            raise ValueError(f"stop mode must be one of {', '.join(STOP_SIGNALS)}, got {mode!r}")
        if self.running and self._proc:
            self._proc.send_signal(STOP_SIGNALS[mode])
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise PostgresFailed(f"PostgreSQL did not stop ({mode}) in {timeout} s; killed:\n{self.log_tail()}")
        self._reaped()

    def kill(self) -> None:
        """SIGKILL the postmaster and all its children at once: a crash (committed data must survive it)."""
        if self.running and self._proc:
            _kill_server(self._proc)
        self._reaped()

    def restart(self, mode: str = "fast", timeout: float = 30.0) -> None:
        """Stop (if running) and start again on the same port and cluster."""
        self.stop(mode, timeout)
        self.start(timeout)

    def close(self) -> None:
        """Stop the server (kill it if it will not stop) and remove the directory; safe to call twice."""
        try:
            if self.running:
                self.stop("fast", timeout=10.0)
        except PostgresFailed:
            pass  # stop() killed it already
        finally:
            self.kill()
            self._finalizer()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"PostgresServer({HOST}:{self.port}, {state}, {self.root})"

    # --- databases -----------------------------------------------------------------------------

    def create_database(self, name: str | None = None) -> str:
        """CREATE DATABASE (a random `t_<hex>` name unless given); returns the name."""
        name = name or f"t_{secrets.token_hex(6)}"
        self._admin(f"CREATE DATABASE {_ident(name)}")
        return name

    def drop_database(self, name: str) -> None:
        """DROP DATABASE, ending any session still connected to it; nothing if it does not exist."""
        self._admin(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join([f"--- {self.log} (tail) ---", *self.log_text().splitlines()[-lines:]])

    # --- inside --------------------------------------------------------------------------------

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)

    def _as_user(self) -> dict:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _initdb(self) -> None:
        done = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", SUPERUSER,
             "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            check=False, capture_output=True, text=True, cwd=self.root, env=CHILD_ENV, stdin=subprocess.DEVNULL,
            **self._as_user(),
        )
        if done.returncode != 0:
            raise PostgresFailed(f"initdb exited {done.returncode} in {self.data}:\n{done.stdout}\n{done.stderr}")
        self._initialized = True

    def _spawn(self, timeout: float) -> None:
        settings = {**self.settings, "port": str(self.port)}
        argv = [str(self.bindir / "postgres"), "-D", str(self.data)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.root, env=CHILD_ENV,
                start_new_session=True,  # Ctrl-C hits the test run only; its cleanup stops the server
                **self._as_user(),
            )
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _cleanup, self.root, [self._proc])
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        last = None
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise PostgresFailed(f"postgres exited with {self._proc.returncode} on {HOST}:{self.port}:\n"
                                     f"{self.log_tail()}")
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:  # not listening yet, or "the database system is starting up"
                last = exc
            if time.monotonic() > deadline:
                raise PostgresFailed(f"PostgreSQL did not accept connections on {HOST}:{self.port} in {timeout} s "
                                     f"({str(last).strip()}):\n{self.log_tail()}")
            time.sleep(0.02)

    def _reaped(self) -> None:
        self._proc = None


def _ident(name: str) -> str:
    """A database name we made or were given, checked rather than quoted: tests only need plain names."""
    if not DB_NAME.fullmatch(name):
        raise ValueError(f"database name must be lowercase letters, digits and _ (max 63), got {name!r}")
    return f'"{name}"'


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...); None if there is no such process."""
    try:
        stat = Path("/proc", str(pid), "stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()  # the name is in parentheses and may hold anything


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a killed server's children are reaped by PID 1, if ever)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def children(pid: int) -> list[int]:
    """Live child processes of pid, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(entry)
            if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _kill_server(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGKILL the postmaster and every child at once, then wait until all are dead.

    Why not killpg: each postmaster child calls setsid(), so the server is not one process group.
    Why SIGSTOP first: a stopped postmaster forks no new child between listing and killing.
    """
    _signal(proc.pid, signal.SIGSTOP)
    victims = [proc.pid, *children(proc.pid)]
    for pid in victims:
        _signal(pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in victims):
        if time.monotonic() > deadline:
            raise PostgresFailed(f"server processes {[p for p in victims if alive(p)]} still alive after SIGKILL")
        time.sleep(0.005)


def _cleanup(root: Path, procs: list) -> None:
    """Finalizer (and close()): kill what still runs, remove the directory."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            _kill_server(proc)
    shutil.rmtree(root, ignore_errors=True)
