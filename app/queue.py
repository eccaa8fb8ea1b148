"""The run table as a queue: every status move is one UPDATE whose WHERE clause checks
the status it leaves, so two workers never claim one run and a late writer never
overwrites a decision taken by someone else. Shared by the server and the workers.

A worker's side: `claim()` returns a `Lease`, the one object that writes what the worker
does with its run (start, epochs, progress, heartbeat, end) and that knows whether the
run is still its own; `claim_group()` may return several, seeds of one group that the
worker trains together (app/seed_group.py), each still its own run with its own lease. The API's side: `enqueue`, `request_cancel`, `cancel_sweep_queue`, `retry`,
`remove`, in the caller's session. Reapers: `release_lost`, `reap_stale`."""

import math
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.db import writer
from app.models import TERMINAL, Event, Metric, Progress, Run, Status, WorkerRecord, WorkerStatus, utcnow, worker_alive


class LostRun(Exception):
    """The run is no longer ours: cancelled, requeued by a reaper or deleted."""


def _event(session: Session, run_id: int | None, kind: str, **data: Any) -> None:
    session.add(Event(run_id=run_id, kind=kind, data={"run_id": run_id, **data}))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


# --- workers --------------------------------------------------------------------------

def register_worker(engine: Engine, name: str, device: str, **stats: Any) -> None:
    with Session(writer(engine)) as s:
        worker = s.get(WorkerRecord, name) or WorkerRecord(name=name, host=socket.gethostname(), pid=0,
                                                           device=device)
        worker.pid, worker.device, worker.status = os.getpid(), device, WorkerStatus.IDLE
        worker.started_at = worker.heartbeat_at = utcnow()
        worker.current_run_id = None
        for key, value in stats.items():
            setattr(worker, key, value)
        s.add(worker)
        s.commit()


def _set_worker(engine: Engine, name: str, status: WorkerStatus, **values: Any) -> None:
    with Session(writer(engine)) as s:
        s.execute(update(WorkerRecord).where(WorkerRecord.name == name)
                  .values(status=status, current_run_id=None, **values))
        s.commit()


def worker_idle(engine: Engine, name: str, **stats: Any) -> None:
    """The heartbeat of a worker waiting for work (`stats`: its device's memory, utilisation)."""
    _set_worker(engine, name, WorkerStatus.IDLE, heartbeat_at=utcnow(), **stats)


def worker_stopped(engine: Engine, name: str) -> None:
    _set_worker(engine, name, WorkerStatus.STOPPED)


def count_alive_workers(session: Session, stale_seconds: float) -> int:
    return session.execute(select(func.count()).select_from(WorkerRecord)
                           .where(worker_alive(stale_seconds))).scalar_one()


# --- a claimed run --------------------------------------------------------------------

def claim(engine: Engine, worker: str) -> "Lease | None":
    """queued → running for the oldest queued run; None when the queue is empty."""
    leases = claim_group(engine, worker)
    return leases[0] if leases else None


def claim_group(engine: Engine, worker: str, most: int = 1, stale_seconds: float = 30.0,
                stackable: Callable[[dict], bool] = lambda config: True) -> "list[Lease]":
    """queued → running for the oldest queued run and, in the same transaction, for some of
    its seeds, so that a worker can train them together: when the run starts fresh (no epoch
    done, no checkpoint), is no sweep's trial and `stackable(its config)`, up to `most` runs
    of its group (same group_key, fresh, queued), its share of them: ceil(the group's fresh
    queued runs / alive workers), so that 3 seeds on 2 workers split 2 + 1 and on 1 worker
    train as 3. [] when the queue is empty."""
    with Session(writer(engine)) as s:
        oldest = select(Run.id).where(Run.status == Status.QUEUED).order_by(Run.id).limit(1)
        first = _take(s, engine, worker, oldest, Run.group_key, Run.config, Run.epochs_done, Run.has_checkpoint,
                      Run.sweep_id)
        if not first:
            s.rollback()
            return []
        run_id, key, config, epochs_done, has_checkpoint, sweep_id = first[0]
        ids = [run_id]
        if most > 1 and key and epochs_done == 0 and not has_checkpoint and sweep_id is None and stackable(config):
            fresh = (Run.status == Status.QUEUED, Run.group_key == key, Run.epochs_done == 0,
                     Run.has_checkpoint.is_(False), Run.sweep_id.is_(None))
            queued = 1 + s.execute(select(func.count()).select_from(Run).where(*fresh)).scalar_one()
            share = min(most, math.ceil(queued / max(count_alive_workers(s, stale_seconds), 1)))
            if share > 1:
                seeds = select(Run.id).where(*fresh).order_by(Run.id).limit(share - 1)
                ids += [row[0] for row in _take(s, engine, worker, seeds)]
        for claimed in ids:
            _event(s, claimed, "status", status=Status.RUNNING, worker=worker)
        s.commit()
        return [Lease(engine, claimed, worker) for claimed in ids]


