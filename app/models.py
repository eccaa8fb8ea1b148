"""Database tables. The run table is the job queue; metrics are a long table with the
latest figures summarised on the run row, so the runs table never scans metrics.

Run status (`Status`), and who moves it (each move is one UPDATE whose WHERE clause
checks the status it leaves; see app/queue.py). Worker status is `WorkerStatus`.

    queued    --claim (worker)-----------> running
    queued    --cancel (API)-------------> cancelled
    running   --last epoch (worker)------> finished
    running   --error / NaN (worker)-----> failed
    running   --cancel_requested (worker)> cancelled
    running   --a sweep's pruner (worker)> pruned (a weak trial stopped early; the reason in `error`)
    running   --worker lost (reaper)-----> queued (resumes from its last epoch) | failed
    failed, cancelled --retry (API)------> queued (resumes from its last epoch)
"""

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint, and_, text
from sqlmodel import Field, SQLModel

# Ids are 32-bit integers on PostgreSQL: a larger one is a bad request, not a database error.
MAX_ID = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PRUNED = "pruned"


TERMINAL = (Status.FINISHED, Status.FAILED, Status.CANCELLED, Status.PRUNED)


class RunBase(SQLModel):
    """A run's columns, shared by the table (`Run`) and the API's view of it (`app.schemas.RunRead`)."""

    name: str = Field(max_length=200)
    model: str = Field(index=True, max_length=100)
    dataset: str = Field(index=True, max_length=40)
    status: str = Field(default=Status.QUEUED, max_length=16)
    config: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    params: int
    created_at: datetime = Field(default_factory=utcnow, index=True)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    worker: str | None = Field(default=None, max_length=200)
    attempts: int = 0
    cancel_requested: bool = False
    epochs_total: int
    epochs_done: int = 0
    epoch_progress: float = 0.0
    eta_seconds: float | None = None
    best_test_acc: float | None = None
    final_test_acc: float | None = None
    # Seconds spent training, summed over attempts (excludes time waiting in the queue).
    total_seconds: float = 0.0
    images_per_second: float | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    traceback: str | None = Field(default=None, sa_column=Column(Text))
    device: str | None = Field(default=None, max_length=100)
    versions: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    has_checkpoint: bool = False
    has_artifacts: bool = False
    # The run this one was derived from (lineage); NULL once that run is deleted.
    parent_id: int | None = Field(default=None, foreign_key="run.id", ondelete="SET NULL", index=True)
    # trainer.config.group_key of the config: runs that differ only in seed share it. Computed
    # when the run is queued; a migration that changes what a config holds recomputes it.
    group_key: str = Field(default="", max_length=16, index=True)
    # What a user wrote about the run (rules: app/labels.py). Server defaults, as in migration
    # 0005, so rows inserted without them (bulk inserts) start empty too.
    notes: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default=text("'[]'")))
    # The sweep that queued this run, and the number of its trial in the sweep's Optuna study.
    sweep_id: int | None = Field(default=None, foreign_key="sweep.id", ondelete="SET NULL", index=True)
    trial_number: int | None = None


class Run(RunBase, table=True):
    # AUTOINCREMENT: SQLite would otherwise give the newest run's id again once it is deleted,
    # and streams replaying that id would show the deleted run's events under the new one.
    # One run per trial of a sweep (NULLs are distinct: runs outside sweeps are not constrained).
    __table_args__ = (Index("ix_run_status_id", "status", "id"),
                      UniqueConstraint("sweep_id", "trial_number", name="uq_run_sweep_trial"),
                      {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)


class UserPreset(SQLModel, table=True):
    """A network with its defaults, saved by a user: launched by id like the zoo's presets."""

    __tablename__ = "preset"

    id: str = Field(primary_key=True, max_length=100)
    name: str = Field(max_length=200)
    dataset: str = Field(max_length=40)
    layers: list[str] = Field(sa_column=Column(JSON, nullable=False))
    defaults: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    params: int
    description: str = Field(default="", max_length=1000)
    # The run it was saved from, if any (kept as a plain id: the run may be deleted later).
    from_run_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)


