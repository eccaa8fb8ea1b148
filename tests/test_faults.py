"""Faults, done for real: real `zoolab serve` processes on a real SQLite file (and, for a
worker killed mid-epoch, on a real PostgreSQL server too), training on real MNIST/CIFAR-10,
killed with real signals.

    ZOOLAB_DATA_DIR=/work/shared/data ZOOLAB_DOWNLOAD=false .venv/bin/python -m pytest tests/test_faults.py -q -x

- a worker SIGKILLed mid-epoch: the supervisor requeues its run at once, a new worker
  resumes it from its last finished epoch; no epoch is lost or written twice;
- the server SIGKILLed mid-run: its worker lives on and keeps writing; a restarted server
  shows everything, and an event stream resumed with Last-Event-ID misses nothing;
- the whole stack stopped with SIGTERM (with a live stream open) and started again: queued
  runs stay queued and are trained, the running run is requeued and resumes;
- runs that fail (loss NaN, out of memory, a truncated raw or .gz dataset file, a missing
  one) fail with a clear message, and the same worker process takes the next run, which
  finishes.
"""

import contextlib
import gzip
import json
import os
import re
import resource
import signal
import threading
from pathlib import Path

import httpx
import pytest

from tests.stack import DATA_DIR, QUICK_RUN, TERMINAL, Stack, cmdline, group_pids, pid_alive, sse_events, wait_for

# Progress reports several times per epoch, so "mid-epoch" is observable; fast heartbeats.
FAST = {"ZOOLAB_PROGRESS_SECONDS": "0.3", "ZOOLAB_HEARTBEAT_SECONDS": "0.5"}
# Long enough to be killed mid-way: the full 60k train set, about 1-2 s per epoch on this
# 2-core CPU (much more when other work shares it; the waits allow for that).
# Long enough (well over 5 s on this CPU) to be stopped mid-way even when the machine is idle.
LONG_RUN = {"model": "mnist-3fc-2bn-51k", "epochs": 12, "test_subset": 2000}
EPOCHS = list(range(1, LONG_RUN["epochs"] + 1))
EPOCH_KEYS = {"train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_seconds",
              "images_per_second", "peak_memory_bytes", "wall_seconds"}


def mid_run(run: dict) -> bool:
    return 1 <= run["epochs_done"] < run["epochs_total"]


def wait_mid_epoch(stack: Stack, run_id: int) -> dict:
    """The run running with at least one epoch done and more to go; then, if it shows up
    within a couple of seconds, a moment at which the next epoch has reported progress."""
    running = stack.wait_run(run_id, "running", where=mid_run, timeout=180)
    try:
        return stack.wait_run(run_id, "running", timeout=2, every=0.05,
                              where=lambda r: mid_run(r) and r["epoch_progress"] > 0)
    except TimeoutError:  # epochs too short to catch one mid-way: between epochs then
        return running


def status_events(stack: Stack, run_id: int) -> list[tuple[int, dict]]:
    return [(i, json.loads(d)) for i, d in stack.query(
        "SELECT id, data FROM event WHERE run_id = ? AND kind = 'status' ORDER BY id", run_id)]


def epoch_events(stack: Stack, run_id: int) -> list[tuple[int, int]]:
    """(event id, epoch) of every epoch event of the run, in order."""
    return [(i, json.loads(d)["epoch"]) for i, d in stack.query(
        "SELECT id, data FROM event WHERE run_id = ? AND kind = 'epoch' ORDER BY id", run_id)]


def assert_each_epoch_once(stack: Stack, run_id: int, epochs: int) -> None:
    """Exactly one Metric row per (epoch, key) for epochs 1..N, the same keys for each
    epoch, exactly one epoch event per epoch (an epoch trained twice would leave two:
    events are never deleted), and a sound database file."""
    rows = stack.query("SELECT epoch, key, COUNT(*) FROM metric WHERE run_id = ? GROUP BY epoch, key", run_id)
    assert {count for _, _, count in rows} == {1}, f"duplicate metric rows: {rows}"
    keys: dict[int, set[str]] = {}
    for epoch, key, _ in rows:
        keys.setdefault(epoch, set()).add(key)
    assert sorted(keys) == list(range(1, epochs + 1))
    assert all(k == EPOCH_KEYS for k in keys.values()), keys
    assert [e for _, e in epoch_events(stack, run_id)] == list(range(1, epochs + 1))
    assert stack.integrity_check() == "ok"


def resumed_from(stack: Stack, run: dict) -> list[int]:
    """The first epoch of each attempt at the run, from the worker log lines."""
    pattern = rf"run {run['id']}: {re.escape(run['model'])} for {run['epochs_total']} epochs \(from epoch (\d+)\)"
    return [int(m) for m in re.findall(pattern, stack.log())]


