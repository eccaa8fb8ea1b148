"""Sweeps as runs: a sweep's trials are queued as runs of the run table (app/queue.py), each
told to the sweep's Optuna study when it ends (app/studies.py); the sweep ends when they have.

    start(engine, sweep, dims, points)  POST /sweeps: grid and random queue every trial at once,
                                        tpe its first few
    advance(engine, sweep_id)           tell the study every ended trial, ask tpe for more (up to
                                        the budget, a few queued ahead of the workers), close the sweep
    settle(engine, run_id)              tell the study how one trial ended (the worker, at once)
    cancel(session, engine, sweep_id)   cancel the queued trials, ask no more
    run_forever(every)                  the server's loop: advance every sweep still at work

Only the server asks (this loop, in one process; a tpe sampler learns from every ended
trial). A trial's run is inserted under the database's write lock after counting the sweep's
runs and checking that it still runs, so a sweep never queues more than its budget, nor
anything once cancelled, whatever the number of workers. A trial asked for but not queued
when the server died is a running trial of the study without a run: the next loop queues it
(a trial whose run was deleted is told failed instead: tpe trials are marked once queued).
A trial whose worker was killed is a run like any other: it resumes, and is told once, when
it ends (telling is idempotent, and the loop tells whatever a killed worker could not)."""

import asyncio
import logging
import threading
import uuid

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app import queue, space, studies
from app.db import get_engine, writer
from app.models import TERMINAL, Metric, Run, Status, Sweep, SweepStatus, utcnow
from app.settings import get_settings
from trainer.config import ConfigError, RunConfig, group_key, network

log = logging.getLogger("zoolab.sweeper")
AHEAD = 2  # tpe trials kept queued beyond one per live worker, so no worker waits for an ask
# One step at a time in this process: POST /sweeps and the loop would otherwise ask at once,
# both seeing the same trials (and a sampler seeded alike would propose the same point twice).
_advancing = threading.Lock()


def study_name() -> str:
    return f"zoolab-sweep-{uuid.uuid4().hex[:16]}"


def dimensions(sweep: Sweep) -> list[space.Dimension]:
    return [space.Dimension(**{**d, "choices": tuple(d.get("choices") or ())}) for d in sweep.space]


def describe(point: dict[str, space.Value]) -> str:
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in point.items())


def trial_run(sweep: Sweep, base: RunConfig, number: int, point: dict[str, space.Value]) -> Run:
    """The run of trial `number` (ConfigError if its config is refused)."""
    name = f"{sweep.name} · trial {number}: {describe(point)}"[:200]
    config = space.config_of(base, point).model_copy(update={"name": name})
    stored = config.model_dump()
    return Run(name=name, model=config.model, dataset=config.dataset, config=stored, params=network(config).params,
               epochs_total=config.epochs, parent_id=sweep.base_run_id, group_key=group_key(stored),
               sweep_id=sweep.id, trial_number=number)


def start(engine: Engine, sweep: Sweep, dims: list[space.Dimension], points: list[dict]) -> None:
    """Store a new sweep and queue its first trials (all of them for grid and random). The study
    is made first: if the server dies before the sweep is stored, an unused study is all that is
    left."""
    numbers = studies.create(engine, sweep.study_name, dims, points)
    base = RunConfig(**sweep.base)
    runs = [trial_run(sweep, base, n, p) for n, p in zip(numbers, points)]  # before taking the write lock
    with Session(writer(engine)) as s:
        s.add(sweep)
        s.flush()
        for run in runs:
            run.sweep_id = sweep.id
        if runs:
            queue.enqueue(s, *runs)  # commits the sweep with them
        else:
            s.commit()
        s.refresh(sweep)
    advance(engine, sweep.id)


def _queue_trial(engine: Engine, sweep: Sweep, number: int, point: dict) -> int | None:
    """Queue trial `number` unless the sweep stopped or has its budget of runs; the run's id."""
    run = trial_run(sweep, RunConfig(**sweep.base), number, point)
    with Session(writer(engine)) as s:
        status = s.execute(select(Sweep.status).where(Sweep.id == sweep.id).with_for_update()).scalar_one()
        made = s.execute(select(func.count()).select_from(Run).where(Run.sweep_id == sweep.id)).scalar_one()
        if status != SweepStatus.RUNNING or made >= sweep.budget:
            s.rollback()
            return None
        queue.enqueue(s, run)
        return run.id


def _note(engine: Engine, sweep_id: int, **values) -> None:
    with Session(writer(engine)) as s:
        s.execute(update(Sweep).where(Sweep.id == sweep_id).values(**values))
        s.commit()


def _runs(engine: Engine, sweep_id: int) -> dict[int, Run]:
    with Session(engine) as s:
        return {r.trial_number: r for r in s.execute(select(Run).where(Run.sweep_id == sweep_id)).scalars()}


def _refresh_best(engine: Engine, sweep: Sweep, runs: dict[int, Run]) -> None:
    """The finished trial with the best test accuracy (the first of equals), written if it changed."""
    finished = [r for r in runs.values() if r.status == Status.FINISHED and r.best_test_acc is not None]
    best = min(finished, key=lambda r: (-r.best_test_acc, r.id)).id if finished else None
    if best != sweep.best_run_id:
        _note(engine, sweep.id, best_run_id=best)


def advance(engine: Engine, sweep_id: int) -> list[int]:
    """One step of a sweep still at work; the ids of the runs it queued."""
    with _advancing:
        return _advance(engine, sweep_id)


