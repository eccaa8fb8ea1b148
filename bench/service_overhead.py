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
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
WARM_UP = [{"model": "mnist-logreg", "epochs": 1, "train_subset": 2000},
           {"model": "cifar-conv5-pool-fc-2k", "epochs": 1, "train_subset": 2000}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


class Server:
    def __init__(self, folder: Path, data_dir: str, threads: int | None):
        self.port = free_port()
        self.env = {**os.environ, "ZOOLAB_DATABASE_URL": f"sqlite:///{folder / 'runs.db'}",
                    "ZOOLAB_ARTIFACT_DIR": str(folder / "artifacts"), "ZOOLAB_DATA_DIR": data_dir,
                    "ZOOLAB_DOWNLOAD": "false"}
        self.env.pop("ZOOLAB_TOKEN", None)
        if threads:
            self.env["ZOOLAB_THREADS"] = str(threads)
        self.log = open(folder / "server.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
                                     env=self.env, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.http.get("/health").json()["workers_alive"] >= 1:
                    return
            except (httpx.TransportError, KeyError, ValueError):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log.name}")
            time.sleep(0.2)
        raise TimeoutError("server/worker did not come up")

    def wait_status(self, run_id: int, statuses: tuple[str, ...], timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.http.get(f"/runs/{run_id}").json()
            if run["status"] in statuses:
                return run
            time.sleep(0.1)
        raise TimeoutError(f"run {run_id} not {statuses}")

    def wait_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(w["status"] != "busy" for w in self.http.get("/workers").json()):
                return
            time.sleep(0.1)
        raise TimeoutError("worker still busy")

    def worker_pid(self) -> int:
        alive = [w for w in self.http.get("/workers").json() if w["alive"]]
        return alive[0]["pid"]

    def close(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own session: the server and its worker
                self.proc.wait()
        self.log.close()


def time_first_metric(server: Server, body: dict) -> tuple[float, float, str]:
    """(seconds to `running`, seconds to first progress/epoch event, its kind) after POST."""
    started = time.perf_counter()
    run_id = server.http.post("/runs", json=body).raise_for_status().json()["id"]
    claimed = None
    with server.http.stream("GET", f"/runs/{run_id}/events", params={"last_event_id": 0},
                            timeout=httpx.Timeout(60, read=60)) as stream:
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind:
                data = json.loads(line.split(":", 1)[1])
                if kind == "status" and data.get("status") == "running" and claimed is None:
                    claimed = time.perf_counter() - started
                if kind in ("progress", "epoch"):
                    first = time.perf_counter() - started
                    break
    server.http.post(f"/runs/{run_id}/cancel")
    server.wait_status(run_id, ("cancelled", "finished", "failed"))
    server.wait_idle()
    return claimed or float("nan"), first, kind


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--models", nargs="+", default=["mnist-3fc-2bn-51k", "cifar-2conv5-2fc-bn-36k"])
    p.add_argument("--threads", type=int, help="ZOOLAB_THREADS for the worker (default: its own default)")
    p.add_argument("--data", default=os.environ.get("ZOOLAB_DATA_DIR", str(REPO.parent / "shared" / "data")))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="zoolab-bench-") as tmp:
        server = Server(Path(tmp), args.data, args.threads)
        try:
            t0 = time.perf_counter()
            server.wait_healthy()
            print(f"server + worker up in {time.perf_counter() - t0:.1f} s (port {server.port})", flush=True)
            for body in WARM_UP:
                t0 = time.perf_counter()
                run_id = server.http.post("/runs", json=body).raise_for_status().json()["id"]
                run = server.wait_status(run_id, ("finished", "failed", "cancelled"))
                print(f"warm-up {body['model']}: {run['status']} in {time.perf_counter() - t0:.1f} s "
                      f"(threads {run['versions']['threads']})", flush=True)
            server.wait_idle()
            pid = server.worker_pid()
            print(f"worker pid {pid}: VmHWM after warm-up {proc_status(pid)['VmHWM']}", flush=True)
            rows = []
            for model in args.models:
                claims, firsts, kinds = [], [], []
                for r in range(args.repeats):
                    claimed, first, kind = time_first_metric(server, {"model": model})
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
        finally:
            server.close()


if __name__ == "__main__":
    main()
