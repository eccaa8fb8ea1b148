"""The terminal client against a real server and worker: launch, wait (a line per epoch, the
exit code says how the run ended), runs, show, cancel; the server's refusals as exit codes a
shell script can use; and `zoolab serve` refusing to listen beyond 127.0.0.1 without a token.

    .venv/bin/python -m pytest tests/test_cli.py -q
"""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.stack import DATA_DIR, REPO, Stack, free_port, wait_for

SMALL = ["--set", "train_subset=2000", "--set", "test_subset=2000"]


def zoolab(*args: str, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ZOOLAB_")}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=environment, cwd=REPO)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A server whose data folder holds MNIST only: a CIFAR-10 run fails, for the exit code."""
    root = tmp_path_factory.mktemp("cli")
    data = root / "data"
    data.mkdir()
    (data / "MNIST").symlink_to(Path(DATA_DIR) / "MNIST")
    with Stack(root, data_dir=data, env={"ZOOLAB_PROGRESS_SECONDS": "0.3"}) as s:
        yield s


def test_launch_then_wait_prints_each_epoch_and_exits_0(stack):
    launched = zoolab("launch", "mnist-logreg", "--epochs", "2", "--name", "from the shell", *SMALL,
                      "--url", stack.url)
    assert launched.returncode == 0, launched.stderr
    run_id = int(launched.stdout.strip())
    assert f"queued #{run_id}: from the shell (7,850 parameters)" in launched.stderr
    done = zoolab("wait", str(run_id), "--url", stack.url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines() + done.stderr.splitlines()
    assert any(line.startswith("epoch 1/2: test acc") for line in lines), lines
    assert any(line.startswith("epoch 2/2: test acc") for line in lines), lines
    assert f"#{run_id} finished — best test accuracy" in done.stdout
    run = stack.run(run_id)
    assert run["status"] == "finished" and run["config"]["train_subset"] == 2000
    shown = zoolab("show", str(run_id), "--url", stack.url)
    assert shown.returncode == 0 and f"#{run_id} from the shell — finished" in shown.stdout
    assert "changed from the preset: epochs 2, test_subset 2000, train_subset 2000" in shown.stdout
    listed = zoolab("runs", "--filter", "config.train_subset=2000", "--url", stack.url)
    assert listed.returncode == 0 and "from the shell" in listed.stdout


def test_a_failed_run_exits_1_with_its_reason(stack):
    launched = zoolab("launch", "cifar-conv5-pool-fc-2k", "--epochs", "1", *SMALL, "--wait", "--url", stack.url)
    assert launched.returncode == 1
    assert "failed: cifar10 not found" in launched.stderr


def test_a_cancelled_run_exits_3(stack):
    launched = zoolab("launch", "mnist-3fc-2bn-51k", "--epochs", "50", "--url", stack.url)
    run_id = int(launched.stdout.strip())
    stack.wait_run(run_id, "running", timeout=120)
    assert zoolab("cancel", str(run_id), "--url", stack.url).returncode == 0
    assert zoolab("wait", str(run_id), "--url", stack.url).returncode == 3


def test_refusals_are_exit_codes_with_the_servers_words(stack):
    refused = zoolab("launch", "mnist-logreg", "--set", "lr=-1", "--url", stack.url)
    assert refused.returncode == 2 and "lr: Input should be greater than 0" in refused.stderr
    bad_layers = zoolab("launch", "mnist-logreg", "--set", 'layers=["flatten", "linear 787 10"]', "--url", stack.url)
    assert bad_layers.returncode == 2 and "layers.1: layer 2 expects 787 features, gets 784" in bad_layers.stderr
    assert zoolab("launch", "mnist-logreg", "--set", "lr", "--url", stack.url).returncode == 2
    assert zoolab("show", "999999", "--url", stack.url).returncode == 2
    unreachable = zoolab("runs", "--url", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 5 and "no zoolab server answers" in unreachable.stderr


def test_a_server_with_a_token_needs_it_from_the_client(tmp_path):
    with Stack(tmp_path, worker=False, token="cli-token") as stack:
        denied = zoolab("launch", "mnist-logreg", "--url", stack.url)
        assert denied.returncode == 6 and "needs its token" in denied.stderr
        allowed = zoolab("launch", "mnist-logreg", "--url", stack.url, env={"ZOOLAB_TOKEN": "cli-token"})
        assert allowed.returncode == 0, allowed.stderr


def test_serving_beyond_loopback_needs_a_token_or_insecure(tmp_path):
    env = {"ZOOLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'runs.db'}"}
    refused = zoolab("serve", "--host", "0.0.0.0", "--port", str(free_port()), "--no-worker", env=env, timeout=60)
    assert refused.returncode == 2
    assert "refusing to serve on 0.0.0.0 without a token" in refused.stderr and "--insecure" in refused.stderr
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--host", "0.0.0.0", "--port", str(port),
                               "--no-worker", "--insecure"], env={**os.environ, **env}, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200, 60, "the server")
    finally:
        server.terminate()
        server.wait(30)