# --- a worker killed ------------------------------------------------------------------

@pytest.mark.timeout(300)
@pytest.mark.both_databases
def test_worker_sigkill_mid_epoch_resumes_from_last_finished_epoch(tmp_path, database_url):
    with Stack(tmp_path, env=FAST, database_url=database_url) as stack:
        run_id = stack.post_run(**LONG_RUN)["id"]
        running = wait_mid_epoch(stack, run_id)
        victim = next(w for w in stack.workers() if w["name"] == running["worker"])
        assert f"app.worker\0--name\0{victim['name']}" in "\0".join(cmdline(victim["pid"]))

        os.kill(victim["pid"], signal.SIGKILL)
        wait_for(lambda: not pid_alive(victim["pid"]), 30, "the killed worker to be gone")
        # The dead worker can write nothing more: this is its last finished epoch.
        (killed_at,), = stack.query("SELECT epochs_done FROM run WHERE id = ?", run_id)
        assert 1 <= killed_at < LONG_RUN["epochs"]

        done = stack.wait_run(run_id, "finished", timeout=240)
        assert done["epochs_done"] == LONG_RUN["epochs"] and done["attempts"] == 2
        assert done["worker"] != victim["name"] and done["error"] is None
        assert done["has_artifacts"] and done["final_test_acc"] > 0.5

        # The supervisor requeued the run at once, naming the cause ...
        requeued = [(i, d) for i, d in status_events(stack, run_id) if d["status"] == "queued" and d.get("error")]
        assert len(requeued) == 1, status_events(stack, run_id)
        requeue_id, requeue = requeued[0]
        assert "worker process died (exit code -9)" in requeue["error"]
        assert victim["name"] in requeue["error"]
        # ... and the next worker went on from the next epoch: epochs up to the kill were
        # written before it, the rest after it, none twice.
        for event_id, epoch in epoch_events(stack, run_id):
            assert (event_id < requeue_id) == (epoch <= killed_at), (epoch, killed_at)
        assert resumed_from(stack, done) == [1, killed_at + 1]
        assert_each_epoch_once(stack, run_id, LONG_RUN["epochs"])
        assert [e["epoch"] for e in stack.get(f"/runs/{run_id}/metrics").json()["epochs"]] == EPOCHS

        workers = {w["name"]: w for w in stack.workers()}
        assert workers[victim["name"]]["status"] == "stopped" and not workers[victim["name"]]["alive"]
        assert workers[done["worker"]]["alive"] and workers[done["worker"]]["pid"] != victim["pid"]
        assert stack.get("/health").json()["workers_alive"] == 1


# --- the server killed ----------------------------------------------------------------

def _last_event_id(stack: Stack, run_id: int) -> int:
    return stack.query("SELECT COALESCE(MAX(id), 0) FROM event WHERE run_id = ?", run_id)[0][0]


@pytest.mark.timeout(300)
def test_server_sigkill_worker_lives_on_and_streams_resume_with_last_event_id(tmp_path):
    first = Stack(tmp_path, env=FAST).start()
    try:
        run_id = first.post_run(**LONG_RUN)["id"]
        timeout = httpx.Timeout(30, read=90)
        before: list[dict] = []
        with first.client(timeout=timeout) as c, \
                c.stream("GET", f"/runs/{run_id}/events", params={"last_event_id": 0}) as response:
            assert response.status_code == 200
            for event in sse_events(response):
                before.append(event)
                if event["event"] == "epoch":
                    break
        last_id = before[-1]["id"]
        worker = next(w for w in first.workers() if w["name"] == first.run(run_id)["worker"])

        first.proc.kill()
        first.proc.wait(10)
        with pytest.raises(httpx.TransportError):
            httpx.get(first.url + "/health", timeout=5)
        # The supervisor thread died with the server; the worker subprocess did not, and
        # it keeps training and writing with no server at all.
        assert pid_alive(worker["pid"]) and "app.worker" in cmdline(worker["pid"])
        written = _last_event_id(first, run_id)
        wait_for(lambda: _last_event_id(first, run_id) > written, 90,
                 "the orphaned worker to write more events while the server is down")
        assert pid_alive(worker["pid"])

        # The restarted server, on the same port and database, sees the orphaned worker.
        with Stack(tmp_path, port=first.port, worker=False).start(workers=1) as second:
            after: list[dict] = []
            with second.client(timeout=timeout) as c, \
                    c.stream("GET", f"/runs/{run_id}/events", headers={"Last-Event-ID": str(last_id)}) as response:
                assert response.status_code == 200
                for event in sse_events(response):
                    after.append(event)
                    if event["event"] == "status" and event["data"]["status"] in TERMINAL:
                        break
            assert after[-1]["data"]["status"] == "finished"

            # Nothing missing, nothing twice: both streams together are exactly the run's
            # events in the table, in order.
            table = [i for (i,) in second.query("SELECT id FROM event WHERE run_id = ? ORDER BY id", run_id)]
            assert [e["id"] for e in before] == [i for i in table if i <= last_id]
            assert [e["id"] for e in after] == [i for i in table if i > last_id]
            assert [e["data"]["epoch"] for e in before + after if e["event"] == "epoch"] == EPOCHS

            # The restarted server shows everything the orphan wrote.
            run = second.run(run_id)
            assert run["status"] == "finished" and run["epochs_done"] == len(EPOCHS) and run["worker"] == worker["name"]
            assert [e["epoch"] for e in second.get(f"/runs/{run_id}/metrics").json()["epochs"]] == EPOCHS
            assert second.get(f"/runs/{run_id}/artifacts").status_code == 200
            assert second.get(f"/runs/{run_id}/checkpoint").status_code == 200
            assert_each_epoch_once(second, run_id, len(EPOCHS))
    finally:
        first.close()  # ends the orphaned worker too (same process group)
    wait_for(lambda: not pid_alive(worker["pid"]), 30, "the orphaned worker to be ended")


