"""/zoo: the presets of the model zoo and the options a run can take."""

from typing import Any

from fastapi import APIRouter

from trainer import config
from trainer.zoo import PRESETS, describe

router = APIRouter(tags=["zoo"])


@router.get("/zoo")
def list_zoo() -> list[dict[str, Any]]:
    return [describe(p) for p in PRESETS.values()]


@router.get("/zoo/options")
def zoo_options() -> dict[str, Any]:
    return {"datasets": config.DATASETS, "optimizers": config.OPTIMIZERS, "schedulers": config.SCHEDULERS,
            "augments": config.AUGMENTS, "normalizations": config.NORMALIZATIONS,
            "limits": {k: list(v) for k, v in config.LIMITS.items()}}
