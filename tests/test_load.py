"""The server under load while its worker trains and writes: bench/load.py's clients (each
holds a live event stream and reads /runs, /runs/{id}, /runs/{id}/metrics as fast as the
server answers) for ~10 s against a real `zoolab serve`, on SQLite and on PostgreSQL.

    ZOOLAB_DATA_DIR=/work/shared/data ZOOLAB_DOWNLOAD=false .venv/bin/python -m pytest tests/test_load.py -q
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.load import BACKGROUND_RUNS, LOCKED, SERVER_ENV, figures, hammer
from tests.stack import Stack

SECONDS = 10
CLIENTS = 50


@pytest.mark.timeout(300)
@pytest.mark.both_databases
def test_reads_and_streams_under_load_while_worker_writes(tmp_path, database_url):
    with Stack(tmp_path, env=SERVER_ENV, database_url=database_url) as stack:
        run_ids = [stack.post_run(**body)["id"] for body in BACKGROUND_RUNS]
        stack.wait_run(run_ids[0], "running", timeout=180,
                       where=lambda r: r["epoch_progress"] > 0 or r["epochs_done"] > 0)
        (written_before,), = stack.query("SELECT COALESCE(MAX(id), 0) FROM event")

        # Its own thread: a browser test's Playwright may still own this thread's event loop.
        with ThreadPoolExecutor(1) as pool:
            result = pool.submit(asyncio.run, hammer(stack.url, SECONDS, CLIENTS, run_ids)).result()

        (written_after,), = stack.query("SELECT COALESCE(MAX(id), 0) FROM event")
        log = stack.log()
        out = figures(result, log)
        assert written_after > written_before, "the worker wrote nothing during the load"
        assert out["requests"] > 0
        assert out["http_5xx"] == 0, result.errors[:5]
        assert result.errors == [], result.errors[:5]
        assert [s.error for s in result.streams] == [None] * CLIENTS
        assert LOCKED not in log
        assert "Exception in ASGI application" not in log and "Traceback" not in log, log[-3000:]

        # No stream missed an event: each received exactly the table's events (of its run,
        # or of all runs) from its first to its last id.
        assert sum(len(s.ids) for s in result.streams) > 0
        for s in result.streams:
            if not s.ids:
                continue
            if s.path == "/events":
                table = stack.query("SELECT id FROM event WHERE id BETWEEN ? AND ? ORDER BY id", s.ids[0], s.ids[-1])
            else:
                run_id = int(s.path.split("/")[2])
                table = stack.query("SELECT id FROM event WHERE run_id = ? AND id BETWEEN ? AND ? ORDER BY id",
                                    run_id, s.ids[0], s.ids[-1])
            assert s.ids == [i for (i,) in table], s.path
