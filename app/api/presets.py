"""/presets: networks with their defaults that users saved ("Save as my preset"), launched by
id like the zoo's (POST /runs {"model": id}) and listed beside them in GET /zoo. Runs that used
a preset keep their own copy of its layers: renaming or deleting it changes no run."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Response, status
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from app import presets
from app.auth import Authorized
from app.db import SessionDep, WriteSessionDep
from app.models import MAX_ID, Run, UserPreset
from trainer.config import ConfigError, RunConfig, network
from trainer.zoo import DEFAULT_KEYS, PRESETS, describe

router = APIRouter(tags=["presets"])
PresetId = Annotated[str, PathParam(max_length=100, pattern=presets.ID_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]*\S[^\x00-\x1f]*$")]


class PresetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name
    from_run: Annotated[int, Field(ge=1, le=MAX_ID, description="The run whose network, dataset and "
                                                              "hyper-parameters become the preset's")]
    id: Annotated[str | None, Field(max_length=100, pattern=presets.ID_PATTERN,
                                    description="Default: made from the name (\"My net\" → my-net)")] = None
    description: Annotated[str, Field(max_length=1000)] = ""


class PresetUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name | None = None
    description: Annotated[str | None, Field(max_length=1000)] = None


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


def _read(row: UserPreset) -> dict[str, Any]:
    return {**describe(presets.as_preset(row)), "name": row.name, "from_run_id": row.from_run_id,
            "created_at": row.created_at.isoformat(timespec="seconds")}


def _get(session, preset_id: str) -> UserPreset:
    row = session.get(UserPreset, preset_id)
    if row is None:
        detail = (f"{preset_id!r} is one of the notes' presets; only saved presets can change" if preset_id in PRESETS
                  else f"saved preset {preset_id!r} not found")
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail)
    return row


@router.get("/presets")
def list_presets(session: SessionDep) -> list[dict[str, Any]]:
    return [_read(row) for row in session.execute(select(UserPreset).order_by(UserPreset.created_at)).scalars()]


@router.post("/presets", status_code=status.HTTP_201_CREATED, dependencies=[Authorized])
def create_preset(body: PresetCreate, session: WriteSessionDep) -> dict[str, Any]:
    run = session.get(Run, body.from_run)
    if run is None:
        raise _invalid("from_run", f"run {body.from_run} does not exist")
    preset_id = body.id or presets.slug(body.name)
    if not preset_id:
        raise _invalid("name", "the name needs a letter or a digit to make an id from; or give an id")
    if preset_id in PRESETS or session.get(UserPreset, preset_id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"a preset with id {preset_id!r} exists already; "
                            "choose another name or id")
    try:
        config = RunConfig(**run.config)
        table = network(config)
    except (ValidationError, ConfigError) as e:
        raise _invalid("from_run", f"run {run.id}'s configuration is not valid any more: {e}") from None
    row = UserPreset(id=preset_id, name=body.name, dataset=config.dataset, layers=list(config.layers),
                     defaults={k: getattr(config, k) for k in DEFAULT_KEYS}, params=table.params,
                     description=body.description, from_run_id=run.id)
    session.add(row)
    session.commit()
    session.refresh(row)
    return _read(row)


@router.patch("/presets/{preset_id}", dependencies=[Authorized])
def update_preset(preset_id: PresetId, body: PresetUpdate, session: WriteSessionDep) -> dict[str, Any]:
    row = _get(session, preset_id)
    for key, value in body.model_dump(exclude_none=True).items():
        setattr(row, key, value)
    session.add(row)
    session.commit()
    session.refresh(row)
    return _read(row)


@router.delete("/presets/{preset_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Authorized])
def delete_preset(preset_id: PresetId, session: WriteSessionDep) -> Response:
    session.delete(_get(session, preset_id))
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
