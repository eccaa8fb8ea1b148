"""/sweeps: search a space of run configs (app/space.py) — grid, random, or Optuna's TPE —
with a trial budget and optional early stopping of weak trials; follow its progress, its best
run, its trials with their parameters and results, the parameters' importances; cancel it.

    POST /sweeps {"base": {"model": "mnist-2fc-relu-55k", "epochs": 3},
                  "space": {"lr": {"low": 0.0003, "high": 0.03, "log": true},
                            "layers.2": {"low": 16, "high": 256, "log": true}},
                  "sampler": "tpe", "budget": 20, "pruner": "median"}
"""

from collections import Counter
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer
from sqlalchemy import select
from sqlmodel import Session

from app import presets, space, studies, sweeper
from app.auth import Authorized
from app.db import SessionDep, get_engine, writer
from app.filters import CONFIG_KEYS
from app.models import Run, Status, Sweep, SweepBase
from app.schemas import RunRequest, _iso
from trainer.config import ConfigError, RunConfig, UnknownModel, resolve
from trainer.layers import MAX_SIZE
from trainer.widths import sizeable

router = APIRouter(tags=["sweeps"])
SweepId = Annotated[int, PathParam(ge=1, le=2**62, description="Sweep id")]


class SweepRequest(BaseModel):
    """Body of POST /sweeps."""
    model_config = ConfigDict(extra="forbid", strict=True)

    base: RunRequest = Field(description="What every trial starts from, as the body of POST /runs: a preset "
                                         "and what to change (a run's whole config, with `parent`, to start "
                                         "from that run); no seeds")
    space: space.Space
    sampler: Literal[space.SAMPLERS] = Field("tpe", description="grid: every combination; random: draws; "
                                                                "tpe: Optuna's model-based search")
    budget: Annotated[int | None, Field(ge=1, le=2**31, description=f"Trials; at most {space.MAX_RUNS}. "
                                                                    "Grid: defaults to the grid's size")] = None
    pruner: Literal[studies.PRUNERS] = Field("none", description="Stop weak trials early by each epoch's test "
                                                                 "accuracy: Optuna's median or successive halving")
    seed: Annotated[int, Field(ge=0, le=2**31, description="Of the sampler")] = 0
    name: Annotated[str | None, Field(min_length=1, max_length=120)] = None


class Progress(BaseModel):
    budget: int
    trials: int = Field(description="runs the sweep queued so far")
    queued: int
    running: int
    finished: int
    pruned: int
    failed: int
    cancelled: int


class BestRun(BaseModel):
    id: int
    name: str
    best_test_acc: float | None
    params: int
    config: dict[str, Any]


class SweepRead(SweepBase):
    model_config = ConfigDict(from_attributes=True)

    id: int
    progress: Progress
    best: BestRun | None

    @field_serializer("created_at", "finished_at")
    def _utc(self, moment) -> str | None:
        return _iso(moment)


class SweepCreated(SweepRead):
    run_ids: list[int] = Field(description="the sweep's runs queued so far (by this request, or by the server's "
                                              "sweep loop if it took the first step)")


class TrialRead(BaseModel):
    number: int
    state: str = Field(description="the trial's state in the study: running, complete, pruned or fail")
    params: dict[str, Any]
    value: float | None = Field(description="the objective: the run's best test accuracy (a pruned trial: "
                                            "its last reported one)")
    intermediate: dict[int, float] = Field(description="test accuracy per epoch, as the worker reported it")
    run_id: int | None
    status: str | None
    best_test_acc: float | None
    final_test_acc: float | None
    epochs_done: int | None
    epochs_total: int | None
    run_params: int | None = Field(description="the trial's network's parameter count")
    total_seconds: float | None
    error: str | None


class SweepDetail(SweepRead):
    trials: list[TrialRead]


class Importances(BaseModel):
    evaluator: str
    importances: dict[str, float] = Field(description="per parameter, summing to 1; most important first")
    trials: int = Field(description="finished trials they are computed from")
    note: str | None = Field(description="why there are none, when there are none")


def _invalid(loc: tuple, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", *loc), "msg": message, "type": "value_error"}])


def _get(session: Session, sweep_id: int) -> Sweep:
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"sweep {sweep_id} not found")
    return sweep