# --- the whole stack stopped ----------------------------------------------------------

@pytest.mark.timeout(300)
def test_sigterm_stops_whole_stack_and_restart_resumes_queue(tmp_path):
    first = Stack(tmp_path, env=FAST).start()
    stream_open, stream_ended = threading.Event(), threading.Event()
    try:
        long_id = first.post_run(**LONG_RUN)["id"]
        queued_ids = [first.post_run(**QUICK_RUN, name=f"waiting {i}")["id"] for i in range(2)]
        wait_mid_epoch(first, long_id)

        def watch():  # a dashboard left open must not keep the server up
            try:
                with httpx.stream("GET", first.url + "/events", timeout=httpx.Timeout(10, read=120)) as r:
                    stream_open.set()
                    for _ in sse_events(r):
                        pass
            except httpx.HTTPError:
                pass
            stream_ended.set()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        assert stream_open.wait(30), "the event stream did not open"

        first.signal(signal.SIGTERM)
        first.wait_exit(60)
        wait_for(lambda: not group_pids(first.pid), 30, "the worker to exit with the server")
        assert stream_ended.wait(10), "the open event stream was not closed by the shutdown"

        # Stopped: the running run went back to the queue keeping its finished epochs.
        rows = {i: (status, done, error) for i, status, done, error in
                first.query("SELECT id, status, epochs_done, error FROM run")}
        status, stopped_at, error = rows[long_id]
        assert status == "queued" and 1 <= stopped_at < LONG_RUN["epochs"], rows
        assert "worker shut down" in error and "requeued to resume" in error
        assert all(rows[i][:2] == ("queued", 0) for i in queued_ids), rows
        assert first.query("SELECT status FROM worker") == [("stopped",)]
        assert first.integrity_check() == "ok"
    finally:
        first.close()

    with Stack(tmp_path, env=FAST) as second:
        for run_id in [long_id, *queued_ids]:
            second.wait_run(run_id, "finished", timeout=240)
        long = second.run(long_id)
        assert long["epochs_done"] == LONG_RUN["epochs"] and long["error"] is None
        assert resumed_from(second, long) == [1, stopped_at + 1]
        assert_each_epoch_once(second, long_id, LONG_RUN["epochs"])
        for run_id in queued_ids:
            assert_each_epoch_once(second, run_id, 1)
        # The queue kept its order: the requeued (oldest) run was taken first.
        started = {r["id"]: r["started_at"] for r in second.get("/runs").json()["items"]}
        assert started[long_id] <= min(started[i] for i in queued_ids)


# --- runs that fail; the worker lives on ----------------------------------------------

# The worker of these tests has its address space capped (RLIMIT_AS), so an out-of-memory
# run is a real allocation failure of a real worker without endangering the shared machine.
MEMORY_CAP = 7 * 2**30


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    """A server without a worker of its own, one memory-capped worker process, and a data
    dir of links to the real dataset files that a test may damage (and must restore)."""
    root = tmp_path_factory.mktemp("faults-failing")
    data = root / "data"
    for folder in ("MNIST/raw", "cifar-10-batches-bin"):
        (data / folder).mkdir(parents=True)
        for f in (Path(DATA_DIR) / folder).iterdir():
            (data / folder / f.name).symlink_to(f)
    stack = Stack(root, worker=False, data_dir=data, env=FAST).start()
    try:
        worker = stack.spawn_worker("capped-worker", preexec_fn=_cap_memory)
        wait_for(lambda: stack.get("/health").json()["workers_alive"] == 1, 90, "the capped worker")
        yield stack, worker, data
    finally:
        stack.close()


