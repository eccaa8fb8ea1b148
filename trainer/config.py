"""A run's whole configuration: one typed object, stored as JSON with the run.

Importable without torch (the server validates requests with it). A run starts from a preset
(the zoo's, or one a user saved) and may change anything: hyper-parameters and the network
itself (`layers`, in the language of trainer/layers.py). `resolve()` fills the gaps from the
preset and checks the whole: the network against the dataset (trainer/shapes.py), the
options against the dataset (trainer/datasets.py). Unknown keys are an error, never ignored."""

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trainer import datasets
from trainer.layers import KINDS, LayerError
from trainer.shapes import MAX_LAYERS, Table, check
from trainer.zoo import Preset, UnknownModel, get_preset

DATASETS = tuple(datasets.DATASETS)
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "exponential", "polynomial", "onecycle")
AUGMENTS = tuple(datasets.AUGMENTS)
NORMALIZATIONS = tuple(datasets.NORMALIZATIONS)
LIMITS = {"epochs": (1, 1000), "batch_size": (1, 65536)}


class ConfigError(ValueError):
    """A refused configuration: `loc` is the field's path in the request (("layers", 2), ("lr",))."""

    def __init__(self, loc: tuple, message: str):
        self.loc, self.message = loc, message
        super().__init__(message)


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    model: Annotated[str, Field(min_length=1, max_length=100,
                                description="The preset the run starts from: a zoo id (GET /zoo) or a saved preset's")]
    # No NUL: PostgreSQL text cannot hold one.
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$",
                               description="Label shown in the dashboard")]
    dataset: Annotated[Literal[DATASETS], Field(description="Defaults to the preset's; fashion-mnist fits the MNIST zoo")]
    layers: Annotated[list[Annotated[str, Field(max_length=1000)]], Field(
        min_length=1, max_length=MAX_LAYERS * 10,
        description="The network, one layer string each (POST /architectures/check); defaults to the preset's")]
    epochs: Annotated[int, Field(ge=1, le=1000)]
    batch_size: Annotated[int, Field(ge=1, le=65536)]
    optimizer: Literal[OPTIMIZERS]
    lr: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False, description="Learning rate (peak lr for onecycle)")]
    momentum: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False, description="SGD momentum (Nesterov)")]
    weight_decay: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
    scheduler: Annotated[Literal[SCHEDULERS], Field(description="Stepped once per epoch; onecycle per batch")]
    gamma: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False, description="ExponentialLR gamma")]
    power: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False, description="PolynomialLR power")]
    total_iters: Annotated[int, Field(ge=1, le=1000, description="PolynomialLR epochs until lr reaches 0 (torch's default 5)")]
    grad_clip: Annotated[float | None, Field(gt=0, le=100, allow_inf_nan=False,
                                             description="Clip each gradient element to ±grad_clip (none: no clipping)")] = None
    augment: Literal[AUGMENTS]
    augment_from_epoch: Annotated[int, Field(ge=1, le=1000, description="First epoch (1-based) trained with augmentation")]
    normalize: Annotated[Literal[NORMALIZATIONS], Field(description="mnist = the notes' (0.1307, 0.3081), cifar = per-channel")]
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)]
    train_subset: Annotated[int | None, Field(ge=2, description="Train on the first N images only (smoke tests)")] = None
    test_subset: Annotated[int | None, Field(ge=1, description="Evaluate on the first N test images only")] = None

    @model_validator(mode="after")
    def _options_fit_the_dataset(self) -> "RunConfig":
        why = datasets.misfit(self.dataset, normalize=self.normalize, augment=self.augment)
        if why:
            raise ValueError(why)
        return self


def resolve(overrides: dict[str, Any], preset: Preset | None = None) -> RunConfig:
    """The preset's network and defaults, overridden by the request's non-null fields, checked
    whole. Raises UnknownModel, pydantic's ValidationError (a field's value) or ConfigError
    (the network, or a value that does not fit it)."""
    preset = preset or get_preset(overrides["model"])
    merged = {"name": preset.id, "dataset": preset.dataset, "seed": 0, "layers": list(preset.layers),
              **preset.defaults}
    merged.update({k: v for k, v in overrides.items() if v is not None and k not in ("parent", "seeds")})
    config = RunConfig(**merged)
    network(config)
    return config


def network(config: RunConfig) -> Table:
    """The checked network of a config: its shapes and exact parameter count."""
    try:
        table = check(config.layers, config.dataset)
    except LayerError as e:
        raise ConfigError(("layers",) if e.index is None else ("layers", e.index - 1), e.message) from None
    if config.batch_size < 2 and any(KINDS[row.spec.kind].batch_norm for row in table.rows):
        raise ConfigError(("batch_size",), "batch_size 1 cannot train this network: its BatchNorm layers need "
                                           "at least 2 images per batch")
    return table


def group_key(config: dict[str, Any]) -> str:
    """Runs whose whole configuration but the seed (and the name, a label) is the same form a
    group; this is its key. Stored with the run (app/models.py) when it is queued."""
    same = {k: v for k, v in config.items() if k not in ("seed", "name")}
    return hashlib.sha256(json.dumps(same, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


__all__ = ["ConfigError", "RunConfig", "UnknownModel", "group_key", "network", "resolve"]
