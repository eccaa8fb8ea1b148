"""The queue under many workers: claim latency and throughput with N worker processes sharing
one database — PostgreSQL (a throwaway server, tests/postgres.py) and SQLite, in the same run.

    python -m bench.queue [--workers 16] [--runs 2000] [--databases postgresql sqlite]

Each worker is a real process doing exactly what app/worker.py does with the database for a
run, without the training (which would measure the CPU, not the queue): claim the oldest
queued run, `Lease.start`, one `record_epoch` (9 metric rows, the summary, an event),
`Lease.end(finished)` — tiny runs, as fast as the database takes them. Printed per database:
runs per second through the whole queue, and the claim's latency (p50 / p95 / max, from the
call to its commit).
"""

import argparse
import contextlib
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path


def _worker(url: str, name: str, start, results) -> None:
    from app import queue
    from app.db import make_engine

    engine = make_engine(url)
    latencies = []
    start.wait()
    while True:
        t0 = time.perf_counter()
        lease = queue.claim(engine, name)
        latencies.append(time.perf_counter() - t0)
        if lease is None:
            break
        lease.start("bench", {"bench": True}, 0)
        lease.record_epoch(1, {"train_loss": 0.5, "train_acc": 0.9, "test_loss": 0.4, "test_acc": 0.91, "lr": 1e-3,
                               "epoch_seconds": 0.01, "images_per_second": 1e5, "peak_memory_bytes": 1e8},
                           wall_seconds=0.01, has_checkpoint=False)
        lease.end("finished")
    engine.dispose()
    results.put(latencies[:-1])  # the last claim found the queue empty


def _fill(url: str, runs: int) -> None:
    from sqlmodel import Session

    from app import queue
    from app.db import make_engine, writer
    from app.migrate import upgrade
    from app.models import Run

    engine = make_engine(url)
    upgrade(engine)
    with Session(writer(engine)) as session:
        for start in range(0, runs, 500):
            queue.enqueue(session, *[Run(name=f"q{i}", model="mnist-logreg", dataset="mnist", config={}, params=7850,
                                         epochs_total=1) for i in range(start, min(runs, start + 500))])
    engine.dispose()


def measure(url: str, workers: int, runs: int) -> dict:
    _fill(url, runs)
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [context.Process(target=_worker, args=(url, f"w{i}", start, results)) for i in range(workers)]
    for p in processes:
        p.start()
    time.sleep(3)  # every process imported and connected: the clock starts with the queue
    t0 = time.perf_counter()
    start.set()
    latencies = []
    for _ in processes:
        latencies += [1000 * x for x in results.get(timeout=1800)]
    seconds = time.perf_counter() - t0
    for p in processes:
        p.join()
    latencies.sort()
    return {"runs": len(latencies), "seconds": seconds, "runs_per_second": len(latencies) / seconds,
            "claim_p50_ms": statistics.median(latencies), "claim_p95_ms": latencies[int(0.95 * len(latencies)) - 1],
            "claim_max_ms": latencies[-1]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--databases", nargs="+", choices=("postgresql", "sqlite"), default=["postgresql", "sqlite"])
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="zoolab-queue-") as tmp, contextlib.ExitStack() as cleanup:
        for database in args.databases:
            if database == "postgresql":
                from tests.postgres import PostgresServer
                server = PostgresServer.start()
                cleanup.callback(server.stop)
                url = server.create_database()
            else:
                url = f"sqlite:///{Path(tmp) / 'runs.db'}"
            print(f"{database}: {args.workers} workers, {args.runs} runs ...", flush=True)
            rows.append((database, measure(url, args.workers, args.runs)))
    print(f"\n{'database':<11} {'workers':>7} {'runs':>6} {'runs/s':>8} {'claim p50':>10} {'p95':>8} {'max':>8}")
    for database, r in rows:
        print(f"{database:<11} {args.workers:>7} {r['runs']:>6} {r['runs_per_second']:>8.1f} "
              f"{r['claim_p50_ms']:>8.1f}ms {r['claim_p95_ms']:>6.1f}ms {r['claim_max_ms']:>6.0f}ms")


if __name__ == "__main__":
    main()
