"""Sweeps (issue 15), for real: a grid sweep and an Optuna (TPE) sweep train on real MNIST with a
real worker process; the median pruner stops the trials of a hopeless learning rate after their
first epoch, and `pruned` is a status of its own in the API and its filters; the study lives in
the same SQLite file as the runs; refusals are word for word and queue nothing; cancelling stops
a sweep; a worker killed mid-trial loses no trial, and the study counts every trial once.

    ZOOLAB_DATA_DIR=/work/shared/data ZOOLAB_DOWNLOAD=false .venv/bin/python -m pytest tests/test_sweeps.py -q
"""

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from app.space import MAX_RUNS
from tests.stack import Stack, pid_alive, wait_for

# Seconds per trial on this 2-core CPU: 3,000 training images, evaluated on 2,000.
SMALL = {"model": "mnist-2fc-relu-55k", "epochs": 3, "train_subset": 3000, "test_subset": 2000}
HOPELESS_LR = 1e-6  # Adam at this rate leaves the network near chance after an epoch


def _db(zoolab_env) -> Path:
    return Path(zoolab_env["ZOOLAB_DATABASE_URL"].removeprefix("sqlite:///"))


def study_trials(db: Path, study_name: str) -> dict[int, tuple[str, float | None]]:
    """{trial number: (state, value)} of a study, read from the database file behind Optuna."""
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT t.number, t.state, v.value FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "LEFT JOIN trial_values v ON v.trial_id = t.trial_id WHERE s.study_name = ? ORDER BY t.number",
            (study_name,)).fetchall()
    numbers = [n for n, _, _ in rows]
    assert len(numbers) == len(set(numbers)), f"a trial counted twice: {rows}"
    return {n: (state, value) for n, state, value in rows}


def intermediate(db: Path, study_name: str, number: int) -> dict[int, float]:
    with sqlite3.connect(db) as con:
        return dict(con.execute(
            "SELECT i.step, i.intermediate_value FROM trial_intermediate_values i JOIN trials t ON t.trial_id = "
            "i.trial_id JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = ? AND t.number = ?",
            (study_name, number)).fetchall())


def wait_sweep(get, sweep_id: int, timeout: float = 240, watch=lambda sweep: None) -> dict:
    """Poll GET /sweeps/{id} until the sweep ends; `watch` sees every poll."""
    def done():
        sweep = get(f"/sweeps/{sweep_id}").json()
        watch(sweep)
        return sweep if sweep["status"] != "running" else None
    return wait_for(done, timeout, f"sweep {sweep_id} to end", every=0.5)


def _post(client, body: dict) -> dict:
    r = client.post("/sweeps", json=body)
    assert r.status_code == 201, r.text
    return r.json()


# --- refusals ---------------------------------------------------------------------------------

