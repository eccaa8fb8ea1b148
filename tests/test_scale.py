"""Many workers on one database, for real: `zoolab serve --workers N` supervises N workers that
share the machine's threads and report their device; and a queue of 60 short runs (real
MNIST, subsets) drained by 6 worker processes on PostgreSQL (3 on SQLite) while a chaos loop
SIGKILLs a random training worker every few finished runs and starts another: every run finishes, each
epoch's metrics are written exactly once, no run is held by two workers at once, nothing is
left running.

    .venv/bin/python -m pytest tests/test_scale.py -q
"""

import json
import os
import random
import signal
import time

import pytest

from tests.stack import Stack, wait_for

RUN = {"model": "mnist-logreg", "epochs": 2, "train_subset": 256, "test_subset": 256}
RUNS = 60
EPOCH_KEYS = 9  # train_loss, train_acc, test_loss, test_acc, lr, epoch_seconds, images_per_second,
#                 peak_memory_bytes, wall_seconds
# A killed worker's run is noticed by its stale heartbeat; 10 s, not less: on a loaded 2-core
# machine a live worker's heartbeat can lag a few seconds, and its run would be taken from it.
FAST = {"ZOOLAB_HEARTBEAT_SECONDS": "0.5", "ZOOLAB_STALE_SECONDS": "10", "ZOOLAB_PROGRESS_SECONDS": "0.5",
        # killed often, a run must be retried rather than given up: every run has to finish
        "ZOOLAB_MAX_ATTEMPTS": "50", "ZOOLAB_THREADS": "1"}


def test_serve_supervises_n_workers_that_report_their_device(tmp_path):
    with Stack(tmp_path, args=["--workers", "2"]).start(workers=2) as stack:
        workers = [w for w in stack.workers() if w["alive"]]
        for worker in workers:
            assert worker["device"].startswith("cpu (") and worker["utilization"] is None
            assert 0 < worker["memory_used_bytes"] < worker["memory_total_bytes"]
        assert len({w["name"] for w in workers}) == 2
        ids = [stack.post_run(**RUN, name=f"r{i}")["id"] for i in range(4)]
        runs = stack.wait_runs(ids)
        assert {r["versions"]["threads"] for r in runs} == {max(1, ((os.cpu_count() or 1) - 1) // 2)}
        # One dies: the supervisor replaces it; the other keeps its name.
        victim, survivor = workers
        os.kill(victim["pid"], signal.SIGKILL)
        wait_for(lambda: {w["name"] for w in stack.workers() if w["alive"]} - {victim["name"]} != {survivor["name"]}
                 and len([w for w in stack.workers() if w["alive"]]) == 2, 60, "a replacement worker")
        assert survivor["name"] in {w["name"] for w in stack.workers() if w["alive"]}


def _chaos(stack: Stack, workers: int, kills: int, every: int, rng: random.Random) -> int:
    """Keep `workers` processes running; SIGKILL one that is training (a run's worker) and start
    another each time `every` more runs have finished, `kills` times; then let the queue drain.
    Paced by the queue, not the clock, so a fast machine meets as many kills as a slow one.
    Returns the kills made."""
    live: dict[str, object] = {}
    made, serial = 0, 0
    while True:
        live = {name: p for name, p in live.items() if p.poll() is None}
        while len(live) < workers:
            serial += 1
            live[f"chaos-{serial}"] = stack.spawn_worker(f"chaos-{serial}")
        (left,), = stack.query("SELECT COUNT(*) FROM run WHERE status IN ('queued', 'running')")
        if left == 0:
            return made
        time.sleep(0.2)
        (finished,), = stack.query("SELECT COUNT(*) FROM run WHERE status = 'finished'")
        if made < kills and finished >= made * every:
            training = [name for (name,) in stack.query("SELECT worker FROM run WHERE status = 'running'")
                        if name in live]
            if training:
                victim = live.pop(rng.choice(training))
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                made += 1


@pytest.mark.both_databases
@pytest.mark.timeout(600)
def test_workers_drain_the_queue_while_chaos_kills_them(tmp_path, database_url):
    workers = 6 if database_url.startswith("postgresql") else 3
    with Stack(tmp_path, worker=False, env=FAST, database_url=database_url) as stack:
        with stack.client() as c:
            ids = [c.post("/runs", json={**RUN, "name": f"chaos {i}"}).json()["id"] for i in range(RUNS)]
        kills = _chaos(stack, workers, kills=8, every=RUNS // 20, rng=random.Random(7))
        assert kills >= 5, f"only {kills} workers were killed mid-run: the test proves little"

        statuses = dict(stack.query("SELECT id, status FROM run"))
        assert statuses == {i: "finished" for i in ids}, {i: s for i, s in statuses.items() if s != "finished"}
        # Each epoch's metrics exactly once: the unique constraint forbids doubles, the counts
        # find gaps.
        counts = stack.query("SELECT run_id, epoch, COUNT(*) FROM metric GROUP BY run_id, epoch")
        assert sorted((r, e) for r, e, _ in counts) == [(i, e) for i in ids for e in (1, 2)]
        assert {n for _, _, n in counts} == {EPOCH_KEYS}
        for run_id in ids:
            events = [(kind, json.loads(data)) for kind, data in stack.query(
                "SELECT kind, data FROM event WHERE run_id = ? AND kind IN ('status', 'epoch') ORDER BY id", run_id)]
            # never held by two workers at once: a claim only ever follows a queued state
            held = None
            for kind, data in events:
                if kind == "status" and data["status"] == "running" and not data.get("cancel_requested"):
                    assert held is None, f"run {run_id} claimed by {data['worker']} while {held} held it"
                    held = data["worker"]
                elif kind == "status":
                    held = None
            assert [d["epoch"] for k, d in events if k == "epoch"] == [1, 2], (run_id, events)
        assert stack.query("SELECT COUNT(*) FROM run WHERE status = 'running'") == [(0,)]
        assert stack.integrity_check() == "ok"
