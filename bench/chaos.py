"""The kill campaign of issue 14, reproducible: a real `zoolab serve` (tests/stack.py) trains
small MNIST runs while the worker training each one is SIGKILLed at a random moment, the
server itself a few times, and, once per server, a worker exactly between a run's last
epoch commit and its model.pt (app/faults.py). Then it checks what survived. Not in CI:
it takes minutes. Prints figures; every invariant should be 0.

    python -m bench.chaos [--runs 30] [--server-kills 5] [--seed 0]     (from the repository root)

Invariants, over every run:
  runs stuck                    not finished when the campaign ends (a kill must never cost a run)
  metric rows duplicated        a (run, epoch, key) written more than once
  metric rows missing           a finished run without every key of each epoch 1..N
  checkpoints not last epoch's  model.pt, evaluated again on the run's test images, gives another
                                test loss or accuracy than the run's last epoch recorded
  integrity_check not ok        SQLite's own check of the database file
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import torch

from app.faults import ENV as KILL_AT
from tests.stack import DATA_DIR, TERMINAL, Stack, pid_alive, wait_for
from trainer.config import RunConfig
from trainer.data import load, normalizer
from trainer.datasets import DATASETS
from trainer.nets import load_model
from trainer.train import evaluate

RUNS = [{"model": "mnist-3fc-51k", "epochs": 3, "train_subset": 12000, "test_subset": 2000},
        {"model": "mnist-logreg", "epochs": 3, "train_subset": 12000, "test_subset": 2000}]
# Stale after 5 s: an orphaned worker (its server killed) that is killed too has its run
# requeued by the reaper soon; no run gives up however often it is killed.
ENV = {"ZOOLAB_PROGRESS_SECONDS": "0.3", "ZOOLAB_HEARTBEAT_SECONDS": "0.5", "ZOOLAB_STALE_SECONDS": "5",
       "ZOOLAB_MAX_ATTEMPTS": "1000", "ZOOLAB_THREADS": "1"}
EPOCH_KEYS = {"train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_seconds",
              "images_per_second", "peak_memory_bytes", "wall_seconds"}


class Campaign:
    def __init__(self, root: Path, runs: int, server_kills: int, rng: random.Random):
        self.root, self.rng = root, rng
        self.stacks: list[Stack] = []
        self.port: int | None = None
        self.ids: list[int] = []
        self.kills = {"worker": 0, "server": 0, "missed (run already over)": 0}
        self.server_kill_at = set(rng.sample(range(runs), server_kills))
        self.runs = runs

    @property
    def stack(self) -> Stack:
        return self.stacks[-1]

    def start_server(self) -> None:
        # Each server's worker dies right after the last epoch of the next run is committed
        # (if that worker, not an orphan of a killed server, trains it).
        target = len(self.ids) + 1
        env = {**ENV, KILL_AT: f"epoch-committed:{target}:{RUNS[0]['epochs']}"}
        stack = Stack(self.root, port=self.port, env=env)
        stack.start(timeout=180, workers=1)
        self.port = stack.port
        self.stacks.append(stack)

    def kill_worker_of(self, run_id: int) -> None:
        run = self.stack.run(run_id)
        worker = next((w for w in self.stack.workers() if w["name"] == run["worker"]), None)
        if run["status"] != "running" or worker is None or not pid_alive(worker["pid"]):
            self.kills["missed (run already over)"] += 1
            return
        os.kill(worker["pid"], signal.SIGKILL)
        self.kills["worker"] += 1

    def kill_server(self) -> None:
        self.stack.proc.kill()  # its worker lives on, orphaned, and keeps training
        self.stack.proc.wait(10)
        self.kills["server"] += 1
        self.start_server()

    def run(self) -> None:
        self.start_server()
        for i in range(self.runs):
            run_id = self.stack.post_run(**RUNS[i % len(RUNS)], name=f"chaos {i}")["id"]
            self.ids.append(run_id)
            # A random moment of the run: when its progress (epochs, and within the epoch) passes
            # a random fraction, then up to one progress interval more.
            at = self.rng.uniform(0.02, 0.98)

            def reached(run_id=run_id, at=at) -> bool:
                run = self.stack.run(run_id)
                progress = (run["epochs_done"] + run["epoch_progress"]) / run["epochs_total"]
                return run["status"] in TERMINAL or (run["status"] == "running" and progress >= at)

            wait_for(reached, 900, f"run {run_id} to reach {at:.0%}", every=0.05)
            time.sleep(self.rng.uniform(0.0, 0.3))
            if i in self.server_kill_at:
                self.kill_server()
            else:
                self.kill_worker_of(run_id)
        try:
            self.stack.wait_runs(self.ids, "finished", timeout=900)
        except (TimeoutError, AssertionError) as e:  # counted below, as stuck
            print(f"not every run finished: {str(e).splitlines()[0]}", file=sys.stderr)

    def close(self) -> None:
        for stack in self.stacks:
            stack.close()


def checkpoint_mismatches(stack: Stack, ids: list[int]) -> list[int]:
    """Runs whose model.pt, evaluated again, is not their last epoch's weights."""
    data = load("mnist", Path(DATA_DIR), torch.device("cpu"))
    wrong = []
    for run_id in ids:
        run = stack.run(run_id)
        config = RunConfig(**run["config"])
        last = stack.get(f"/runs/{run_id}/metrics").json()["epochs"][-1]
        model = load_model(stack.artifact_dir / str(run_id) / "model.pt")
        x, y = data.test_x[:config.test_subset], data.test_y[:config.test_subset]
        normalize = normalizer(config.normalize, DATASETS[data.name].channels, torch.device("cpu"))
        again = evaluate(model, x, y, normalize, channels_last=False, autocast=False)
        if not (math.isclose(again.loss, last["test_loss"], rel_tol=1e-4) and abs(again.acc - last["test_acc"]) < 1e-9):
            wrong.append(run_id)
    return wrong


