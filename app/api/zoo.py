"""/zoo: the presets a run can start from — the notes' (source "notes") and the ones users
saved (source "user", GET /presets) — and the options a run can take."""

from typing import Any

from fastapi import APIRouter

from app import filters, presets
from app.db import SessionDep
from trainer import config
from trainer.layers import KINDS
from trainer.zoo import describe

router = APIRouter(tags=["zoo"])


@router.get("/zoo")
def list_zoo(session: SessionDep) -> list[dict[str, Any]]:
    return [describe(p) for p in presets.all_presets(session).values()]


@router.get("/zoo/options")
def zoo_options() -> dict[str, Any]:
    return {"datasets": config.DATASETS, "optimizers": config.OPTIMIZERS, "schedulers": config.SCHEDULERS,
            "augments": config.AUGMENTS, "normalizations": config.NORMALIZATIONS,
            "limits": {k: list(v) for k, v in config.LIMITS.items()},
            # the run config's keys that GET /runs filters and sorts on, "number" or "text"
            "config_keys": {k: "number" if filters.NUMERIC[k] else "text" for k in filters.CONFIG_KEYS},
            # each layer kind and its arguments, for the layer editor's help line
            "layers": {name: kind.usage(name) for name, kind in KINDS.items()}}
