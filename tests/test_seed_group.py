"""Seeds of one group trained together by a real worker process (app/seed_group.py) on a real
database and real MNIST: one worker takes the group whole and trains it stacked, yet each seed
is its own run with its own metrics, model.pt and cancellation, goes back to the queue when
the worker shuts down and resumes alone after the worker is killed; ZOOLAB_STACK_SEEDS=1
trains them one by one. That a stacked seed learns what it learns
alone is tests/test_stacked.py's; how the claim shares a group among workers, tests/test_queue.py's.

    .venv/bin/python -m pytest tests/test_seed_group.py -q
"""

import io
import json
import signal
import time
from datetime import datetime

import pytest
import torch

from tests.stack import query, wait_for

QUICK = {"model": "mnist-logreg", "epochs": 2, "train_subset": 2000, "test_subset": 1000}
# Epochs of a second or so for three seeds stacked on one thread: long enough to act mid-group.
LONGER = {"model": "mnist-3fc-2bn-51k", "train_subset": 8000, "test_subset": 1000}


def _launch(client, **body) -> list[int]:
    r = client.post("/runs", json={"seeds": 3, **body})
    assert r.status_code == 201, r.text
    return r.json()["run_ids"]


def _epoch_events(db: str, run_id: int) -> list[int]:
    return [json.loads(data)["epoch"] for (data,) in
            query(db, "SELECT data FROM event WHERE run_id = ? AND kind = 'epoch' ORDER BY id", run_id)]


@pytest.mark.both_databases
def test_a_group_trains_together_and_each_seed_stays_a_run_of_its_own(client, spawn_worker, zoolab_env):
    ids = _launch(client, **QUICK)
    assert spawn_worker("w-group", "--until-empty").wait(timeout=180) == 0
    runs = [client.get(f"/runs/{i}").json() for i in ids]
    assert [r["status"] for r in runs] == ["finished"] * 3, [r["error"] for r in runs]
    # Claimed in one transaction by one worker, and each knows the runs it trained with.
    assert {r["worker"] for r in runs} == {"w-group"} and len({r["started_at"] for r in runs}) == 1
    assert [r["versions"]["stacked_with"] for r in runs] == [[ids[1], ids[2]], [ids[0], ids[2]], [ids[0], ids[1]]]
    assert all(r["attempts"] == 1 and r["epochs_done"] == 2 for r in runs)
    db = zoolab_env["ZOOLAB_DATABASE_URL"]
    for run in runs:
        metrics = client.get(f"/runs/{run['id']}/metrics").json()["epochs"]
        assert [e["epoch"] for e in metrics] == [1, 2] and _epoch_events(db, run["id"]) == [1, 2]
        assert metrics[-1]["test_acc"] == pytest.approx(run["final_test_acc"])
        model = client.get(f"/runs/{run['id']}/checkpoint")
        saved = torch.load(io.BytesIO(model.content), weights_only=True)
        assert saved["config"]["seed"] == run["config"]["seed"]
        assert sum(w.numel() for w in saved["state_dict"].values()) == 7850
        confusion = client.get(f"/runs/{run['id']}/artifacts").json()["confusion_matrix"]
        assert sum(confusion[i][i] for i in range(10)) / 1000 == pytest.approx(run["final_test_acc"], abs=1e-4)
    assert len({r["final_test_acc"] for r in runs}) > 1  # three seeds, not one run three times