def _take(session: Session, engine: Engine, worker: str, ids, *columns) -> list[tuple]:
    """queued → running for the runs that `ids` (a select of Run.id) picks; rows of their id
    and `columns`, by id. On PostgreSQL a run another claimer holds is skipped, never waited
    for. Picked first, then updated: an UPDATE ... WHERE id IN (a LIMITed SELECT ... SKIP
    LOCKED) may run its subquery again and take more runs than the LIMIT."""
    if engine.dialect.name == "postgresql":
        ids = ids.with_for_update(skip_locked=True)
    picked = session.execute(ids).scalars().all()
    if not picked:
        return []
    now = utcnow()
    return sorted(session.execute(update(Run)
                                  .where(Run.id.in_(picked), Run.status == Status.QUEUED)
                                  .values(status=Status.RUNNING, worker=worker, started_at=now,
                                          heartbeat_at=now, attempts=Run.attempts + 1, error=None,
                                          traceback=None, epoch_progress=0.0)
                                  .returning(Run.id, *columns)).all())


@dataclass(frozen=True)
class Lease:
    """A run claimed by `worker`. Every write checks that the run is still running and still
    this worker's; when it is not (cancelled, requeued by a reaper, deleted) the write
    changes nothing and raises `LostRun` (or returns False / True-to-stop, as each says)."""

    engine: Engine
    run_id: int
    worker: str

    def _owned(self):
        return (Run.id == self.run_id, Run.status == Status.RUNNING, Run.worker == self.worker)

    def _session(self) -> Session:
        return Session(writer(self.engine))

    def start(self, device: str, versions: dict, epochs_done: int, note: str | None = None) -> None:
        """Record the device and versions; forget anything past the epoch we resume from, and
        summarise the epochs kept. `note`: why the worker resumes from an earlier epoch than
        the run's last (a damaged checkpoint); it stays on the run as its `error`."""
        with self._session() as s:
            s.execute(delete(Metric).where(Metric.run_id == self.run_id, Metric.epoch > epochs_done))
            s.execute(delete(Progress).where(Progress.run_id == self.run_id, Progress.epoch > epochs_done))
            kept = s.execute(select(Metric.epoch, Metric.key, Metric.value).where(
                Metric.run_id == self.run_id, Metric.key.in_(["test_acc", "epoch_seconds"]))).all()
            accs = {epoch: value for epoch, key, value in kept if key == "test_acc" and value is not None}
            summary = dict(best_test_acc=max(accs.values(), default=None), final_test_acc=accs.get(epochs_done),
                           total_seconds=sum(v or 0.0 for _, key, v in kept if key == "epoch_seconds"))
            if note:
                summary["error"] = note
            if s.execute(update(Run).where(*self._owned()).values(
                    device=device, versions=versions, epochs_done=epochs_done, **summary)).rowcount != 1:
                s.rollback()
                raise LostRun(self.run_id)
            if note:
                _event(s, self.run_id, "status", status=Status.RUNNING, error=note)
            s.commit()

    def record_epoch(self, epoch: int, metrics: dict[str, float], wall_seconds: float,
                     has_checkpoint: bool) -> None:
        """One finished epoch: its metric rows and the run's summary, in one transaction."""
        with self._session() as s:
            run = s.execute(select(Run.best_test_acc).where(*self._owned())).first()
            if run is None:
                raise LostRun(self.run_id)
            test_acc = _finite(metrics.get("test_acc"))
            best = max(x for x in (run[0], test_acc, -1.0) if x is not None)
            s.execute(update(Run).where(*self._owned()).values(
                epochs_done=epoch, epoch_progress=0.0, best_test_acc=best if best >= 0 else None,
                final_test_acc=test_acc, total_seconds=Run.total_seconds + metrics["epoch_seconds"],
                images_per_second=_finite(metrics.get("images_per_second")),
                heartbeat_at=utcnow(), has_checkpoint=has_checkpoint))
            for key, value in metrics.items():
                s.add(Metric(run_id=self.run_id, epoch=epoch, key=key, value=_finite(value)))
            s.add(Metric(run_id=self.run_id, epoch=epoch, key="wall_seconds", value=wall_seconds))
            _event(s, self.run_id, "epoch", epoch=epoch, wall_seconds=wall_seconds,
                   **{k: _finite(v) for k, v in metrics.items()})
            s.commit()

    def record_progress(self, epoch: float, fraction: float, train_loss: float | None,
                        train_acc: float | None, wall_seconds: float, eta_seconds: float | None) -> None:
        with self._session() as s:
            if s.execute(update(Run).where(*self._owned()).values(
                    epoch_progress=fraction, eta_seconds=eta_seconds, heartbeat_at=utcnow())).rowcount != 1:
                s.rollback()
                raise LostRun(self.run_id)
            s.add(Progress(run_id=self.run_id, epoch=epoch, train_loss=_finite(train_loss),
                           train_acc=_finite(train_acc), wall_seconds=wall_seconds))
            _event(s, self.run_id, "progress", epoch=epoch, fraction=fraction, train_loss=_finite(train_loss),
                   train_acc=_finite(train_acc), wall_seconds=wall_seconds, eta_seconds=eta_seconds)
            s.commit()

    def heartbeat(self, **stats: Any) -> bool:
        """Refresh the worker's and the run's heartbeat (`stats`: the device's memory and
        utilisation). True if the run should stop: cancellation was asked for, or the run is
        no longer this worker's."""
        now = utcnow()
        with self._session() as s:
            s.execute(update(WorkerRecord).where(WorkerRecord.name == self.worker).values(
                heartbeat_at=now, current_run_id=self.run_id, status=WorkerStatus.BUSY, **stats))
            owned = s.execute(update(Run).where(*self._owned()).values(heartbeat_at=now)
                              .returning(Run.cancel_requested)).first()
            s.commit()
            return owned is None or bool(owned[0])

    def end(self, status: Status, error: str | None = None, traceback: str | None = None,
            has_artifacts: bool = False) -> bool:
        """running → finished | failed | cancelled. False if the run was not ours any more.
        Without an `error`, the run keeps what `start` noted (the claim cleared anything older)."""
        with self._session() as s:
            values: dict[str, Any] = dict(status=status, finished_at=utcnow(), eta_seconds=None, epoch_progress=0.0)
            said = {k: v for k, v in (("error", error), ("traceback", traceback)) if v is not None}
            if has_artifacts:
                values["has_artifacts"] = True
            if s.execute(update(Run).where(*self._owned()).values(**values, **said)).rowcount != 1:
                s.rollback()
                return False
            _event(s, self.run_id, "status", status=status, **({"error": error} if error else {}))
            s.commit()
            return True

    def release(self, reason: str) -> None:
        """Back to the queue at once, without counting an attempt (an orderly shutdown)."""
        release_lost(self.engine, max_attempts=1, worker=self.worker, run_id=self.run_id, reason=reason, refund=True)


