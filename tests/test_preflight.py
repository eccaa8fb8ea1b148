"""The datasets check that `make run` and `make test` run first (`zoolab data`, app/preflight.py)
and the data rule it follows (app/settings.py, choose_data_dir), as a stranger meets them: a
`git clone` of this repository's committed HEAD in a temporary folder, no ../shared beside it,
no data anywhere, downloads off.

    .venv/bin/python -m pytest tests/test_preflight.py -q
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import choose_data_dir
from trainer.datafiles import DEBIAN_FASHION_DIR, find

REPO = Path(__file__).resolve().parent.parent
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
CIFAR_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)


@pytest.fixture
def clone(tmp_path) -> Path:
    """A clone of the checkout's HEAD in a folder of its own: no ../shared, no data, no .env."""
    target = tmp_path / "somewhere" / "zoolab"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True, timeout=120)
    assert not (target.parent / "shared").exists() and not (target / "data").exists()
    return target


def zoolab_data(clone: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """`zoolab data` (every dataset) run in the clone, with the clone's code, as a new user's
    shell would: HOME and caches in empty folders, no ZOOLAB_* variable but those in `env`."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOLAB_", "PYTHON", "XDG_"))}
    clean.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), TORCH_HOME=str(home / "torch"),
                 PYTHONPATH=str(clone), **env)
    return subprocess.run([sys.executable, "-m", "app.cli", "data"], cwd=clone, env=clean,
                          capture_output=True, text=True, timeout=120)


def assert_one_offline_message(result, data_dir: Path) -> str:
    assert result.returncode == 1, result
    assert result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    message = result.stderr
    assert message.count("zoolab: missing datasets") == 1
    assert "mnist, cifar10" in message and "downloads are off (ZOOLAB_DOWNLOAD=false)" in message
    # The files, where they were looked for, and how to provide them.
    for name in MNIST_FILES:
        assert f"{name}," in message or f"{name} (or .gz)" in message, name
    for name in CIFAR_FILES:
        assert name in message, name
    assert f"in {data_dir / 'MNIST' / 'raw'}" in message
    assert f"in {data_dir / 'cifar-10-batches-bin'}" in message
    assert f"in {data_dir / 'cifar-10-batches-py'}" in message
    assert "with downloads allowed (ZOOLAB_DOWNLOAD unset or true)" in message
    assert f"copy the files into {data_dir}" in message and "set ZOOLAB_DATA_DIR" in message
    # Fashion-MNIST has a system copy (Debian's package) that may be installed here.
    fashion_installed = find("fashion-mnist", Path("/nonexistent")) is not None
    assert ("fashion-mnist" in message.splitlines()[0]) == (not fashion_installed)
    assert (str(DEBIAN_FASHION_DIR) in message) == (not fashion_installed)
    assert not data_dir.exists() or not any(data_dir.iterdir()), "nothing may be fetched with downloads off"
    return message


def test_a_strangers_clone_without_data_stops_with_one_message(clone, tmp_path):
    result = zoolab_data(clone, tmp_path, ZOOLAB_DOWNLOAD="false")
    message = assert_one_offline_message(result, clone / "data")
    # Where the data rule looked, in order.
    assert "1. ZOOLAB_DATA_DIR  not set" in message
    assert f"2. ./data          {clone / 'data'} (does not exist)" in message
    assert f"3. ../shared/data  {clone.parent / 'shared' / 'data'} (does not exist)" in message


def test_an_empty_data_dir_from_the_environment(clone, tmp_path):
    empty = tmp_path / "empty-data"
    empty.mkdir()
    message = assert_one_offline_message(
        zoolab_data(clone, tmp_path, ZOOLAB_DOWNLOAD="false", ZOOLAB_DATA_DIR=str(empty)), empty)
    assert f"1. ZOOLAB_DATA_DIR  {empty}\n" in message and "2. ./data" not in message


def test_a_data_folder_with_the_datasets_passes(clone, tmp_path):
    data = Path(os.environ["ZOOLAB_DATA_DIR"])  # the real datasets, by the data rule (conftest.py)
    result = zoolab_data(clone, tmp_path, ZOOLAB_DOWNLOAD="false", ZOOLAB_DATA_DIR=str(data))
    assert result.returncode == 0, result.stderr
    assert f"mnist in {data / 'MNIST' / 'raw'}" in result.stdout
    assert f"cifar10 in {data / 'cifar-10-batches-bin'}" in result.stdout


def test_the_data_rule(tmp_path):
    repo, shared = tmp_path / "zoolab", tmp_path / "shared" / "data"
    repo.mkdir()
    assert choose_data_dir(None, repo) == repo / "data"            # nothing anywhere: ./data, to download into
    shared.mkdir(parents=True)
    assert choose_data_dir(None, repo) == shared                   # a workspace copy beside the checkout
    (repo / "data").mkdir()
    assert choose_data_dir(None, repo) == repo / "data"            # ./data comes first
    assert choose_data_dir("", repo) == repo / "data"              # an empty variable is unset
    assert choose_data_dir(str(tmp_path / "mine"), repo) == tmp_path / "mine"  # ZOOLAB_DATA_DIR wins