@pytest.mark.both_databases
def test_cancelling_one_seed_ends_only_that_seed(client, spawn_worker, zoolab_env):
    epochs = 12
    ids = _launch(client, **LONGER, epochs=epochs)
    worker = spawn_worker("w-cancel", "--until-empty")
    wait_for(lambda: client.get(f"/runs/{ids[1]}").json()["epochs_done"] >= 1, 120, "a finished epoch")
    assert client.post(f"/runs/{ids[1]}/cancel").json()["cancel_requested"] is True
    cancelled = wait_for(lambda: (r := client.get(f"/runs/{ids[1]}").json())["status"] == "cancelled" and r, 30,
                         "the seed to stop")
    assert worker.wait(timeout=240) == 0
    assert len(client.get(f"/runs/{ids[1]}/metrics").json()["epochs"]) == cancelled["epochs_done"] < epochs
    db = zoolab_env["ZOOLAB_DATABASE_URL"]
    (ended_event,), = query(db, "SELECT MAX(id) FROM event WHERE run_id = ? AND kind = 'status'", ids[1])
    for run_id in (ids[0], ids[2]):
        run = client.get(f"/runs/{run_id}").json()
        assert run["status"] == "finished" and run["epochs_done"] == epochs, run["error"]
        # It ended when it was cancelled, not when the group was done: the event ids order it
        # (timestamps have a second's resolution; a quiet machine trains several epochs a second).
        (last_epoch_event,), = query(db, "SELECT MAX(id) FROM event WHERE run_id = ? AND kind = 'epoch'", run_id)
        assert ended_event < last_epoch_event
        assert [e["epoch"] for e in client.get(f"/runs/{run_id}/metrics").json()["epochs"]] == list(range(1, epochs + 1))
        assert client.get(f"/runs/{run_id}/checkpoint").status_code == 200


def test_a_worker_shutting_down_gives_every_seed_back_to_the_queue(client, spawn_worker, zoolab_env):
    ids = _launch(client, **LONGER, epochs=20)
    worker = spawn_worker("w-stop")
    wait_for(lambda: all(client.get(f"/runs/{i}").json()["epochs_done"] >= 1 for i in ids), 120, "an epoch of each")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    for run_id in ids:
        run = client.get(f"/runs/{run_id}").json()
        assert run["status"] == "queued" and run["attempts"] == 0 and run["epochs_done"] >= 1
        assert run["error"] == "worker shut down (w-stop); requeued to resume"


@pytest.mark.timeout(300)
def test_a_killed_workers_seeds_resume_alone_from_their_own_checkpoints(client, spawn_worker, zoolab_env):
    ids = _launch(client, **LONGER, epochs=4)
    db = zoolab_env["ZOOLAB_DATABASE_URL"]
    # Killed right after the middle seed's epoch 2 is committed: the first seed is at epoch 2
    # too, the last still at epoch 1; the middle one's model.pt of epoch 2 is not written.
    zoolab_env["ZOOLAB_KILL_AT"] = f"epoch-committed:{ids[1]}:2"
    assert spawn_worker("w-killed", "--until-empty").wait(timeout=180) == -9
    del zoolab_env["ZOOLAB_KILL_AT"]
    assert [r for (r,) in query(db, "SELECT epochs_done FROM run ORDER BY id")] == [2, 2, 1]
    assert [r for (r,) in query(db, "SELECT status FROM run ORDER BY id")] == ["running"] * 3
    zoolab_env["ZOOLAB_STALE_SECONDS"] = "2"
    time.sleep(3)  # the dead worker's heartbeats are stale now
    assert spawn_worker("w-rescue", "--until-empty").wait(timeout=240) == 0
    for run_id in ids:
        run = client.get(f"/runs/{run_id}").json()
        assert run["status"] == "finished" and run["worker"] == "w-rescue" and run["attempts"] == 2, run["error"]
        assert "stacked_with" not in run["versions"]  # resumed alone
        assert _epoch_events(db, run_id) == [1, 2, 3, 4]  # no epoch trained twice: resumed, not restarted
        assert [e["epoch"] for e in client.get(f"/runs/{run_id}/metrics").json()["epochs"]] == [1, 2, 3, 4]
        assert client.get(f"/runs/{run_id}/checkpoint").status_code == 200


def test_with_stacking_off_the_seeds_train_one_by_one(client, spawn_worker, zoolab_env):
    ids = _launch(client, **QUICK)
    zoolab_env["ZOOLAB_STACK_SEEDS"] = "1"
    assert spawn_worker("w-alone", "--until-empty").wait(timeout=180) == 0
    runs = [client.get(f"/runs/{i}").json() for i in ids]
    assert all(r["status"] == "finished" and "stacked_with" not in r["versions"] for r in runs)
    for before, after in zip(runs, runs[1:]):
        assert datetime.fromisoformat(after["started_at"]) >= datetime.fromisoformat(before["finished_at"])