# --- reapers ----------------------------------------------------------------------------

def release_lost(engine: Engine, max_attempts: int, *, stale_before: datetime | None = None,
                 worker: str | None = None, run_id: int | None = None, reason: str = "worker lost",
                 refund: bool = False) -> list[int]:
    """Runs whose worker vanished (stale heartbeat, or `worker` known dead) go back to the
    queue to resume from their last finished epoch, or fail once they were tried
    `max_attempts` times. `run_id`: that run only. `refund`: an orderly shutdown, which does
    not count as an attempt. Returns the ids it moved."""
    moved = {}
    with Session(writer(engine)) as s:
        # Rows are locked in one order everywhere, worker before run (as `Lease.heartbeat`
        # does) and runs by id, so concurrent reapers and heartbeats on PostgreSQL never deadlock.
        if stale_before is not None:
            s.execute(update(WorkerRecord)
                      .where(WorkerRecord.heartbeat_at < stale_before, WorkerRecord.status != WorkerStatus.STOPPED)
                      .values(status=WorkerStatus.LOST, current_run_id=None))
        where = [Run.status == Status.RUNNING]
        if stale_before is not None:
            where.append(Run.heartbeat_at < stale_before)
        if worker is not None:
            where.append(Run.worker == worker)
        if run_id is not None:
            where.append(Run.id == run_id)
        for lost_id, attempts, who in s.execute(select(Run.id, Run.attempts, Run.worker).where(*where)
                                                .order_by(Run.id)).all():
            retry = refund or attempts < max_attempts
            values = dict(status=Status.QUEUED, error=f"{reason} ({who}); requeued to resume", worker=None,
                          attempts=Run.attempts - (1 if refund else 0)) if retry else dict(
                status=Status.FAILED, finished_at=utcnow(),
                error=f"{reason} ({who}); gave up after {attempts} attempts")
            if s.execute(update(Run).where(Run.id == lost_id, *where).values(
                    eta_seconds=None, epoch_progress=0.0, **values)).rowcount:
                moved[lost_id] = values
        # Events last, after every row lock is taken (see app.db._events_in_commit_order).
        for lost_id, values in moved.items():
            _event(s, lost_id, "status", status=values["status"], error=values["error"])
        s.commit()
    return list(moved)