def _advance(engine: Engine, sweep_id: int) -> list[int]:
    with Session(engine) as s:
        sweep = s.get(Sweep, sweep_id)
        workers = queue.count_alive_workers(s, get_settings().stale_seconds)
    if sweep is None or sweep.finished_at is not None:
        return []
    study = studies.load(engine, sweep.study_name)
    runs = _runs(engine, sweep_id)
    trials = studies.trials(study)
    queued_ids = []
    for trial in trials:
        if trial.state != studies.TrialState.RUNNING:
            continue
        run = runs.get(trial.number)
        if run is not None and run.status in TERMINAL:
            studies.tell(study, trial.number, run.status, run.best_test_acc)
        elif run is None and (sweep.sampler != "tpe" or studies.RUN_ID in trial.user_attrs):
            studies.tell(study, trial.number, Status.FAILED, None)  # its run was deleted
        elif run is None:  # asked, then the server stopped before queueing it
            run_id = _try_queue(engine, sweep, study, trial.number, trial.params)
            queued_ids += [run_id] if run_id else []
    _refresh_best(engine, sweep, runs)
    if sweep.status == SweepStatus.RUNNING and sweep.sampler == "tpe":
        waiting = sum(r.status == Status.QUEUED for r in runs.values()) + len(queued_ids)
        for _ in range(min(max(AHEAD, workers + 1) - waiting, sweep.budget - len(trials))):
            asked = len(studies.trials(study))
            study.sampler = studies.sampler(sweep.sampler, sweep.seed, sweep.budget, asked)
            number, point = studies.ask(study, dimensions(sweep))
            run_id = _try_queue(engine, sweep, study, number, point)
            queued_ids += [run_id] if run_id else []
    _close_if_done(engine, sweep, study)
    return queued_ids


def _try_queue(engine: Engine, sweep: Sweep, study, number: int, point: dict) -> int | None:
    """Queue an asked trial; a trial that cannot be queued is told failed, with the reason kept."""
    try:
        run_id = _queue_trial(engine, sweep, number, point)
        reason = None if run_id else "the sweep stopped or reached its budget"
    except ConfigError as e:  # the checks of the space make this rare: a combination they missed
        run_id, reason = None, e.message
    if run_id is None:
        studies.tell(study, number, Status.FAILED, None)
        _note(engine, sweep.id, error=f"trial {number} ({describe(point)}) was not queued: {reason}")
    else:
        studies.mark_queued(engine, sweep.study_name, number, run_id)
    return run_id


def _close_if_done(engine: Engine, sweep: Sweep, study) -> None:
    """The sweep is done when no trial is left to ask and every trial has ended and been told."""
    trials = studies.trials(study)
    open_trials = any(t.state == studies.TrialState.RUNNING for t in trials)
    more = sweep.status == SweepStatus.RUNNING and sweep.sampler == "tpe" and len(trials) < sweep.budget
    if open_trials or more:
        return
    status = SweepStatus.FINISHED if sweep.status == SweepStatus.RUNNING else sweep.status
    with Session(writer(engine)) as s:
        s.execute(update(Sweep).where(Sweep.id == sweep.id, Sweep.finished_at.is_(None))
                  .values(status=status, finished_at=utcnow()))
        s.commit()


def settle(engine: Engine, run_id: int) -> None:
    """Tell the study how the trial of run `run_id` ended, if it is a trial and has ended."""
    with Session(engine) as s:
        run = s.get(Run, run_id)
        sweep = s.get(Sweep, run.sweep_id) if run is not None and run.sweep_id is not None else None
    if sweep is None or run.trial_number is None or run.status not in TERMINAL:
        return
    studies.tell(studies.load(engine, sweep.study_name), run.trial_number, run.status, run.best_test_acc)
    _refresh_best(engine, sweep, _runs(engine, sweep.id))


def cancel(session: Session, engine: Engine, sweep_id: int) -> bool:
    """running → cancelled: its queued trials are cancelled in the same transaction, and it asks
    for no more; its running trials go on and are told when they end. False if not running."""
    if not session.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.status == SweepStatus.RUNNING)
                           .values(status=SweepStatus.CANCELLED)).rowcount:
        session.rollback()
        return False
    queue.cancel_sweep_queue(session, sweep_id)
    session.commit()
    advance(engine, sweep_id)  # tells the study, and closes the sweep if nothing runs
    return True


def trial_report(engine: Engine, run: Run) -> studies.TrialReport | None:
    """What a worker reports a trial's epochs to; None for a run outside a sweep, or when the
    study cannot be reached (the run then trains unpruned, and is told at its end)."""
    if run.sweep_id is None or run.trial_number is None:
        return None
    try:
        with Session(engine) as s:
            sweep = s.get(Sweep, run.sweep_id)
            done = s.execute(select(Metric.epoch, Metric.value).where(
                Metric.run_id == run.id, Metric.key == "test_acc", Metric.epoch <= run.epochs_done)).all()
        if sweep is None:
            return None
        report = studies.TrialReport(engine, sweep.study_name, run.trial_number, sweep.pruner, run.epochs_total)
        report.catch_up(dict(done))  # epochs a killed worker committed but did not report
        return report
    except Exception:
        log.exception("run %s: the study of sweep %s cannot be reached; training without pruning",
                      run.id, run.sweep_id)
        return None


def advance_all(engine: Engine) -> None:
    with Session(engine) as s:
        ids = s.execute(select(Sweep.id).where(Sweep.finished_at.is_(None)).order_by(Sweep.id)).scalars().all()
    for sweep_id in ids:
        try:
            advance(engine, sweep_id)
        except Exception:  # one sweep's trouble (a busy database) must not stop the others
            log.exception("sweep %s: advancing failed; retrying", sweep_id)


async def run_forever(every: float) -> None:
    while True:
        await asyncio.to_thread(advance_all, get_engine())
        await asyncio.sleep(every)
