"""The run table as a queue under concurrency, on SQLite and on a real PostgreSQL server:
claimers racing for one queue each get different runs, a PostgreSQL claim skips a run
another claimer holds instead of waiting for it, and event ids become visible in the
order streams read them.

    .venv/bin/python -m pytest tests/test_queue.py -q
"""

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait

import pytest
from sqlalchemy import select
from sqlmodel import Session

from app import queue
from app.db import make_engine, writer
from app.migrate import upgrade
from app.models import Event, Run, Status
from tests.stack import query

RUNS = 40
CLAIMERS = 4


def _enqueue(engine, n: int) -> list[int]:
    upgrade(engine)
    runs = [Run(name=f"r{i}", model="mnist-logreg", dataset="mnist", config={}, params=7850, epochs_total=1)
            for i in range(n)]
    with Session(writer(engine)) as s:
        queue.enqueue(s, *runs)
    return [r.id for r in runs]


@pytest.mark.both_databases
def test_claimers_racing_claim_every_run_exactly_once(database_url):
    ids = _enqueue(make_engine(database_url), RUNS)
    # One engine (one pool) per claimer, as separate worker processes have.
    engines = [make_engine(database_url) for _ in range(CLAIMERS)]
    start = threading.Barrier(CLAIMERS + 1)
    racing = threading.Event()
    racing.set()

    def claim_all(i: int) -> list[int]:
        start.wait()
        claimed = []
        while (lease := queue.claim(engines[i], f"w{i}")) is not None:
            claimed.append(lease.run_id)
        return claimed

    def follow() -> list[int]:
        """A stream's view: event ids after the last one seen, polled while claims commit."""
        seen, reader = [], make_engine(database_url)
        start.wait()
        while True:
            last_round = not racing.is_set()
            with Session(reader) as s:
                seen += s.execute(select(Event.id).where(Event.id > (seen[-1] if seen else 0))
                                  .order_by(Event.id)).scalars().all()
            if last_round:
                return seen

    with ThreadPoolExecutor(CLAIMERS + 1) as pool:
        follower = pool.submit(follow)
        claims = list(pool.map(claim_all, range(CLAIMERS)))
        racing.clear()
        seen = follower.result(timeout=60)

    by_worker = {f"w{i}": claimed for i, claimed in enumerate(claims)}
    assert sorted(run_id for claimed in claims for run_id in claimed) == ids
    rows = query(database_url, "SELECT id, status, worker, attempts FROM run ORDER BY id")
    assert all(status == Status.RUNNING and attempts == 1 and run_id in by_worker[worker]
               for run_id, status, worker, attempts in rows), rows
    running_events = Counter(run_id for run_id, data in query(
        database_url, "SELECT run_id, data FROM event WHERE kind = 'status'") if json.loads(data)["status"] == "running")
    assert running_events == {run_id: 1 for run_id in ids}
    # The follower missed no event: ids never became visible out of order.
    assert seen == [i for (i,) in query(database_url, "SELECT id FROM event ORDER BY id")]


@pytest.mark.postgresql
def test_a_claim_skips_the_run_another_claimer_holds(postgres_url):
    engine = make_engine(postgres_url)
    first, second = _enqueue(engine, 2)
    holder = engine.connect()
    held = holder.begin()
    pool = ThreadPoolExecutor(1)
    try:  # a claimer in the middle of its transaction, holding the oldest queued run
        oldest = select(Run.id).where(Run.status == Status.QUEUED).order_by(Run.id).limit(1).with_for_update()
        assert holder.execute(oldest).scalar_one() == first
        assert pool.submit(queue.claim, engine, "w2").result(timeout=20).run_id == second  # not blocked on it
    finally:
        held.rollback()
        holder.close()
        pool.shutdown()
    assert queue.claim(engine, "w3").run_id == first
    engine.dispose()


@pytest.mark.postgresql
def test_an_event_id_is_visible_only_after_every_smaller_one(postgres_url):
    """A later writer waits for an earlier, uncommitted one, so a stream that has read
    up to an id never finds a smaller one appear afterwards."""
    engine = make_engine(postgres_url)
    upgrade(engine)

    def write_event() -> int:
        with Session(writer(engine)) as s:
            event = Event(kind="status", data={"n": 2})
            s.add(event)
            s.commit()
            return event.id

    with ThreadPoolExecutor(1) as pool, Session(writer(engine)) as earlier:
        event = Event(kind="status", data={"n": 1})
        earlier.add(event)
        earlier.flush()
        later = pool.submit(write_event)
        time.sleep(1)  # ample for an unblocked insert and commit
        done, _ = wait([later], timeout=0)
        assert not done, "a second writer committed while an earlier event was uncommitted"
        earlier.commit()
        assert later.result(timeout=20) > event.id
    engine.dispose()