def fails_then_worker_lives_on(failing, body: dict) -> dict:
    """Queue `body`, expect it to fail; the same worker process then finishes a quick run."""
    stack, worker, _ = failing
    failed = stack.wait_run(stack.post_run(**body)["id"], "failed", timeout=180)
    assert failed["worker"] == "capped-worker"
    assert worker.poll() is None, "the worker died with the run"
    after = stack.wait_run(stack.post_run(**QUICK_RUN)["id"], "finished", timeout=120)
    assert after["worker"] == "capped-worker" and after["final_test_acc"] > 0.5
    assert worker.poll() is None
    assert stack.get("/health").json()["workers_alive"] == 1
    return failed


@contextlib.contextmanager
def replaced(link: Path, content: bytes | None):
    """The data file `link` (a symlink) replaced by `content`, or missing if None; restored after."""
    target = link.resolve()
    link.unlink()
    if content is not None:
        link.write_bytes(content)
    try:
        yield
    finally:
        link.unlink(missing_ok=True)
        link.symlink_to(target)


@contextlib.contextmanager
def gzipped_and_truncated(link: Path):
    """`link` replaced by a truncated `<name>.gz` (the layout torchvision downloads)."""
    packed = gzip.compress(link.read_bytes(), compresslevel=1)
    gz = link.with_name(link.name + ".gz")
    with replaced(link, None):
        gz.write_bytes(packed[:len(packed) // 3])
        try:
            yield
        finally:
            gz.unlink()


# A worker keeps each dataset it loaded in memory, so all dataset damage is tried in one
# test, first in this module, before any run of the module loads MNIST or CIFAR-10.

@pytest.mark.timeout(300)
def test_damaged_or_missing_dataset_files_fail_naming_them(failing):
    stack, worker, data = failing
    mnist = data / "MNIST/raw/t10k-images-idx3-ubyte"
    cifar = data / "cifar-10-batches-bin/test_batch.bin"
    cifar_run = {"model": "cifar-conv5-pool-fc-2k", "epochs": 1, "train_subset": 1000, "test_subset": 500}

    def fails(body: dict, damage) -> str:
        with damage:
            failed = stack.wait_run(stack.post_run(**body)["id"], "failed", timeout=180)
        assert failed["worker"] == "capped-worker" and failed["traceback"] is None
        assert worker.poll() is None, "the worker died with the run"
        return failed["error"]

    with open(mnist, "rb") as f:
        head = f.read(1_000_016)  # the header and 1/8 of the images
    error = fails(QUICK_RUN, replaced(mnist, head))
    assert error.startswith(f"{mnist} is damaged or truncated: 1000016 bytes, expected 7840016"), error

    error = fails(QUICK_RUN, gzipped_and_truncated(mnist))
    assert error.startswith(f"{mnist}.gz is damaged or truncated"), error

    error = fails(cifar_run, replaced(cifar, None))
    assert "missing test_batch.bin" in error and str(cifar.parent) in error, error
    assert "data_batch" not in error  # only the missing file is named

    # Files restored: the same worker process trains both datasets.
    for body in (QUICK_RUN, cifar_run):
        done = stack.wait_run(stack.post_run(**body)["id"], "finished", timeout=180)
        assert done["worker"] == "capped-worker"
    assert worker.poll() is None


@pytest.mark.timeout(300)
def test_loss_nan_fails_with_message(failing):
    # SGD (Nesterov momentum 0.9) at lr=100 blows a 3-layer ReLU net up within epoch 1.
    failed = fails_then_worker_lives_on(failing, {"model": "mnist-3fc-51k", "optimizer": "sgd", "lr": 100.0,
                                                  "epochs": 2, "train_subset": 2000, "test_subset": 1000})
    assert failed["error"] == "loss became NaN at epoch 1"
    assert failed["epochs_done"] == 0


@pytest.mark.timeout(300)
def test_out_of_memory_fails_with_message(failing):
    # One batch of all 50,000 CIFAR-10 images through the ResNet needs a single 13 GB
    # activation: more than the worker's capped address space (and than is safe here).
    failed = fails_then_worker_lives_on(failing, {"model": "cifar-resnet-6.6m", "batch_size": 65536,
                                                  "epochs": 1})
    assert failed["error"].startswith("out of memory on cpu with batch size 65536: lower batch_size"), \
        failed["error"]
    assert "can't allocate memory" in failed["error"]