def _runs(session: Session, sweep_ids: list[int]) -> dict[int, list[Run]]:
    by_sweep: dict[int, list[Run]] = {i: [] for i in sweep_ids}
    for run in session.execute(select(Run).where(Run.sweep_id.in_(sweep_ids)).order_by(Run.id)).scalars():
        by_sweep[run.sweep_id].append(run)
    return by_sweep


def _read(sweep: Sweep, runs: list[Run], cls=SweepRead, **extra) -> SweepRead:
    counts = Counter(r.status for r in runs)
    best = next((r for r in runs if r.id == sweep.best_run_id), None)
    return cls(**sweep.model_dump(), **extra, progress=Progress(
        budget=sweep.budget, trials=len(runs), **{s: counts.get(s, 0) for s in (
            Status.QUEUED, Status.RUNNING, Status.FINISHED, Status.PRUNED, Status.FAILED, Status.CANCELLED)}),
        best=best and BestRun(id=best.id, name=best.name, best_test_acc=best.best_test_acc, params=best.params,
                              config=best.config))


def _base(session: Session, base: RunRequest) -> tuple[RunConfig, int | None]:
    if base.seeds is not None:
        raise _invalid(("base", "seeds"), "a sweep's trials take one seed each: search `seed` in the space instead")
    try:
        preset = presets.find(session, base.model)
    except UnknownModel as e:
        raise _invalid(("base", "model"), str(e)) from None
    if base.parent is not None and session.get(Run, base.parent) is None:
        raise _invalid(("base", "parent"), f"parent run {base.parent} does not exist")
    try:
        config = resolve(base.model_dump(exclude={"parent", "seeds"}), preset)
    except ValidationError as e:
        raise RequestValidationError([{"loc": ("body", "base", *err["loc"]), "msg": err["msg"], "type": err["type"]}
                                      for err in e.errors()]) from None
    except ConfigError as e:
        raise _invalid(("base", *e.loc), e.message) from None
    return config, base.parent


def _points(body: SweepRequest, dims: list[space.Dimension]) -> tuple[list[dict], int]:
    cap = space.MAX_RUNS
    if body.sampler == "grid":
        size = space.grid_size(dims)
        if size > cap:
            shape = " × ".join(str(len(d.values())) for d in dims)
            raise _invalid(("space",), f"the grid has {size:,} points ({shape}); one sweep queues at most {cap} runs")
        if body.budget is not None and body.budget < size:
            raise _invalid(("budget",), f"budget {body.budget} is below the grid's {size} points: a grid sweep "
                                        f"runs them all (leave budget out, or make it {size})")
        return space.grid(dims), size
    if body.budget is None:
        raise _invalid(("budget",), f"a {body.sampler} sweep needs a budget: how many trials, 1 to {cap}")
    if body.budget > cap:
        raise _invalid(("budget",), f"budget {body.budget:,}: one sweep queues at most {cap} runs")
    return (space.draws(dims, body.budget, body.seed) if body.sampler == "random" else []), body.budget


@router.post("/sweeps", status_code=status.HTTP_201_CREATED, response_model=SweepCreated, dependencies=[Authorized],
             description=f"Search a space of run configs. Refused (422, nothing queued): an empty space, more than "
                         f"{space.MAX_RUNS} runs, an unknown parameter, a value outside the config's limits, a "
                         f"layer without a width.")
def create_sweep(body: SweepRequest, session: SessionDep) -> SweepCreated:
    base, parent = _base(session, body.base)
    try:
        dims = space.check(body.space, base, body.sampler)
    except space.SpaceError as e:
        raise _invalid(("space", *e.loc), e.message) from None
    points, budget = _points(body, dims)
    for point in points:  # a grid's combination or a draw the one-key checks could not see
        try:
            space.config_of(base, point)
        except ConfigError as e:
            raise _invalid(("space",), f"the point {sweeper.describe(point)} is refused: {e.message}") from None
    name = body.name or f"{body.sampler} {', '.join(body.space)} · {base.model}"
    sweep = Sweep(name=name, model=base.model, dataset=base.dataset, base=base.model_dump(), base_run_id=parent,
                  space=[d.describe() for d in dims], sampler=body.sampler, pruner=body.pruner, budget=budget,
                  seed=body.seed, study_name=sweeper.study_name())
    session.close()  # Optuna writes next: this request holds no transaction meanwhile
    sweeper.start(get_engine(), sweep, dims, points)
    with Session(get_engine()) as s:
        sweep = s.get(Sweep, sweep.id)
        runs = _runs(s, [sweep.id])[sweep.id]
        # The server's loop may have asked a tpe sweep's first trials between its commit and
        # this request's own step: they are this sweep's all the same.
        return _read(sweep, runs, SweepCreated, run_ids=[r.id for r in runs])


