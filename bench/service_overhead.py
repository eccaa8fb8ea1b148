"""Service overhead: how long from `POST /runs` to the first metric on a warm worker,
and how much memory the worker holds with MNIST and CIFAR-10 both cached.

    python -m bench.service_overhead [--repeats 5] [--models mnist-3fc-2bn-51k cifar-2conv5-2fc-bn-36k]

Starts a real `zoolab serve` (uvicorn + its supervised worker subprocess) on a free
port with a temporary database and artifact folder, and the real datasets
(ZOOLAB_DATA_DIR, default ../shared/data). Warm-up: one short MNIST run and one short
CIFAR-10 run, so the worker has imported everything and cached both datasets. Then, per
model and repeat: POST /runs with the preset's defaults, follow GET /runs/{id}/events
(replayed from event 0, so nothing is missed) and time the `status: running` event (the
claim) and the first `progress` or `epoch` event; then cancel the run and wait until the
worker is idle again. Finally the worker's VmHWM (peak resident set) from /proc.
Prints figures only.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.stack import DATA_DIR, Stack, sse_events, wait_for

WARM_UP = [{"model": "mnist-logreg", "epochs": 1, "train_subset": 2000},
           {"model": "cifar-conv5-pool-fc-2k", "epochs": 1, "train_subset": 2000}]


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def wait_idle(stack: Stack, timeout: float = 60) -> None:
    wait_for(lambda: all(w["status"] != "busy" for w in stack.workers()), timeout, "the worker to be idle", 0.1)


def worker_pid(stack: Stack) -> int:
    return next(w["pid"] for w in stack.workers() if w["alive"])


def time_first_metric(stack: Stack, body: dict) -> tuple[float, float, str]:
    """(seconds to `running`, seconds to first progress/epoch event, its kind) after POST."""
    started = time.perf_counter()
    run_id = stack.post("/runs", body)["id"]
    claimed = None
    with stack.api.stream("GET", f"/runs/{run_id}/events", params={"last_event_id": 0},
                          timeout=httpx.Timeout(60, read=60)) as stream:
        for event in sse_events(stream):
            kind = event.get("event")
            if kind == "status" and event["data"]["status"] == "running" and claimed is None:
                claimed = time.perf_counter() - started
            if kind in ("progress", "epoch"):
                first = time.perf_counter() - started
                break
    stack.api.post(f"/runs/{run_id}/cancel")  # 409 if it already ended: fine
    stack.wait_run(run_id, timeout=300, every=0.1)
    wait_idle(stack)
    return claimed or float("nan"), first, kind


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--models", nargs="+", default=["mnist-3fc-2bn-51k", "cifar-2conv5-2fc-bn-36k"])
    p.add_argument("--threads", type=int, help="ZOOLAB_THREADS for the worker (default: its own default)")
    p.add_argument("--data", default=DATA_DIR)
    args = p.parse_args(argv)
    env = {"ZOOLAB_THREADS": str(args.threads)} if args.threads else {}
    with tempfile.TemporaryDirectory(prefix="zoolab-bench-") as tmp:
        t0 = time.perf_counter()
        with Stack(Path(tmp), env=env, data_dir=args.data) as stack:
            print(f"server + worker up in {time.perf_counter() - t0:.1f} s (port {stack.port})", flush=True)
            for body in WARM_UP:
                t0 = time.perf_counter()
                run = stack.wait_run(stack.post("/runs", body)["id"], timeout=300, every=0.1)
                print(f"warm-up {body['model']}: {run['status']} in {time.perf_counter() - t0:.1f} s "
                      f"(threads {run['versions']['threads']})", flush=True)
            wait_idle(stack)
            pid = worker_pid(stack)
            print(f"worker pid {pid}: VmHWM after warm-up {proc_status(pid)['VmHWM']}", flush=True)
            rows = []
            for model in args.models:
                claims, firsts, kinds = [], [], []
                for r in range(args.repeats):
                    claimed, first, kind = time_first_metric(stack, {"model": model})
                    claims.append(claimed)
                    firsts.append(first)
                    kinds.append(kind)
                    print(f"  {model} repeat {r}: running after {claimed:.2f} s, first {kind} after {first:.2f} s",
                          flush=True)
                rows.append((model, claims, firsts, kinds))
            status = proc_status(pid)
            print()
            header = (f"{'model (defaults)':<26} {'claim p50':>9} {'first metric p50':>16} {'max':>6} "
                      f"{'first event kinds':<20}")
            print(header)
            print("-" * len(header))
            for model, claims, firsts, kinds in rows:
                print(f"{model:<26} {statistics.median(claims):>8.2f}s {statistics.median(firsts):>15.2f}s "
                      f"{max(firsts):>5.2f}s {','.join(sorted(set(kinds))):<20}")
            hwm_kib = int(status["VmHWM"].split()[0])
            print(f"\nworker peak memory (VmHWM, MNIST + CIFAR-10 cached): {hwm_kib / 2**20:.2f} GiB; "
                  f"VmRSS now {int(status['VmRSS'].split()[0]) / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
