"""Shared fixtures: every test gets its own real database and artifact directory, and
trains on the real datasets of the data rule (app/settings.py, choose_data_dir: ZOOLAB_DATA_DIR,
else ./data, else ../shared/data), never downloading.

The database is a fresh SQLite file; a test or module marked `both_databases` runs twice,
`[sqlite]` and `[postgresql]`, the second on its own new database of one real PostgreSQL
server started for the session (tests/postgres.py). `-m "not postgresql"` leaves those out."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.stack import DATA_DIR, REPO, start_worker

os.environ["ZOOLAB_DATA_DIR"] = str(Path(DATA_DIR).resolve())
os.environ["ZOOLAB_DOWNLOAD"] = "false"
os.environ.pop("ZOOLAB_TOKEN", None)


def _reset_caches() -> None:
    from app.db import get_engine
    from app.settings import get_settings
    if get_engine.cache_info().currsize:
        get_engine().dispose()  # its pooled connections, not left for the garbage collector
    get_settings.cache_clear()
    get_engine.cache_clear()


def pytest_generate_tests(metafunc):
    if "database_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_databases"):
        metafunc.parametrize("database_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)],
                             indirect=True)


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the whole session, started when a test first needs it."""
    from tests.postgres import PostgresServer
    server = PostgresServer.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A new empty database of the session's PostgreSQL server, dropped after the test."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture
def database_url(request, tmp_path) -> str:
    """The test's own empty database: tmp_path/runs.db, or a new PostgreSQL database."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def zoolab_env(tmp_path, monkeypatch, database_url) -> dict[str, str]:
    """Environment of a fresh zoolab installation (database, artifacts) under tmp_path."""
    env = {"ZOOLAB_DATABASE_URL": database_url,
           "ZOOLAB_ARTIFACT_DIR": str(tmp_path / "artifacts"),
           "ZOOLAB_HEARTBEAT_SECONDS": "0.5", "ZOOLAB_PROGRESS_SECONDS": "0.5"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _reset_caches()
    yield {**os.environ, **env}
    _reset_caches()


@pytest.fixture
def client(zoolab_env):
    """The real application in-process (TestClient) on the test's own database."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    with TestClient(create_app()) as c:
        yield c


@pytest.fixture
def spawn_worker(zoolab_env):
    """Start real worker processes on the test's database; all are killed at the end."""
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> subprocess.Popen:
        p = start_worker(name, *args, env=zoolab_env, cwd=REPO)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
