"""API latency with a big history: 1,000 (or 10,000) finished runs x 30 epochs in a temporary
SQLite database, or a database of a throwaway PostgreSQL server (tests/postgres.py), served by
a real `zoolab serve --no-worker`.

    python -m bench.api_latency [--runs 1000] [--epochs 30] [--requests 100] [--database postgresql]

The database is written directly (SQLModel tables, bulk inserts): per run its summary
columns, 9 metric rows per epoch (as a worker writes), 2 progress points per epoch and the events a worker
would have written (status + one per epoch + progress). Then, against the real server:
  - GET /runs (the runs table's first page, 50 rows) `--requests` times: p50 / p95;
  - GET /runs?dataset=mnist&sort=best_test_acc&order=desc (a sorted, filtered page);
  - a 20-run compare: 20 GETs /runs/{id}/metrics one after another (total), and the
    browser's way, GET /runs/{id} + /runs/{id}/metrics for 20 runs over 6 connections;
  - first page load: GET /, the stylesheet, plotly, every JS module (followed through
    their imports), /zoo, /zoo/options, /health, /workers and /runs, over 6 connections.
Prints figures only.
"""

import argparse
import asyncio
import contextlib
import random
import re
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert

from tests.stack import Stack

KEYS = ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_seconds", "images_per_second",
        "peak_memory_bytes", "wall_seconds")


def build_database(url: str, runs: int, epochs: int) -> None:
    from app.db import make_engine
    from app.migrate import upgrade
    from app.models import Event, Metric, Progress, Run, Status, utcnow
    from trainer.config import resolve
    from trainer.zoo import PRESETS

    engine = make_engine(url)
    upgrade(engine)
    rng = random.Random(0)
    presets = list(PRESETS.values())
    now = utcnow()
    run_rows, metric_rows, progress_rows, event_rows = [], [], [], []
    for i in range(1, runs + 1):
        preset = presets[i % len(presets)]
        config = resolve({"model": preset.id, "epochs": epochs}).model_dump()
        accs = sorted(rng.uniform(0.3, 0.99) for _ in range(epochs))
        run_rows.append(dict(id=i, name=f"{preset.id} #{i}", model=preset.id, dataset=preset.dataset,
                             status=Status.FINISHED, config=config, params=preset.params,
                             created_at=now - timedelta(minutes=runs - i), started_at=now, finished_at=now,
                             heartbeat_at=now, worker="bench", attempts=1, cancel_requested=False,
                             epochs_total=epochs, epochs_done=epochs, epoch_progress=0.0,
                             best_test_acc=accs[-1], final_test_acc=accs[-1], total_seconds=epochs * 1.1,
                             images_per_second=55_000.0, device="cpu (2 cores)",
                             versions={"torch": "2.14.1", "threads": 1}, has_checkpoint=True, has_artifacts=True))
        event_rows.append(dict(run_id=i, kind="status", data={"run_id": i, "status": "finished"}, created_at=now))
        for e in range(1, epochs + 1):
            values = dict(zip(KEYS, (1 / e, accs[e - 1], 1 / e, accs[e - 1], 3e-3 * 0.7 ** e, 1.1, 55_000.0,
                                     1e9, 1.1 * e)))
            metric_rows.extend(dict(run_id=i, epoch=e, key=k, value=v) for k, v in values.items())
            for f in (0.33, 0.66):
                progress_rows.append(dict(run_id=i, epoch=e - 1 + f, train_loss=1 / e, train_acc=accs[e - 1],
                                          wall_seconds=1.1 * (e - 1 + f)))
                event_rows.append(dict(run_id=i, kind="progress", data={"run_id": i, "epoch": e - 1 + f},
                                       created_at=now))
            event_rows.append(dict(run_id=i, kind="epoch", data={"run_id": i, "epoch": e, **values},
                                   created_at=now))
    with engine.begin() as conn:
        for table, rows in ((Run, run_rows), (Metric, metric_rows), (Progress, progress_rows), (Event, event_rows)):
            for start in range(0, len(rows), 20_000):
                conn.execute(insert(table), rows[start:start + 20_000])
    engine.dispose()
    print(f"database: {runs} runs, {len(metric_rows)} metric rows, {len(progress_rows)} progress rows, "
          f"{len(event_rows)} events", flush=True)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def timed(client: httpx.Client, path: str) -> float:
    t = time.perf_counter()
    client.get(path).raise_for_status()
    return (time.perf_counter() - t) * 1000


