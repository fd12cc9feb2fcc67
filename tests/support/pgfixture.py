"""Pytest fixtures for the center store's PostgreSQL backend (a plugin: `pytest_plugins` in conftest).

* `pg_server`: one throwaway server per test session (tests.support.pg), started only when a
  test asks for it; honest durability (fsync on). Do not stop or kill it in a test.
* `own_pg_server`: a server of the test's own, for tests that stop, kill or restart it.
* `pg_url`: a fresh empty database on `pg_server` per test, `postgresql://postgres@127.0.0.1:PORT/t_<hex>`,
  dropped afterwards (connections the test left open are ended).
* `store_url`: one test, both backends: parametrized "sqlite" / "postgresql" (test ids
  `[sqlite]`, `[postgresql]`, so `-k sqlite` runs only the first). It yields
  `sqlite:///ABSOLUTE/PATH/center.db` (a file not yet made, in the test's tmp_path) or a `pg_url`;
  center/db.py's parse_url takes both (and a plain path). The PostgreSQL server is started only
  when the "postgresql" case runs.
"""

import pytest

from tests.support.pg import PostgresServer

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_server():
    with PostgresServer() as server:
        yield server


@pytest.fixture
def own_pg_server():
    """A server of the test's own (started), for tests that stop, kill or restart it."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(pg_server):
    if not pg_server.running:  # a test that stopped the shared server by mistake does not sink the rest
        pg_server.start()
    name = pg_server.create_database()
    yield pg_server.url(name)
    if not pg_server.running:
        pg_server.start()
    pg_server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{(tmp_path / 'center.db').resolve()}"
    return request.getfixturevalue("pg_url")