BASE = {"model": "mnist-3fc-2bn-51k", "epochs": 2}
LR = {"lr": {"low": 0.001, "high": 0.1, "log": True}}
REFUSED = [
    ({"space": {}, "budget": 5}, ["body", "space"],
     'the space is empty: give at least one parameter to search, e.g. {"lr": {"low": 0.0001, "high": 0.1, "log": true}}'),
    ({"space": {"lr": {"low": 0.001, "high": 0.1, "points": 11}, "batch_size": {"low": 16, "high": 256, "points": 10}},
      "sampler": "grid"}, ["body", "space"],
     f"the grid has 110 points (11 × 10); one sweep queues at most {MAX_RUNS} runs"),
    ({"space": LR, "budget": 101}, ["body", "budget"], f"budget 101: one sweep queues at most {MAX_RUNS} runs"),
    ({"space": LR}, ["body", "budget"], f"a tpe sweep needs a budget: how many trials, 1 to {MAX_RUNS}"),
    ({"space": {"learning_rate": {"low": 0.001, "high": 0.1}}, "budget": 5}, ["body", "space", "learning_rate"],
     "unknown parameter 'learning_rate'; a sweep searches the run config's keys (epochs, batch_size, optimizer, lr, "
     "momentum, weight_decay, scheduler, gamma, power, total_iters, grad_clip, augment, augment_from_epoch, "
     "normalize, seed, train_subset, test_subset) and layer widths (layers.K; layers.2, layers.5)"),
    ({"space": {"lr": {"low": 0.001, "high": 200}}, "budget": 5}, ["body", "space", "lr"],
     "lr: high 200 is outside lr's limits (0, 100]"),
    ({"space": {"momentum": {"low": 0.5, "high": 1}}, "budget": 5}, ["body", "space", "momentum"],
     "momentum: high 1 is outside momentum's limits [0, 1)"),
    ({"space": {"batch_size": {"choices": [1, 64]}}, "budget": 5}, ["body", "space", "batch_size"],
     "batch_size 1: batch_size 1 cannot train this network: its BatchNorm layers need at least 2 images per batch"),
    ({"space": {"optimizer": {"choices": ["sgd", "rmsprop"]}}, "budget": 5}, ["body", "space", "optimizer"],
     "optimizer: 'rmsprop' is not one of sgd, adam, adamw"),
    ({"space": {"layers.9": {"low": 16, "high": 64}}, "budget": 5}, ["body", "space", "layers.9"],
     "layers.9: the network has 8 layers (layers.1 to layers.8)"),
    ({"space": {"layers.3": {"low": 16, "high": 64}}, "budget": 5}, ["body", "space", "layers.3"],
     "layers.3: layer 3 (bn1d 60) has no width to search; widths: layers.2 (linear 784 60), layers.5 (linear 60 60)"),
    ({"space": {"layers.8": {"low": 16, "high": 64}}, "budget": 5}, ["body", "space", "layers.8"],
     "layers.8: layer 8 (linear 60 10) gives the classes: its width stays 10"),
    ({"space": {"layers.2": {"low": 16, "high": 100_000}}, "budget": 5}, ["body", "space", "layers.2"],
     "layers.2: high 100000 is outside the widths zoolab builds, 1..65,536"),
    # 784·7000 + 7000, 2·7000 (bn1d), 7000·7000 + 7000: too many once layer 5 is counted
    ({"space": {"layers.2": {"low": 16, "high": 7000}, "layers.5": {"low": 16, "high": 7000}}, "budget": 5},
     ["body", "space"], "layers.2 and layers.5 at their highest: layer 5 brings the network to 54,516,000 "
                        "parameters; the limit is 50,000,000"),
    ({"space": {"lr": {"low": 0.001, "high": 0.1}}, "sampler": "grid"}, ["body", "space", "lr"],
     "lr: a range in a grid sweep needs points (how many values from low to high)"),
    ({"space": {"lr": {"choices": [0.01, 0.1]}}, "sampler": "grid", "budget": 1}, ["body", "budget"],
     "budget 1 is below the grid's 2 points: a grid sweep runs them all (leave budget out, or make it 2)"),
    ({"base": {**BASE, "seeds": 3}, "space": LR, "budget": 5}, ["body", "base", "seeds"],
     "a sweep's trials take one seed each: search `seed` in the space instead"),
]


def test_refusals_name_the_problem_and_queue_nothing(client, zoolab_env):
    for body, loc, message in REFUSED:
        r = client.post("/sweeps", json={"base": BASE, **body})
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"] == [{"loc": loc, "msg": message, "type": "value_error"}], body
    assert client.get("/runs").json()["total"] == 0 and client.get("/sweeps").json() == []
    with sqlite3.connect(_db(zoolab_env)) as con:  # not even a study was made
        assert "studies" not in {t for (t,) in con.execute("SELECT name FROM sqlite_master")}


def test_reading_and_cancelling_what_does_not_exist(client):
    assert client.get("/sweeps/7").status_code == 404
    assert client.get("/sweeps/7").json() == {"detail": "sweep 7 not found"}
    assert client.post("/sweeps/7/cancel").status_code == 404
    assert client.get("/sweeps/space", params={"model": "nope"}).status_code == 422
    space = client.get("/sweeps/space", params={"model": "mnist-3fc-2bn-51k"}).json()
    assert [w["key"] for w in space["widths"]] == ["layers.2", "layers.5"]
    lr = next(k for k in space["keys"] if k["key"] == "lr")
    assert (lr["low"], lr["low_inclusive"], lr["high"], lr["value"]) == (0, False, 100, 0.005)


# --- a grid sweep, pruned ----------------------------------------------------------------------