async def fetch_all(base: str, paths: list[str], connections: int = 6) -> float:
    """Milliseconds to GET all `paths` over `connections` parallel connections."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        t = time.perf_counter()
        responses = await asyncio.gather(*(client.get(p) for p in paths))
        for r in responses:
            r.raise_for_status()
        return (time.perf_counter() - t) * 1000


def page_assets(client: httpx.Client) -> list[str]:
    """Static paths the dashboard's first load fetches: index's links, then JS imports."""
    html = client.get("/").text
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
    modules = [a for a in assets if a.endswith(".js") and "vendor" not in a]
    seen = set(assets)
    while modules:
        path = modules.pop()
        base = path.rsplit("/", 1)[0]
        for rel in re.findall(r"""(?:import|from)\s*['"](\./[^'"]+)['"]""", client.get(path).text):
            full = f"{base}/{rel[2:]}"
            if full not in seen:
                seen.add(full)
                assets.append(full)
                modules.append(full)
    return assets


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--loads", type=int, default=10, help="first-page loads and compares to time")
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="zoolab-api-") as tmp, contextlib.ExitStack() as cleanup:
        url = f"sqlite:///{tmp}/runs.db"
        if args.database == "postgresql":
            from tests.postgres import PostgresServer
            server = PostgresServer.start()
            cleanup.callback(server.stop)
            url = server.create_database()
        t0 = time.perf_counter()
        build_database(url, args.runs, args.epochs)
        print(f"written in {time.perf_counter() - t0:.1f} s", flush=True)
        with Stack(Path(tmp), worker=False, database_url=url) as stack:
            client, base = stack.api, stack.url
            for _ in range(5):  # warm-up: imports, connection pool, SQLite page cache
                client.get("/runs")
            rows = []
            runs = [timed(client, "/runs") for _ in range(args.requests)]
            rows.append(("GET /runs (50 rows)", runs))
            sorted_q = "/runs?dataset=mnist&sort=best_test_acc&order=desc"
            rows.append(("GET /runs sorted+filtered", [timed(client, sorted_q) for _ in range(args.requests)]))
            rows.append(("GET /runs?limit=1000", [timed(client, "/runs?limit=1000") for _ in range(args.loads)]))
            ids = random.Random(1).sample(range(1, args.runs + 1), 20)
            seq = []
            for _ in range(args.loads):
                t = time.perf_counter()
                for i in ids:
                    client.get(f"/runs/{i}/metrics").raise_for_status()
                seq.append((time.perf_counter() - t) * 1000)
            rows.append(("compare: 20x /metrics, sequential", seq))
            browser = [f"/runs/{i}" for i in ids] + [f"/runs/{i}/metrics" for i in ids]
            rows.append(("compare: 20x (run+metrics), 6 conns",
                         [asyncio.run(fetch_all(base, browser)) for _ in range(args.loads)]))
            assets = page_assets(client)
            first = ["/", *assets, "/zoo", "/zoo/options", "/health", "/workers", "/runs"]
            rows.append((f"first page load ({len(first)} GETs), 6 conns",
                         [asyncio.run(fetch_all(base, first)) for _ in range(args.loads)]))
            print(f"\n{args.runs} runs x {args.epochs} epochs, {args.database}, real server (uvicorn, 1 process)")
            header = f"{'request':<40} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}"
            print(header)
            print("-" * len(header))
            for name, values in rows:
                print(f"{name:<40} {len(values):>4} {statistics.median(values):>8.1f} {pct(values, 0.95):>8.1f} "
                      f"{max(values):>8.1f}")


if __name__ == "__main__":
    main()