@router.get("/sweeps", response_model=list[SweepRead])
def list_sweeps(session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[SweepRead]:
    sweeps = session.execute(select(Sweep).order_by(Sweep.id.desc()).limit(limit)).scalars().all()
    runs = _runs(session, [s.id for s in sweeps])
    return [_read(s, runs[s.id]) for s in sweeps]


@router.get("/sweeps/space", description="What a sweep from `model` can search: the config keys with their "
                                         "limits and choices, and the layers with a width (layers.K)")
def sweep_space(session: SessionDep, model: Annotated[str, Query(max_length=100)]) -> dict[str, Any]:
    try:
        preset = presets.find(session, model)
    except UnknownModel as e:
        raise RequestValidationError([{"loc": ("query", "model"), "msg": str(e), "type": "value_error"}]) from None
    base = resolve({"model": model}, preset)
    keys = []
    for key in CONFIG_KEYS:
        kind, literal, optional = space.kind_of(key)
        low, low_in, high, high_in = space.limits(key)
        keys.append({"key": key, "kind": kind, "choices": list(literal) or None, "optional": optional,
                     "low": low, "low_inclusive": low_in, "high": high, "high_inclusive": high_in,
                     "value": getattr(base, key)})
    widths = [{"key": f"layers.{i}", "layer": base.layers[i - 1], "width": w, "low": 1, "high": MAX_SIZE}
              for i, w in sizeable(base.layers).items()]
    return {"model": model, "keys": keys, "widths": widths, "samplers": space.SAMPLERS, "pruners": studies.PRUNERS,
            "max_runs": space.MAX_RUNS}


@router.get("/sweeps/{sweep_id}", response_model=SweepDetail)
def read_sweep(sweep_id: SweepId, session: SessionDep) -> SweepDetail:
    sweep = _get(session, sweep_id)
    runs = _runs(session, [sweep_id])[sweep_id]
    by_trial = {r.trial_number: r for r in runs}
    trials = []
    for t in studies.trials(studies.load(get_engine(), sweep.study_name)):
        run = by_trial.get(t.number)
        trials.append(TrialRead(
            number=t.number, state=t.state.name.lower(), params=t.params, value=t.value,
            intermediate=dict(t.intermediate_values), run_id=run and run.id, status=run and run.status,
            best_test_acc=run and run.best_test_acc, final_test_acc=run and run.final_test_acc,
            epochs_done=run and run.epochs_done, epochs_total=run and run.epochs_total, run_params=run and run.params,
            total_seconds=run and run.total_seconds, error=run and run.error))
    return _read(sweep, runs, SweepDetail, trials=trials)


@router.get("/sweeps/{sweep_id}/importances", response_model=Importances,
            description=f"How much each parameter mattered to the best test accuracy, over the finished trials "
                        f"(Optuna's {studies.IMPORTANCE_EVALUATOR} evaluator)")
def read_importances(sweep_id: SweepId, session: SessionDep) -> Importances:
    study = studies.load(get_engine(), _get(session, sweep_id).study_name)
    found, note = studies.importances(study)
    complete = sum(t.state == studies.TrialState.COMPLETE for t in studies.trials(study))
    return Importances(evaluator=studies.IMPORTANCE_EVALUATOR, importances=found, trials=complete, note=note)


@router.post("/sweeps/{sweep_id}/cancel", response_model=SweepRead, dependencies=[Authorized],
             description="Cancel the sweep's queued trials and ask for no more; running trials finish")
def cancel_sweep(sweep_id: SweepId, session: SessionDep) -> SweepRead:
    sweep = _get(session, sweep_id)
    session.close()
    with Session(writer(get_engine())) as s:
        if not sweeper.cancel(s, get_engine(), sweep_id):
            raise HTTPException(status.HTTP_409_CONFLICT, f"sweep {sweep_id} is {sweep.status}; only a running "
                                                          "sweep can be cancelled")
    with Session(get_engine()) as s:
        return _read(s.get(Sweep, sweep_id), _runs(s, [sweep_id])[sweep_id])
