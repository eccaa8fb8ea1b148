"""Storage faults, done for real on real `zoolab serve` processes: a database that cannot be
written for a while, a full disk where the checkpoints go, a damaged checkpoint.

    ZOOLAB_DATA_DIR=/work/shared/data ZOOLAB_DOWNLOAD=false .venv/bin/python -m pytest tests/test_storage_faults.py -q

A full disk is a real one: a small tmpfs mounted for the test (this needs root, which the
test machines give; elsewhere these tests skip) and filled up with a file. For the database,
its write-ahead log is first checkpointed and truncated (PRAGMA wal_checkpoint(TRUNCATE), as
any SQLite client may do), so the next commits need new blocks and fail with "database or
disk is full" — the same SQLITE_FULL / disk I/O errors a database on a full or failing disk
gives. Removing the file ends the fault.
"""

import contextlib
import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.stack import QUICK_RUN, Stack, pid_alive, wait_for
from tests.test_faults import FAST, assert_each_epoch_once


@contextlib.contextmanager
def tmpfs(folder: Path, size: str):
    """A RAM file system of `size` mounted on `folder` for the duration."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


@contextlib.contextmanager
def disk_full(folder: Path, database: Stack | None = None):
    """The file system of `folder` filled to the last byte while inside; `database`: that
    stack's SQLite log is truncated first, so that its next commits need space too."""
    if database is not None:  # (busy: a reader still uses the log; it lets go within moments)
        wait_for(lambda: database.query("PRAGMA wal_checkpoint(TRUNCATE)")[0][0] == 0, 30,
                 "the database's log to be checkpointed and truncated")
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(bytes(1 << 16))
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    try:
        yield
    finally:
        filler.unlink()


def _run_with_epochs(stack: Stack, epochs: int) -> dict:
    return stack.post_run(model="mnist-3fc-51k", epochs=epochs, train_subset=12000, test_subset=1000)


# --- the database cannot be written -----------------------------------------------------

@pytest.mark.timeout(300)
def test_database_write_failure_loses_no_worker_and_the_api_answers_503(tmp_path):
    """The database cannot be written for a while in the middle of a run: the API answers
    503 (JSON, Retry-After) to changes, the worker lives through it, and when its worker is
    killed meanwhile the supervisor — whose requeue of that run fails too — lives on, requeues
    the run once the database is back and starts a new worker; nothing is lost."""
    db_dir = tmp_path / "db"
    with tmpfs(db_dir, "16m"):
        with Stack(tmp_path, env=FAST, database_url=f"sqlite:///{db_dir / 'runs.db'}") as stack:
            run = _run_with_epochs(stack, 10)
            running = stack.wait_run(run["id"], "running", where=lambda r: r["epochs_done"] >= 1, timeout=180)
            worker = next(w for w in stack.workers() if w["name"] == running["worker"])
            with disk_full(db_dir, stack):
                def refused():
                    r = stack.api.post("/runs", json=QUICK_RUN)
                    assert r.status_code in (201, 503), (r.status_code, r.text)
                    return r if r.status_code == 503 else None

                r = wait_for(refused, 30, "POST /runs to be refused while the database cannot be written")
                assert r.headers["content-type"] == "application/json" and r.headers["retry-after"] == "5"
                assert r.json()["detail"].startswith("the database is unavailable (database or disk is full)")
                r = stack.api.post(f"/runs/{run['id']}/cancel")
                assert r.status_code == 503 and r.json()["detail"], r.text
                assert stack.get("/health").json()["ok"]  # reads go on

                # The worker meets the fault and lives on ...
                wait_for(lambda: "worker WARNING database unavailable (database or disk is full)" in stack.log(),
                         60, "the worker to meet the fault")
                assert pid_alive(worker["pid"])
                # ... until it is killed: the supervisor cannot requeue its run now, and goes on.
                os.kill(worker["pid"], signal.SIGKILL)
                wait_for(lambda: any(said in stack.log() for said in (
                    "supervising the worker failed; trying again", "Exception in thread worker-supervisor")),
                    60, "the supervisor to fail to requeue the run")
            done = stack.wait_run(run["id"], "finished", timeout=240)
            assert done["attempts"] == 2 and done["worker"] != worker["name"], done
            assert f"{worker['name']} died with exit code -9; released runs [{run['id']}]" in stack.log()
            health = stack.get("/health").json()
            assert health["workers_alive"] == 1
            after = stack.wait_run(stack.post_run(**QUICK_RUN)["id"], "finished", timeout=120)
            assert after["worker"] == done["worker"]
            assert_each_epoch_once(stack, run["id"], 10)