@pytest.mark.timeout(400)
def test_a_grid_sweep_prunes_the_hopeless_lr(client, spawn_worker, zoolab_env):
    lrs = [0.003, 0.01, HOPELESS_LR]  # queued in this order: the good trials finish first
    sweep = _post(client, {"base": SMALL, "sampler": "grid", "pruner": "median", "name": "lr × width",
                           "space": {"lr": {"choices": lrs}, "layers.2": {"low": 16, "high": 64, "points": 3,
                                                                          "log": True}}})
    assert sweep["budget"] == 9 and sweep["progress"]["queued"] == 9 and len(sweep["run_ids"]) == 9
    runs = [client.get(f"/runs/{i}").json() for i in sweep["run_ids"]]
    points = [(lr, width) for lr in lrs for width in (16, 32, 64)]
    for n, (run, (lr, width)) in enumerate(zip(runs, points)):
        assert (run["sweep_id"], run["trial_number"], run["config"]["lr"]) == (sweep["id"], n, lr)
        # the width of layer 2 changed, and layer 4 follows it
        assert run["config"]["layers"] == ["flatten", f"linear 784 {width}", "relu", f"linear {width} 10"]
        assert run["params"] == 784 * width + width + width * 10 + 10
        assert run["name"] == f"lr × width · trial {n}: lr {lr:.3g}, layers.2 {width}"

    spawn_worker("w-grid")
    done = wait_sweep(client.get, sweep["id"])
    assert done["status"] == "finished" and done["finished_at"]
    runs = {r["id"]: r for r in (client.get(f"/runs/{i}").json() for i in sweep["run_ids"])}
    hopeless = [r for r in runs.values() if r["config"]["lr"] == HOPELESS_LR]
    for run in hopeless:  # stopped after the first of three epochs, with the reason
        assert run["status"] == "pruned" and run["epochs_done"] == 1, run
        assert run["error"].startswith("pruned after epoch 1 of 3: test accuracy "), run["error"]
        assert "below the median" in run["error"]
    assert not [r for r in runs.values() if r["status"] not in ("finished", "pruned")]
    finished = [r for r in runs.values() if r["status"] == "finished"]
    assert len(finished) >= 3 and all(r["epochs_done"] == 3 for r in finished)
    progress = done["progress"]
    assert progress == {"budget": 9, "trials": 9, "queued": 0, "running": 0, "finished": len(finished),
                        "pruned": 9 - len(finished), "failed": 0, "cancelled": 0}
    best = max(finished, key=lambda r: r["best_test_acc"])
    assert done["best"]["id"] == best["id"] == done["best_run_id"] and best["config"]["lr"] != HOPELESS_LR

    # pruned is a status of its own: filters, never counted as failed
    pruned_ids = sorted(r["id"] for r in runs.values() if r["status"] == "pruned")
    listed = client.get("/runs", params={"status": "pruned", "sort": "id", "order": "asc"}).json()
    assert [r["id"] for r in listed["items"]] == pruned_ids
    assert client.get("/runs", params={"status": "failed"}).json()["total"] == 0
    assert "pruned" in client.get("/runs.csv", params={"status": "pruned"}).text

    # the study, in the same database file as the runs, holds each trial once, as it ended
    db = _db(zoolab_env)
    trials = study_trials(db, done["study_name"])
    assert sorted(trials) == list(range(9))
    for run in runs.values():
        state, value = trials[run["trial_number"]]
        assert state == {"finished": "COMPLETE", "pruned": "PRUNED"}[run["status"]]
        if state == "COMPLETE":
            assert value == pytest.approx(run["best_test_acc"])
        metrics = client.get(f"/runs/{run['id']}/metrics").json()["epochs"]
        assert intermediate(db, done["study_name"], run["trial_number"]) == pytest.approx(
            {e["epoch"]: e["test_acc"] for e in metrics})

    detail = client.get(f"/sweeps/{sweep['id']}").json()
    assert [t["number"] for t in detail["trials"]] == list(range(9))
    for t in detail["trials"]:
        run = runs[t["run_id"]]
        assert t["params"] == {"lr": run["config"]["lr"], "layers.2": int(run["config"]["layers"][1].split()[2])}
        assert t["status"] == run["status"] and t["state"] == trials[t["number"]][0].lower()
    importances = client.get(f"/sweeps/{sweep['id']}/importances").json()
    assert importances["evaluator"] == "PED-ANOVA" and importances["trials"] == len(finished)
    assert set(importances["importances"]) <= {"lr", "layers.2"} and importances["importances"]
    assert sum(importances["importances"].values()) == pytest.approx(1)


# --- an Optuna sweep -----------------------------------------------------------------------------

