"""Real worker processes on a real database, training real MNIST: a run's whole life,
two workers sharing one queue, cancellation, and runs whose worker vanished. The tests
of the queue run on SQLite and on PostgreSQL; the training speed check on SQLite only."""

import io
import json
import time
from collections import Counter
from datetime import timedelta

import pytest
import torch
from sqlalchemy import update
from sqlmodel import Session

from app import queue
from app.db import get_engine, writer
from app.models import Run, utcnow
from tests.stack import QUICK_FULL_TEST as QUICK_RUN
from tests.stack import query, sse_events, wait_for


def _sse_events(client, run_id: int, after: int = 0) -> list[tuple[int, str, dict]]:
    """Replay a run's event stream from `after` until it reaches a terminal status."""
    events = []
    with client.stream("GET", f"/runs/{run_id}/events", headers={"Last-Event-ID": str(after)}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for e in sse_events(r):
            events.append((e["id"], e["event"], e["data"]))
            if e["event"] == "status" and e["data"]["status"] in ("finished", "failed"):
                break
    return events


@pytest.mark.both_databases
def test_run_lifecycle_through_the_api(client, spawn_worker, zoolab_env):
    run = client.post("/runs", json={**QUICK_RUN, "epochs": 2, "name": "lifecycle"}).json()
    assert run["status"] == "queued"
    worker = spawn_worker("w-life", "--until-empty")
    assert worker.wait(timeout=180) == 0

    done = client.get(f"/runs/{run['id']}").json()
    assert done["status"] == "finished", done["error"]
    assert done["epochs_done"] == 2 and done["worker"] == "w-life" and done["attempts"] == 1
    assert done["final_test_acc"] >= 0.85 and done["best_test_acc"] >= done["final_test_acc"]
    assert done["device"].startswith("cpu") and done["versions"]["torch"] == torch.__version__
    assert done["total_seconds"] > 0 and done["images_per_second"] > 0

    metrics = client.get(f"/runs/{run['id']}/metrics").json()
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    for e in metrics["epochs"]:
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_seconds",
                    "images_per_second", "peak_memory_bytes", "wall_seconds"):
            assert e[key] is not None and e[key] >= 0, key
    assert metrics["epochs"][-1]["test_acc"] == pytest.approx(done["final_test_acc"])
    assert metrics["epochs"][1]["lr"] < metrics["epochs"][0]["lr"]  # ExponentialLR stepped per epoch

    artifacts = client.get(f"/runs/{run['id']}/artifacts").json()
    confusion = artifacts["confusion_matrix"]
    assert sum(map(sum, confusion)) == 10_000  # the full MNIST test set
    assert sum(confusion[i][i] for i in range(10)) / 10_000 == pytest.approx(done["final_test_acc"], abs=1e-4)
    first = artifacts["misclassified"][0]
    assert first["true"] != first["pred"]
    png = client.get(f"/runs/{run['id']}/misclassified/0.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    ckpt = client.get(f"/runs/{run['id']}/checkpoint")
    weights = torch.load(io.BytesIO(ckpt.content), weights_only=True)["state_dict"]
    assert sum(w.numel() for w in weights.values()) == 7850

    events = _sse_events(client, run["id"])
    ids = [e[0] for e in events]
    assert ids == sorted(ids)
    kinds = [(kind, data.get("status", data.get("epoch"))) for _, kind, data in events if kind != "progress"]
    assert kinds == [("status", "queued"), ("status", "running"), ("epoch", 1), ("epoch", 2),
                     ("status", "finished")]
    # status events carry the run as it is now; the stream replayed from the first event.
    assert events[0][2]["id"] == run["id"]
    workers = client.get("/workers").json()
    assert [w["name"] for w in workers] == ["w-life"] and workers[0]["status"] == "stopped"


def test_mnist_logreg_one_epoch_on_the_full_data(client, spawn_worker, zoolab_env):
    # (How fast: bench/, never a timed test.)
    run_id = client.post("/runs", json={"model": "mnist-logreg", "epochs": 1}).json()["id"]
    assert spawn_worker("w-full", "--until-empty").wait(timeout=300) == 0
    db = zoolab_env["ZOOLAB_DATABASE_URL"]  # the figures are in the database itself
    (status, acc), = query(db, "SELECT status, final_test_acc FROM run WHERE id = ?", run_id)
    (test_acc,), = query(db, "SELECT value FROM metric WHERE run_id = ? AND epoch = 1 AND key = 'test_acc'", run_id)
    assert status == "finished" and acc >= 0.90 and test_acc == pytest.approx(acc)


@pytest.mark.both_databases
def test_two_workers_share_ten_runs_and_train_each_exactly_once(client, spawn_worker, zoolab_env):
    ids = [client.post("/runs", json={**QUICK_RUN, "train_subset": 1000, "name": f"r{i}"}).json()["id"]
           for i in range(10)]
    workers = [spawn_worker(f"w{i}", "--until-empty") for i in (1, 2)]
    for w in workers:
        assert w.wait(timeout=240) == 0
    db = zoolab_env["ZOOLAB_DATABASE_URL"]
    rows = query(db, "SELECT id, status, attempts, worker FROM run ORDER BY id")
    claims = Counter(run_id for run_id, data in query(db, "SELECT run_id, data FROM event WHERE kind = 'status'")
                     if json.loads(data)["status"] == "running")
    per_epoch = query(db, "SELECT run_id, epoch, key, count(*) FROM metric GROUP BY run_id, epoch, key "
                          "HAVING count(*) > 1")
    epochs = query(db, "SELECT run_id, count(DISTINCT epoch) FROM metric GROUP BY run_id")
    assert [r[0] for r in rows] == ids
    assert all(r[1] == "finished" and r[2] == 1 and r[3] in ("w1", "w2") for r in rows), rows
    assert claims == {i: 1 for i in ids}  # claimed once each
    assert per_epoch == [] and dict(epochs) == {i: 1 for i in ids}


@pytest.mark.both_databases
def test_cancel_a_running_run_keeps_its_finished_epochs(client, spawn_worker):
    run_id = client.post("/runs", json={"model": "mnist-3fc-2bn-51k", "epochs": 200, "train_subset": 20000}).json()["id"]
    spawn_worker("w-cancel")
    wait_for(lambda: client.get(f"/runs/{run_id}").json()["epochs_done"] >= 1, 120, "a finished epoch")
    assert client.post(f"/runs/{run_id}/cancel").json()["cancel_requested"] is True
    cancelled_at = time.monotonic()
    run = wait_for(lambda: (r := client.get(f"/runs/{run_id}").json())["status"] == "cancelled" and r, 30,
                   "the run to stop")
    assert time.monotonic() - cancelled_at < 10
    epochs = client.get(f"/runs/{run_id}/metrics").json()["epochs"]
    assert len(epochs) == run["epochs_done"] >= 1
    # The worker lives on and takes the next run.
    next_id = client.post("/runs", json=QUICK_RUN).json()["id"]
    wait_for(lambda: client.get(f"/runs/{next_id}").json()["status"] == "finished", 120, "the next run")


@pytest.mark.both_databases
def test_a_run_whose_worker_vanished_is_requeued_and_resumed(client, spawn_worker, zoolab_env):
    run_id = client.post("/runs", json={**QUICK_RUN, "epochs": 2}).json()["id"]
    engine = get_engine()
    assert queue.claim(engine, "ghost").run_id == run_id  # a worker that claims, then dies silently
    with Session(writer(engine)) as s:
        s.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
        s.commit()
    assert spawn_worker("w-rescue", "--until-empty").wait(timeout=180) == 0
    run = client.get(f"/runs/{run_id}").json()
    assert run["status"] == "finished" and run["worker"] == "w-rescue" and run["attempts"] == 2
    statuses = [d["status"] for _, kind, d in _sse_events(client, run_id) if kind == "status"]
    assert statuses[:3] == ["queued", "running", "queued"]  # the reaper put it back


@pytest.mark.both_databases
def test_a_run_lost_too_often_fails_with_the_reason(client, zoolab_env, monkeypatch):
    run_id = client.post("/runs", json=QUICK_RUN).json()["id"]
    engine = get_engine()
    for attempt in range(3):
        assert queue.claim(engine, f"ghost{attempt}").run_id == run_id
        moved = queue.release_lost(engine, max_attempts=3, worker=f"ghost{attempt}")
        assert moved == [run_id]
    run = client.get(f"/runs/{run_id}").json()
    assert run["status"] == "failed" and "worker lost" in run["error"] and "3 attempts" in run["error"]