# --- the disk is full -------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_a_full_disk_fails_the_run_saying_so_and_where_and_leaves_no_partial_file(tmp_path):
    artifacts = tmp_path / "artifacts"
    with tmpfs(artifacts, "4m"), Stack(tmp_path, env=FAST) as stack:
        with disk_full(artifacts):
            run_id = stack.post_run(**QUICK_RUN)["id"]
            failed = stack.wait_run(run_id, "failed", timeout=180)
            folder = artifacts / str(run_id)
            assert failed["error"] == (f"disk full: no space left on the file system of {folder} while writing "
                                       "ckpt-1.pt; free some space there (or set ZOOLAB_ARTIFACT_DIR to a folder "
                                       "with room), then retry the run"), failed["error"]
            assert failed["traceback"] is None
            assert [p.name for p in folder.iterdir()] == []  # no partial ckpt-1.pt.tmp
        # Space again: the same worker trains the retried run.
        stack.post(f"/runs/{run_id}/retry")
        done = stack.wait_run(run_id, "finished", timeout=180)
        assert done["worker"] == failed["worker"] and done["error"] is None


# --- a damaged checkpoint ---------------------------------------------------------------

@pytest.mark.timeout(300)
def test_a_truncated_checkpoint_falls_back_to_the_one_before_and_the_run_says_so(tmp_path):
    with Stack(tmp_path, env=FAST) as stack:
        run_id = _run_with_epochs(stack, 30)["id"]
        stack.wait_run(run_id, "running", where=lambda r: r["epochs_done"] >= 2, timeout=180)
        stack.post(f"/runs/{run_id}/cancel")
        cancelled = stack.wait_run(run_id, "cancelled", timeout=60)
        last = cancelled["epochs_done"]
        folder = stack.artifact_dir / str(run_id)
        assert sorted(p.name for p in folder.glob("ckpt-*.pt")) == sorted([f"ckpt-{last - 1}.pt", f"ckpt-{last}.pt"])
        damaged = folder / f"ckpt-{last}.pt"
        damaged.write_bytes(damaged.read_bytes()[:damaged.stat().st_size // 2])

        stack.post(f"/runs/{run_id}/retry")
        done = stack.wait_run(run_id, "finished", timeout=240)
        assert done["error"] == (f"ckpt-{last}.pt is unreadable (PytorchStreamReader failed reading zip archive: "
                                 f"failed finding central directory): resumed after epoch {last - 1} from "
                                 f"ckpt-{last - 1}.pt"), done["error"]
        assert [e["epoch"] for e in stack.get(f"/runs/{run_id}/metrics").json()["epochs"]] == list(range(1, 31))
        rows = stack.query("SELECT epoch, key, COUNT(*) FROM metric WHERE run_id = ? GROUP BY epoch, key", run_id)
        assert {count for *_, count in rows} == {1}
        assert stack.get(f"/runs/{run_id}/checkpoint").status_code == 200
        notes = [d for (d,) in stack.query("SELECT data FROM event WHERE run_id = ? AND kind = 'status'", run_id)
                 if "unreadable" in d]
        assert len(notes) == 1  # the live feed said so too