def reap_stale(engine: Engine, stale_seconds: float, max_attempts: int) -> list[int]:
    return release_lost(engine, max_attempts, stale_before=utcnow() - timedelta(seconds=stale_seconds))


# --- requests from the API (in the request's session) -------------------------------------

def enqueue(session: Session, *runs: Run) -> None:
    """Queue runs in one transaction (a group of seeds is queued whole, or not at all)."""
    session.add_all(runs)
    session.flush()
    for run in runs:
        _event(session, run.id, "status", status=Status.QUEUED)
    session.commit()
    for run in runs:
        session.refresh(run)


def request_cancel(session: Session, run_id: int) -> bool:
    """queued → cancelled at once; running → flagged, the worker stops within seconds."""
    if session.execute(update(Run).where(Run.id == run_id, Run.status == Status.QUEUED)
                       .values(status=Status.CANCELLED, finished_at=utcnow())).rowcount:
        _event(session, run_id, "status", status=Status.CANCELLED)
    elif session.execute(update(Run).where(Run.id == run_id, Run.status == Status.RUNNING)
                         .values(cancel_requested=True)).rowcount:
        _event(session, run_id, "status", status=Status.RUNNING, cancel_requested=True)
    else:
        session.rollback()
        return False
    session.commit()
    return True


def cancel_sweep_queue(session: Session, sweep_id: int) -> list[int]:
    """A sweep's queued runs → cancelled, in the caller's transaction (the caller commits)."""
    ids = session.execute(update(Run).where(Run.sweep_id == sweep_id, Run.status == Status.QUEUED)
                          .values(status=Status.CANCELLED, finished_at=utcnow()).returning(Run.id)).scalars().all()
    for run_id in ids:
        _event(session, run_id, "status", status=Status.CANCELLED)
    return list(ids)


def retry(session: Session, run_id: int) -> bool:
    """failed | cancelled → queued; the worker resumes from the last finished epoch."""
    if not session.execute(update(Run).where(Run.id == run_id, Run.status.in_([Status.FAILED, Status.CANCELLED]))
                           .values(status=Status.QUEUED, cancel_requested=False, error=None,
                                   traceback=None, finished_at=None, attempts=0, worker=None)).rowcount:
        session.rollback()
        return False
    _event(session, run_id, "status", status=Status.QUEUED)
    session.commit()
    return True


def remove(session: Session, run_id: int) -> bool:
    """Delete a run that is not running, with its metrics."""
    session.execute(delete(Metric).where(Metric.run_id == run_id))
    session.execute(delete(Progress).where(Progress.run_id == run_id))
    if not session.execute(delete(Run).where(Run.id == run_id, Run.status != Status.RUNNING)).rowcount:
        session.rollback()
        return False
    _event(session, run_id, "deleted")
    session.commit()
    return True


def queue_positions(session: Session) -> dict[int, int]:
    ids = session.execute(select(Run.id).where(Run.status == Status.QUEUED).order_by(Run.id)).scalars()
    return {run_id: i + 1 for i, run_id in enumerate(ids)}


__all__ = ["LostRun", "Lease", "TERMINAL"]