def invariants(stack: Stack, ids: list[int]) -> dict[str, list]:
    runs = {i: stack.run(i) for i in ids}
    finished = [i for i, r in runs.items() if r["status"] == "finished"]
    duplicated = stack.query("SELECT run_id, epoch, key FROM metric GROUP BY run_id, epoch, key HAVING COUNT(*) > 1")
    have: dict[int, dict[int, set]] = {}
    for run_id, epoch, key in stack.query("SELECT run_id, epoch, key FROM metric"):
        have.setdefault(run_id, {}).setdefault(epoch, set()).add(key)
    missing = [i for i in finished if {e: have.get(i, {}).get(e) for e in range(1, runs[i]["epochs_total"] + 1)}
               != {e: EPOCH_KEYS for e in range(1, runs[i]["epochs_total"] + 1)}]
    return {"runs stuck": [i for i in ids if i not in finished],
            "metric rows duplicated": duplicated,
            "metric rows missing": missing,
            "checkpoints not the last epoch's": checkpoint_mismatches(stack, finished),
            "integrity_check not ok": [] if stack.integrity_check() == "ok" else [stack.integrity_check()]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--server-kills", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="zoolab-chaos-") as root:
        campaign = Campaign(Path(root), args.runs, args.server_kills, random.Random(args.seed))
        try:
            campaign.run()
            found = invariants(campaign.stack, campaign.ids)
            attempts = [campaign.stack.run(i)["attempts"] for i in campaign.ids]
            injected = campaign.stack.log().count("fault injection: epoch-committed")
        finally:
            campaign.close()
    print(f"{args.runs} runs, {time.monotonic() - started:.0f} s; SIGKILLs: "
          + ", ".join(f"{k} {v}" for k, v in campaign.kills.items())
          + f", worker between a last epoch's commit and its model.pt {injected}")
    print(f"runs trained in more than one attempt: {sum(a > 1 for a in attempts)}, attempts in all: {sum(attempts)}")
    for name, items in found.items():
        print(f"{name:34} {len(items)}" + (f"  {json.dumps(items)[:300]}" if items else ""))
    return 0 if not any(found.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