class SweepStatus(StrEnum):
    RUNNING = "running"      # trials are queued, training, or still to be asked for
    FINISHED = "finished"    # every trial of the budget ended
    CANCELLED = "cancelled"  # its queued trials were cancelled; it asks for no more


class SweepBase(SQLModel):
    """A search over a space of run configs (app/space.py); its trials are runs (`Run.sweep_id`),
    its sampler's and pruner's memory an Optuna study in this same database (app/studies.py)."""

    name: str = Field(max_length=200)
    model: str = Field(max_length=100)
    dataset: str = Field(max_length=40)
    # The resolved config every trial starts from; a trial changes only the space's keys.
    base: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # The run the base was taken from (each trial's parent), if any; kept as a plain id.
    base_run_id: int | None = None
    space: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))  # app/space.py Dimension
    sampler: str = Field(max_length=16)   # grid | random | tpe
    pruner: str = Field(max_length=16)    # none | median | halving
    budget: int                           # trials (runs) the sweep makes at most
    seed: int = 0                         # of the sampler
    status: str = Field(default=SweepStatus.RUNNING, max_length=16, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    # The finished trial with the best test accuracy so far (a plain id: the run may be deleted).
    best_run_id: int | None = None
    study_name: str = Field(max_length=100, unique=True)
    # Why the sweep asked for no more trials than it did, when that was not the budget.
    error: str | None = Field(default=None, sa_column=Column(Text))


class Sweep(SweepBase, table=True):
    id: int | None = Field(default=None, primary_key=True)


class Metric(SQLModel, table=True):
    """One figure of one finished epoch (train_loss, test_acc, lr, ...)."""

    __table_args__ = (UniqueConstraint("run_id", "epoch", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", ondelete="CASCADE")
    epoch: int
    key: str = Field(max_length=40)
    value: float | None = None


class Progress(SQLModel, table=True):
    """A point within an epoch, so a live curve moves during long epochs."""

    __table_args__ = (Index("ix_progress_run", "run_id", "epoch"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", ondelete="CASCADE")
    epoch: float
    train_loss: float | None = None
    train_acc: float | None = None
    wall_seconds: float


class Event(SQLModel, table=True):
    """What changed, in order: the server streams these to browsers (`id` is the SSE id)."""

    id: int | None = Field(default=None, primary_key=True)
    run_id: int | None = Field(default=None, index=True)
    kind: str = Field(max_length=16)  # status | epoch | progress | deleted
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class WorkerStatus(StrEnum):
    IDLE = "idle"        # polling the queue
    BUSY = "busy"        # training `current_run_id`
    STOPPED = "stopped"  # exited in order (or its supervisor saw it die)
    LOST = "lost"        # stopped heartbeating; a reaper marked it


class WorkerBase(SQLModel):
    name: str = Field(primary_key=True, max_length=200)
    host: str = Field(max_length=200)
    pid: int
    device: str = Field(max_length=100)
    status: str = Field(default=WorkerStatus.IDLE, max_length=16)
    current_run_id: int | None = None
    started_at: datetime = Field(default_factory=utcnow)
    heartbeat_at: datetime = Field(default_factory=utcnow)
    # The device's memory as of the last heartbeat: a GPU's (used by every process on it), or
    # this worker process's resident memory and the machine's total on a CPU.
    memory_used_bytes: int | None = Field(default=None, sa_type=BigInteger)
    memory_total_bytes: int | None = Field(default=None, sa_type=BigInteger)
    utilization: float | None = None  # GPU busy %, where NVML is available


class WorkerRecord(WorkerBase, table=True):
    """What the database knows of a worker process (the process itself is app.worker.Worker)."""

    __tablename__ = "worker"


def worker_alive(stale_seconds: float):
    """The one test of "is this worker alive": heartbeat fresh and not stopped or lost."""
    since = utcnow() - timedelta(seconds=stale_seconds)
    return and_(WorkerRecord.heartbeat_at >= since,
                WorkerRecord.status.in_([WorkerStatus.IDLE, WorkerStatus.BUSY]))
