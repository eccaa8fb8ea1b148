"""Load on the real server while its worker trains: N concurrent clients, each like an
open dashboard tab, hold a live event stream and keep reading /runs, /runs/{id} and
/runs/{id}/metrics, for a bounded time. Prints figures only.

    python -m bench.load [--seconds 60] [--clients 50]          (from the repository root)
    python -m bench.load --url http://127.0.0.1:8000 --log server.log   (a server already up)

Without --url it starts `zoolab serve` (server + worker) on a free port of 127.0.0.1 with a
temporary database, queues a few MNIST runs so the worker writes throughout, and stops it
after. Figures: requests/s, p50/p99 latency of the reads, errors (transport errors and
non-2xx), 5xx responses, events received by the streams, and "database is locked" lines
in the server's output.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
# Runs that keep the worker writing for well over a minute (progress every 0.5 s, an
# epoch every 1-2 s on the full MNIST train set).
BACKGROUND_RUNS = [{"model": "mnist-3fc-2bn-51k", "epochs": 20, "name": f"load {i}"} for i in range(3)]
SERVER_ENV = {"ZOOLAB_PROGRESS_SECONDS": "0.5"}
LOCKED = "database is locked"


@dataclass
class Stream:
    path: str
    ids: list[int] = field(default_factory=list)
    error: str | None = None


@dataclass
class Result:
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, successful reads
    errors: list[str] = field(default_factory=list)  # transport errors and non-2xx reads
    server_errors: int = 0  # 5xx responses
    streams: list[Stream] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies) + len(self.errors)

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def _stream(client: httpx.AsyncClient, stream: Stream, opened: asyncio.Event) -> None:
    try:
        async with client.stream("GET", stream.path, timeout=httpx.Timeout(10, read=None)) as r:
            if r.status_code != 200:
                stream.error = f"HTTP {r.status_code}"
                return
            opened.set()
            async for line in r.aiter_lines():
                if line.startswith("id:"):
                    stream.ids.append(int(line[3:].strip()))
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - every failure is a figure
        stream.error = f"{type(e).__name__}: {e}"
    finally:
        opened.set()


async def _reader(client: httpx.AsyncClient, run_ids: list[int], result: Result, deadline: float,
                  rng: random.Random) -> None:
    while time.monotonic() < deadline:
        run_id = rng.choice(run_ids)
        path = rng.choice(["/runs", "/runs?status=running", "/runs?sort=best_test_acc&limit=20",
                           f"/runs/{run_id}", f"/runs/{run_id}/metrics", f"/runs/{run_id}/metrics"])
        started = time.perf_counter()
        try:
            r = await client.get(path)
        except httpx.HTTPError as e:
            result.errors.append(f"{path}: {type(e).__name__}: {e}")
            continue
        if r.status_code >= 500:
            result.server_errors += 1
        if r.status_code != 200:
            result.errors.append(f"{path}: HTTP {r.status_code} {r.text[:200]}")
            continue
        result.latencies.append(time.perf_counter() - started)


async def hammer(url: str, seconds: float, clients: int, run_ids: list[int], seed: int = 0) -> Result:
    """`clients` tabs for `seconds`: each holds an event stream (every other one /events,
    the rest /runs/{id}/events) and reads the REST API as fast as it answers."""
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=2 * clients + 10, max_keepalive_connections=2 * clients + 10)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        streams = [Stream("/events" if i % 2 == 0 else f"/runs/{run_ids[i % len(run_ids)]}/events")
                   for i in range(clients)]
        opened = [asyncio.Event() for _ in streams]
        stream_tasks = [asyncio.create_task(_stream(client, s, o)) for s, o in zip(streams, opened)]
        await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), 60)
        started = time.monotonic()
        result = Result(seconds=seconds, streams=streams)
        await asyncio.gather(*(_reader(client, run_ids, result, started + seconds, random.Random(rng.random()))
                               for _ in range(clients)))
        result.seconds = time.monotonic() - started
        for task in stream_tasks:
            task.cancel()
        await asyncio.gather(*stream_tasks, return_exceptions=True)
    return result


def figures(result: Result, log_text: str | None) -> dict[str, float | int | str]:
    out: dict[str, float | int | str] = {
        "seconds": round(result.seconds, 1),
        "requests": result.requests,
        "requests_per_second": round(result.requests / result.seconds, 1),
        "latency_p50_ms": round(result.percentile(50) * 1000, 1),
        "latency_p99_ms": round(result.percentile(99) * 1000, 1),
        "errors": len(result.errors),
        "http_5xx": result.server_errors,
        "streams": len(result.streams),
        "stream_errors": sum(s.error is not None for s in result.streams),
        "events_received": sum(len(s.ids) for s in result.streams),
    }
    out["database_is_locked_in_log"] = log_text.count(LOCKED) if log_text is not None else "n/a"
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--url", help="an already running server (default: start one)")
    p.add_argument("--log", type=Path, help="that server's output, to count 'database is locked'")
    args = p.parse_args(argv)

    from tests.stack import Stack  # starts and stops a real stack

    stack = None
    try:
        if args.url:
            url = args.url.rstrip("/")
            runs = httpx.get(url + "/runs", params={"limit": 20}).json()["items"]
            run_ids = [r["id"] for r in runs] or [1]
        else:
            stack = Stack(Path(tempfile.mkdtemp(prefix="zoolab-load-")), env=SERVER_ENV).start()
            url = stack.url
            run_ids = [stack.post_run(**body)["id"] for body in BACKGROUND_RUNS]
            stack.wait_run(run_ids[0], "running", where=lambda r: r["epoch_progress"] > 0 or r["epochs_done"] > 0,
                           timeout=300)
        events_before, epochs_before = _counts(stack)
        result = asyncio.run(hammer(url, args.seconds, args.clients, run_ids))
        log_text = stack.log() if stack else (args.log.read_text(errors="replace") if args.log else None)
        out = figures(result, log_text)
        if stack:
            events_after, epochs_after = _counts(stack)
            out["events_written"] = events_after - events_before
            out["epochs_written"] = epochs_after - epochs_before
        for key, value in out.items():
            print(f"{key:28} {value}")
        for error in result.errors[:5]:
            print(f"{'error':28} {error}")
    finally:
        if stack:
            stack.close()
            shutil.rmtree(stack.root, ignore_errors=True)
    return 0


def _counts(stack) -> tuple[int, int]:
    """Rows the worker wrote so far: events, and finished epochs (over all runs)."""
    if stack is None:
        return 0, 0
    return stack.query("SELECT (SELECT COUNT(*) FROM event), "
                       "(SELECT COUNT(*) FROM (SELECT DISTINCT run_id, epoch FROM metric))")[0]


if __name__ == "__main__":
    sys.exit(main())