@pytest.mark.timeout(400)
def test_a_tpe_sweep_asks_as_trials_finish_and_never_beyond_its_budget(client, spawn_worker, zoolab_env):
    budget = 8
    sweep = _post(client, {"base": {**SMALL, "epochs": 2}, "sampler": "tpe", "budget": budget, "seed": 3,
                           "space": {"lr": {"low": 0.0003, "high": 0.03, "log": True},
                                     "layers.2": {"low": 16, "high": 128, "log": True}}})
    # asked a few ahead of the workers, not the whole budget
    assert 1 <= len(sweep["run_ids"]) <= 2 and sweep["progress"]["trials"] == len(sweep["run_ids"])
    seen = {"queued": 0, "trials": 0}

    def watch(s):
        seen["queued"] = max(seen["queued"], s["progress"]["queued"])
        seen["trials"] = max(seen["trials"], s["progress"]["trials"])

    spawn_worker("w-tpe")
    done = wait_sweep(client.get, sweep["id"], watch=watch)
    assert done["status"] == "finished" and seen["trials"] == budget and seen["queued"] <= 2
    assert done["progress"]["finished"] == budget and done["progress"]["trials"] == budget
    trials = study_trials(_db(zoolab_env), done["study_name"])
    assert sorted(trials) == list(range(budget)) and {s for s, _ in trials.values()} == {"COMPLETE"}
    runs = client.get("/runs", params={"limit": 100}).json()["items"]
    assert len(runs) == budget and {r["sweep_id"] for r in runs} == {sweep["id"]}
    detail = client.get(f"/sweeps/{sweep['id']}").json()
    points = set()
    for t in detail["trials"]:
        run = next(r for r in runs if r["id"] == t["run_id"])
        width = t["params"]["layers.2"]
        assert run["config"]["lr"] == t["params"]["lr"] and 0.0003 <= t["params"]["lr"] <= 0.03
        assert run["config"]["layers"][1] == f"linear 784 {width}" and 16 <= width <= 128
        assert t["value"] == pytest.approx(run["best_test_acc"]) == pytest.approx(trials[t["number"]][1])
        points.add((t["params"]["lr"], width))
    assert len(points) == budget  # no point asked twice
    assert done["best"]["best_test_acc"] == max(r["best_test_acc"] for r in runs)
    time.sleep(2)  # the server's loop keeps running: nothing more is asked
    assert client.get("/runs").json()["total"] == budget


def test_a_random_sweep_queues_its_draws_at_once(client, zoolab_env):
    body = {"base": SMALL, "sampler": "random", "budget": 6, "seed": 7,
            "space": {"lr": {"low": 0.0001, "high": 0.1, "log": True}, "batch_size": {"choices": [64, 128, 256]},
                      "layers.2": {"low": 8, "high": 64}}}
    first, second = _post(client, body), _post(client, body)
    assert len(first["run_ids"]) == first["progress"]["queued"] == 6
    points = []
    for sweep in (first, second):
        runs = [client.get(f"/runs/{i}").json() for i in sweep["run_ids"]]
        points.append([(r["config"]["lr"], r["config"]["batch_size"], r["config"]["layers"][1]) for r in runs])
        for lr, batch, layer in points[-1]:
            assert 0.0001 <= lr <= 0.1 and batch in (64, 128, 256) and 8 <= int(layer.split()[2]) <= 64
        trials = study_trials(_db(zoolab_env), sweep["study_name"])
        assert sorted(trials) == list(range(6)) and {s for s, _ in trials.values()} == {"RUNNING"}
    assert points[0] == points[1] and len(set(points[0])) == 6  # the seed decides the draws


# --- cancelling ------------------------------------------------------------------------------------

def test_cancelling_a_sweep_cancels_its_queued_trials_and_asks_no_more(client, zoolab_env):
    grid = _post(client, {"base": SMALL, "sampler": "grid", "space": {"lr": {"choices": [0.001, 0.003, 0.01, 0.03]}}})
    tpe = _post(client, {"base": SMALL, "sampler": "tpe", "budget": 10, "space": LR})
    other = client.post("/runs", json=SMALL).json()  # not a sweep's: left alone
    for sweep in (grid, tpe):
        r = client.post(f"/sweeps/{sweep['id']}/cancel")
        assert r.status_code == 200, r.text
        cancelled = r.json()
        assert cancelled["status"] == "cancelled"
        assert cancelled["progress"]["cancelled"] == cancelled["progress"]["trials"] == len(sweep["run_ids"])
        assert {client.get(f"/runs/{i}").json()["status"] for i in sweep["run_ids"]} == {"cancelled"}
        trials = study_trials(_db(zoolab_env), sweep["study_name"])
        assert {s for s, _ in trials.values()} == {"FAIL"} and len(trials) == len(sweep["run_ids"])
        again = client.post(f"/sweeps/{sweep['id']}/cancel")
        assert again.status_code == 409
        assert again.json() == {"detail": f"sweep {sweep['id']} is cancelled; only a running sweep can be cancelled"}
    time.sleep(2.5)  # the server's loop ran: the cancelled tpe sweep asked for nothing more
    assert client.get(f"/sweeps/{tpe['id']}").json()["progress"]["trials"] == len(tpe["run_ids"])
    assert client.get(f"/runs/{other['id']}").json()["status"] == "queued"
    assert client.get(f"/sweeps/{tpe['id']}").json()["finished_at"] is not None


