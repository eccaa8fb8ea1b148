"""The API's request and response shapes (a run's configuration itself is trainer.config.RunConfig)."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_serializer

from app.lineage import diff, preset_config
from app.models import MAX_ID, Run, RunBase, WorkerBase
from trainer.config import RunConfig
from trainer.zoo import PRESETS, Preset


def _iso(moment: datetime | None) -> str | None:
    """Every timestamp is UTC, written to the second."""
    return None if moment is None else moment.isoformat(timespec="seconds")


MAX_SEEDS = 20  # runs one request may queue as a group of seeds


def _optional(field) -> tuple[Any, Any]:
    return field.rebuild_annotation() | None, Field(None, description=field.description)


RunRequest = create_model(
    "RunRequest",
    __config__=ConfigDict(extra="forbid", strict=True),
    model=(Annotated[str, Field(max_length=100, description="The preset to start from: a zoo id (GET /zoo) "
                                                            "or a saved preset's")], ...),
    **{name: _optional(f) for name, f in RunConfig.model_fields.items() if name != "model"},
    parent=(Annotated[int | None, Field(ge=1, le=MAX_ID, description="The run this one is derived from "
                                                                     "(lineage); its config is not copied")], None),
    seeds=(Annotated[int | list[Annotated[int, Field(ge=0, le=2**63 - 1)]] | None, Field(
        description=f"Queue one run per seed, as a group: a count (seeds 0..N-1) or a list; at most {MAX_SEEDS}")],
        None),
)
RunRequest.__doc__ = ("Body of POST /runs: a preset id and anything to change — hyper-parameters, the network "
                      "(`layers`), the parent run, the seeds.")


class RunRead(RunBase):
    model_config = ConfigDict(from_attributes=True)

    id: int
    queue_position: int | None = None
    notes_acc: float | None = None
    notes_seconds: float | None = None
    # What differs from the preset it started from ("bn1d 60 after layer 1", "lr 0.001").
    changes: list[str] = []

    @field_serializer("created_at", "started_at", "finished_at", "heartbeat_at")
    def _utc(self, moment: datetime | None) -> str | None:
        return _iso(moment)

    @classmethod
    def of(cls, run: Run, positions: dict[int, int] | None = None,
           presets: dict[str, Preset] | None = None) -> "RunRead":
        preset = (presets or PRESETS).get(run.model)
        read = cls.model_validate(run)
        read.queue_position = (positions or {}).get(run.id)
        if preset is not None:
            changes = diff(preset_config(preset), run.config)
            read.changes = [c.short for c in changes]
            if not changes or all(c.key != "layers" and c.key != "dataset" for c in changes):
                read.notes_acc, read.notes_seconds = preset.notes_acc, preset.notes_seconds
        return read


class RunCreated(RunRead):
    # Every run this request queued (several for a group of seeds), this one first.
    run_ids: list[int]


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


class WorkerRead(WorkerBase):
    model_config = ConfigDict(from_attributes=True)

    alive: bool = False

    @field_serializer("started_at", "heartbeat_at")
    def _utc(self, moment: datetime) -> str | None:
        return _iso(moment)


class Health(BaseModel):
    ok: bool
    workers_alive: int
