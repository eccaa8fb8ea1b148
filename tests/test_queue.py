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


def _seeds(engine, key: str, n: int = 3, **values) -> list[int]:
    """n queued runs of one group (`group_key` = key), as POST /runs with "seeds" queues them."""
    runs = [Run(name=key, model="mnist-logreg", dataset="mnist", config={"seed": i}, params=7850, epochs_total=1,
                group_key=key, **values) for i in range(n)]
    with Session(writer(engine)) as s:
        queue.enqueue(s, *runs)
    return [r.id for r in runs]


def _claimed(engine, worker: str, most: int = 8, stackable=lambda config: True) -> list[int]:
    return [lease.run_id for lease in queue.claim_group(engine, worker, most, stale_seconds=30, stackable=stackable)]


@pytest.mark.both_databases
def test_a_claim_takes_its_share_of_a_fresh_group(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    queue.register_worker(engine, "w1", "cpu")
    whole, other = _seeds(engine, "a"), _seeds(engine, "b")
    assert _claimed(engine, "w1") == whole  # the only worker alive takes the whole group...
    assert _claimed(engine, "w1") == other  # ...and nothing of another
    queue.register_worker(engine, "w2", "cpu")
    split = _seeds(engine, "c")
    assert _claimed(engine, "w1") == split[:2] and _claimed(engine, "w2") == split[2:]  # 3 seeds, 2 workers: 2 + 1
    queue.worker_stopped(engine, "w2")
    capped = _seeds(engine, "d")
    assert _claimed(engine, "w1", most=2) == capped[:2] and _claimed(engine, "w1", most=1) == capped[2:]
    refused = _seeds(engine, "e")
    assert _claimed(engine, "w1", stackable=lambda config: False) == refused[:1]
    assert _claimed(engine, "w1") == refused[1:]
    # A run that resumes from a checkpoint trains alone, and no fresh seed waits for it.
    resumed = _seeds(engine, "f")
    query(database_url, "UPDATE run SET epochs_done = 1, has_checkpoint = ? WHERE id = ?", True, resumed[1])
    assert _claimed(engine, "w1") == [resumed[0], resumed[2]] and _claimed(engine, "w1") == resumed[1:2]
    rows = query(database_url, "SELECT status, worker, attempts FROM run")
    assert set(rows) == {(Status.RUNNING, "w1", 1), (Status.RUNNING, "w2", 1)}
    assert _claimed(engine, "w1") == []
    engine.dispose()


@pytest.mark.both_databases
def test_claimers_racing_for_groups_claim_every_seed_exactly_once(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    queue.register_worker(engine, "alive", "cpu")  # one worker alive: a claim may take a whole group
    groups = {key: _seeds(engine, key) for key in map(str, range(12))}
    engines = [make_engine(database_url) for _ in range(CLAIMERS)]
    start = threading.Barrier(CLAIMERS)

    def claim_all(i: int) -> list[list[int]]:
        start.wait()
        claims = []
        while ids := _claimed(engines[i], f"w{i}"):
            claims.append(ids)
        return claims

    with ThreadPoolExecutor(CLAIMERS) as pool:
        claims = [c for claimer in pool.map(claim_all, range(CLAIMERS)) for c in claimer]
    key_of = {run_id: key for key, ids in groups.items() for run_id in ids}
    assert sorted(run_id for ids in claims for run_id in ids) == sorted(key_of)
    assert all(len({key_of[run_id] for run_id in ids}) == 1 for ids in claims)  # one group per claim
    assert max(map(len, claims)) > 1
    running = Counter(run_id for run_id, data in query(database_url, "SELECT run_id, data FROM event WHERE kind = 'status'")
                      if json.loads(data)["status"] == "running")
    assert running == {run_id: 1 for run_id in key_of}
    for e in engines:
        e.dispose()
    engine.dispose()


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
