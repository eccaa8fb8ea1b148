"""A run's whole configuration: one typed object, stored as JSON with the run.

Importable without torch (the server validates requests with it). `RunRequest` is what
`POST /runs` accepts: the same fields, all optional but `model`; `resolve()` fills the
gaps from the preset's defaults. Unknown keys are an error, never ignored."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from trainer import datasets
from trainer.zoo import UnknownModel, get_preset

DATASETS = tuple(datasets.DATASETS)
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "exponential", "polynomial", "onecycle")
AUGMENTS = tuple(datasets.AUGMENTS)
NORMALIZATIONS = tuple(datasets.NORMALIZATIONS)
LIMITS = {"epochs": (1, 1000), "batch_size": (1, 65536)}


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    model: Annotated[str, Field(description="Zoo preset id, e.g. mnist-logreg (GET /zoo)")]
    # No NUL: PostgreSQL text cannot hold one.
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$",
                               description="Label shown in the dashboard")]
    dataset: Annotated[Literal[DATASETS], Field(description="Defaults to the preset's; fashion-mnist fits the MNIST zoo")]
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

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        get_preset(value)  # UnknownModel is a ValueError: pydantic reports it on `model`
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "RunConfig":
        preset_shape = datasets.get_dataset(get_preset(self.model).dataset).shape
        shape = datasets.get_dataset(self.dataset).shape
        if shape != preset_shape:
            raise ValueError(f"dataset '{self.dataset}' does not fit model '{self.model}' "
                             f"({'x'.join(map(str, preset_shape))} input)")
        why = datasets.misfit(self.dataset, normalize=self.normalize, augment=self.augment)
        if why:
            raise ValueError(why)
        if self.batch_size < 2 and any(layer.startswith(("bn", "convblock", "inception", "resblock"))
                                       for layer in get_preset(self.model).layers):
            raise ValueError(f"batch_size 1 cannot train '{self.model}': its BatchNorm layers need "
                             "at least 2 images per batch")
        return self


def _optional(name: str, field) -> tuple[Any, Any]:
    annotation = field.rebuild_annotation()
    return annotation | None, Field(None, description=field.description)


RunRequest = create_model(
    "RunRequest",
    __config__=ConfigDict(extra="forbid", strict=True),
    model=(Annotated[str, Field(description="Zoo preset id, e.g. mnist-logreg (GET /zoo)")], ...),
    **{name: _optional(name, f) for name, f in RunConfig.model_fields.items() if name != "model"},
)
RunRequest.__doc__ = "Body of POST /runs: a preset id and any hyper-parameters to override."


def resolve(overrides: dict[str, Any]) -> RunConfig:
    """The preset's defaults, overridden by the request's non-null fields."""
    preset = get_preset(overrides["model"])
    merged = {"name": preset.id, "dataset": preset.dataset, "seed": 0, **preset.defaults}
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return RunConfig(**merged)


__all__ = ["RunConfig", "RunRequest", "resolve", "UnknownModel"]