def test_a_deleted_trial_is_told_failed_not_queued_again(client, zoolab_env):
    sweep = _post(client, {"base": SMALL, "sampler": "tpe", "budget": 3, "space": LR})
    assert len(sweep["run_ids"]) == 2
    assert client.delete(f"/runs/{sweep['run_ids'][1]}").status_code == 204
    trials = wait_for(lambda: (t := study_trials(_db(zoolab_env), sweep["study_name"])).get(1, ("",))[0] == "FAIL"
                      and len(t) == 3 and t, 30, "the deleted trial to be told and a third one asked")
    # (a trial is asked first, then its run queued)
    runs = wait_for(lambda: len(r := client.get("/runs", params={"sort": "id", "order": "asc"}).json()["items"]) == 2
                    and r, 30, "the third trial's run")
    assert [r["trial_number"] for r in runs] == [0, 2] and trials[0][0] == trials[2][0] == "RUNNING"
    time.sleep(2)  # the budget is spent: nothing more
    assert client.get("/runs").json()["total"] == 2 and len(study_trials(_db(zoolab_env), sweep["study_name"])) == 3


# --- a worker killed mid-trial ------------------------------------------------------------------

FAST = {"ZOOLAB_PROGRESS_SECONDS": "0.3", "ZOOLAB_HEARTBEAT_SECONDS": "0.5"}
# Long enough to be killed mid-way: several epochs of a second or more each.
LONG = {"model": "mnist-2fc-relu-55k", "epochs": 5, "train_subset": 20000, "test_subset": 2000}


@pytest.mark.timeout(400)
def test_a_worker_killed_mid_trial_loses_no_trial(tmp_path):
    with Stack(tmp_path, env=FAST) as stack:
        sweep = stack.post("/sweeps", {"base": LONG, "sampler": "tpe", "budget": 3, "pruner": "median",
                                       "space": {"lr": {"low": 0.002, "high": 0.01, "log": True}}})
        first = sweep["run_ids"][0]
        running = stack.wait_run(first, "running", timeout=120,
                                 where=lambda r: 1 <= r["epochs_done"] < r["epochs_total"])
        victim = next(w for w in stack.workers() if w["name"] == running["worker"])
        os.kill(victim["pid"], signal.SIGKILL)
        wait_for(lambda: not pid_alive(victim["pid"]), 30, "the killed worker to be gone")
        (killed_at,), = stack.query("SELECT epochs_done FROM run WHERE id = ?", first)

        done = wait_sweep(stack.get, sweep["id"], timeout=300)
        assert done["status"] == "finished", stack.log_tail()
        assert done["progress"] == {"budget": 3, "trials": 3, "queued": 0, "running": 0, "finished": 3,
                                    "pruned": 0, "failed": 0, "cancelled": 0}
        resumed = stack.run(first)
        assert resumed["attempts"] == 2 and resumed["epochs_done"] == LONG["epochs"] and resumed["trial_number"] == 0
        assert f"run {first}: mnist-2fc-relu-55k for 5 epochs (from epoch {killed_at + 1})" in stack.log()
        epochs = stack.query("SELECT epoch, COUNT(*) FROM metric WHERE run_id = ? AND key = 'test_acc' "
                             "GROUP BY epoch", first)
        assert epochs == [(e, 1) for e in range(1, LONG["epochs"] + 1)]
        trials = study_trials(stack.db_path, done["study_name"])
        assert sorted(trials) == [0, 1, 2] and {s for s, _ in trials.values()} == {"COMPLETE"}
        assert trials[0][1] == pytest.approx(resumed["best_test_acc"])
        assert intermediate(stack.db_path, done["study_name"], 0) == pytest.approx(
            {e["epoch"]: e["test_acc"] for e in stack.get(f"/runs/{first}/metrics").json()["epochs"]})
        assert stack.query("SELECT COUNT(*) FROM run") == [(3,)]
