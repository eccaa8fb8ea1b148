"""Response shapes of the API (requests are `trainer.config.RunRequest`)."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer

from app.models import Run
from trainer.zoo import PRESETS

# Every timestamp is UTC; the API says so explicitly.
UTC = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(timespec="seconds"), return_type=str)]


class RunRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    model: str
    dataset: str
    status: str
    params: int
    config: dict[str, Any]
    created_at: UTC
    started_at: UTC | None
    finished_at: UTC | None
    heartbeat_at: UTC | None
    worker: str | None
    attempts: int
    cancel_requested: bool
    epochs_total: int
    epochs_done: int
    epoch_progress: float
    eta_seconds: float | None
    best_test_acc: float | None
    final_test_acc: float | None
    total_seconds: float
    images_per_second: float | None
    error: str | None
    traceback: str | None
    device: str | None
    versions: dict[str, Any] | None
    has_checkpoint: bool
    has_artifacts: bool
    queue_position: int | None = None
    notes_acc: float | None = None
    notes_seconds: float | None = None

    @classmethod
    def of(cls, run: Run, positions: dict[int, int] | None = None) -> "RunRead":
        preset = PRESETS.get(run.model)
        read = cls.model_validate(run)
        read.queue_position = (positions or {}).get(run.id)
        if preset is not None and run.dataset == preset.dataset:
            read.notes_acc, read.notes_seconds = preset.notes_acc, preset.notes_seconds
        return read


class RunPage(BaseModel):
    items: list[RunRead]
    total: int
    limit: int
    offset: int
    last_event_id: int


class EpochRead(BaseModel):
    epoch: int
    train_loss: float | None = None
    train_acc: float | None = None
    test_loss: float | None = None
    test_acc: float | None = None
    lr: float | None = None
    epoch_seconds: float | None = None
    images_per_second: float | None = None
    peak_memory_bytes: float | None = None
    wall_seconds: float | None = None


class ProgressRead(BaseModel):
    epoch: float
    train_loss: float | None
    train_acc: float | None
    wall_seconds: float


class MetricsRead(BaseModel):
    run_id: int
    epochs: list[EpochRead]
    progress: list[ProgressRead]
    last_event_id: int


class Misclassified(BaseModel):
    k: int
    index: int
    true: int
    pred: int


class ArtifactsRead(BaseModel):
    class_names: list[str]
    confusion_matrix: list[list[int]]
    per_class_acc: list[float]
    misclassified: list[Misclassified]


class WorkerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    host: str
    pid: int
    device: str
    status: str
    current_run_id: int | None
    started_at: UTC
    heartbeat_at: UTC
    alive: bool = False


class Health(BaseModel):
    ok: bool
    workers_alive: int
