"""Shared fixtures: every test gets its own real SQLite file and artifact directory, and
trains on the real datasets of the data rule (app/settings.py, choose_data_dir: ZOOLAB_DATA_DIR,
else ./data, else ../shared/data), never downloading."""

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
    get_settings.cache_clear()
    get_engine.cache_clear()


@pytest.fixture
def zoolab_env(tmp_path, monkeypatch) -> dict[str, str]:
    """Environment of a fresh zoolab installation (database, artifacts) under tmp_path."""
    env = {"ZOOLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'runs.db'}",
           "ZOOLAB_ARTIFACT_DIR": str(tmp_path / "artifacts"),
           "ZOOLAB_HEARTBEAT_SECONDS": "0.5", "ZOOLAB_PROGRESS_SECONDS": "0.5"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _reset_caches()
    yield {**os.environ, **env}
    _reset_caches()


@pytest.fixture
def client(zoolab_env):
    """The real application in-process (TestClient) on the test's own SQLite file."""
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
