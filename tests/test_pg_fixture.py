"""The throwaway PostgreSQL server the store's tests run against (tests/support/pg.py, pgfixture.py):
not root, loopback only, a fresh database per test, honest about crashes, nothing left behind."""

import os
import pwd
import socket
from pathlib import Path

import psycopg
import pytest

from center.db import parse_url
from tests.support import pg
from tests.support.pg import PostgresFailed, PostgresNotInstalled, PostgresServer, alive


def uid_of(pid: int) -> int | None:
    """The process's real uid; None when it has ended since it was listed (a backend whose
    connection just closed: the server keeps starting and ending them)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    for line in status.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])  # real uid (effective, saved and fs follow it)
    raise AssertionError(f"no Uid line for pid {pid}")


def listening(port: int) -> list[str]:
    """Local addresses of listening TCP sockets on a port, from /proc/net/tcp and tcp6 (hex as the kernel writes)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:
                found.append(address)
    return found


def test_server_runs_as_an_unprivileged_user(pg_server):
    with psycopg.connect(pg_server.url()) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "postgres"
    pids = pg_server.processes()
    assert len(pids) >= 4  # the postmaster, checkpointer, WAL writer, ...: all of them checked
    uids = {uid_of(pid) for pid in pids} - {None}
    if os.geteuid() == 0:
        assert uids == {pwd.getpwnam(pg.TEST_USER).pw_uid} and 0 not in uids
        assert pg_server.data.stat().st_uid == pwd.getpwnam(pg.TEST_USER).pw_uid
    else:
        assert uids == {os.geteuid()}
    assert pg_server.data.stat().st_mode & 0o777 == 0o700


def test_server_listens_on_loopback_only(pg_server):
    assert listening(pg_server.port) == ["0100007F"]  # 127.0.0.1, no IPv6, no wildcard
    with psycopg.connect(pg_server.url()) as conn:
        assert conn.execute("SELECT host(inet_server_addr())").fetchone()[0] == "127.0.0.1"
        assert conn.execute("SHOW unix_socket_directories").fetchone()[0] == str(pg_server.root)


def test_binaries_come_from_the_os_packages_not_path(monkeypatch):
    assert str(pg.find_bindir()).startswith("/usr/lib/postgresql/")
    monkeypatch.setattr(pg, "PG_GLOB", "/nonexistent/postgresql/*/bin")
    with pytest.raises(PostgresNotInstalled, match="install postgresql from the OS packages: make test does it"):
        pg.find_bindir()


SEEN_URLS: set[str] = set()


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_a_fresh_empty_database(pg_url, run):
    assert pg_url not in SEEN_URLS
    SEEN_URLS.add(pg_url)
    assert pg_url.rsplit("/", 1)[1].startswith("t_")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert tables.fetchone()[0] == 0
        conn.execute("CREATE TABLE marker (run INT)")  # the other run would fail here if it saw this database
        conn.execute("INSERT INTO marker VALUES (%s)", [run])


def test_dropping_a_database_ends_sessions_left_open(pg_server):
    name = pg_server.create_database()
    leftover = psycopg.connect(pg_server.url(name))  # a test that forgot to close
    pg_server.drop_database(name)
    with psycopg.connect(pg_server.url()) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name]).fetchone()[0] == 0
    leftover.close()


def test_committed_rows_survive_a_kill_and_restart(own_pg_server):
    server = own_pg_server
    url = server.url(server.create_database())
    with psycopg.connect(url, autocommit=True) as conn:
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            assert conn.execute(f"SHOW {name}").fetchone()[0] == "on"
        conn.execute("CREATE TABLE rows (n INT)")
        for n in range(200):
            conn.execute("INSERT INTO rows VALUES (%s)", [n])  # each its own commit, acknowledged
        pids = server.processes()
        server.kill()  # right after the last acknowledgement
    assert not server.running and len(pids) >= 4 and not any(alive(pid) for pid in pids)
    server.restart()
    assert "not properly shut down; automatic recovery in progress" in server.log_text()  # a crash, not a stop
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*), max(n) FROM rows").fetchone() == (200, 199)


def test_close_stops_the_server_and_removes_its_directory():
    server = PostgresServer()
    server.start()
    pids, root, port = server.processes(), server.root, server.port
    assert (root / "data" / "PG_VERSION").exists() and (root / pg.LOG_NAME).exists()
    server.close()
    assert pids and not any(alive(pid) for pid in pids) and not root.exists()
    with pytest.raises(OSError):
        socket.create_connection((pg.HOST, port), timeout=1).close()
    server.close()  # twice is fine


def test_a_server_that_will_not_start_says_why():
    server = PostgresServer(settings={"max_connections": "plenty"})
    try:
        with pytest.raises(PostgresFailed, match=r"(?s)postgres exited.*max_connections"):
            server.start()
        assert not server.running
    finally:
        server.close()
    assert not server.root.exists()


def test_fast_mode_is_opt_in():
    honest, fast = PostgresServer(), PostgresServer(fast=True)
    try:
        assert {honest.settings[k] for k in ("fsync", "synchronous_commit", "full_page_writes")} == {"on"}
        assert {fast.settings[k] for k in ("fsync", "synchronous_commit", "full_page_writes")} == {"off"}
    finally:
        honest.close()
        fast.close()


def test_store_url_is_one_the_store_accepts(store_url, request):
    backend = request.node.callspec.params["store_url"]
    dialect, target = parse_url(store_url)
    assert dialect == backend
    if backend == "sqlite":
        assert store_url.startswith("sqlite:////") and Path(target).is_absolute() and Path(target).parent.is_dir()
    else:
        with psycopg.connect(target) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
