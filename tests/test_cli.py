"""The `zoolab` command as README (Commands) documents it, run as a real process.

    .venv/bin/python -m pytest tests/test_cli.py -q
"""

import subprocess
import sys

import pytest

from tests.stack import QUICK_RUN, REPO


def zoolab(*args: str, env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.mark.parametrize("command, options", [
    ("worker", ["--name", "--until-empty"]), ("serve", ["--host", "--port", "--token", "--no-worker"]),
    ("db", ["upgrade", "current", "revision"]), ("data", ["DATASET"]),
])
def test_every_command_has_help(zoolab_env, command, options):
    done = zoolab(command, "--help", env=zoolab_env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert all(option in done.stdout for option in options), done.stdout


def test_worker_with_a_name_until_the_queue_is_empty(client, zoolab_env):
    run_id = client.post("/runs", json=QUICK_RUN).json()["id"]
    done = zoolab("worker", "--name", "lab-gpu-1", "--until-empty", env=zoolab_env)
    assert done.returncode == 0, done.stderr
    run = client.get(f"/runs/{run_id}").json()
    assert run["status"] == "finished" and run["worker"] == "lab-gpu-1", run
    assert [(w["name"], w["status"]) for w in client.get("/workers").json()] == [("lab-gpu-1", "stopped")]
