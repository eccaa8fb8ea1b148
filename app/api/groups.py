"""/groups: runs that differ only in seed, as one row each — n, mean ± std of best and final
accuracy, time — with their mean curves; /groups/compare: is the difference between two
groups real or seed noise (app/groups.py); /reproduction: every experiment of the notes, its
preset's group over seeds beside the notes' figure, with the missing seeds one request away."""

import csv
import io
from collections import Counter, defaultdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import case, distinct, func, select
from sqlmodel import Session

from app import presets, queue
from app.auth import Authorized
from app.db import SessionDep, WriteSessionDep
from app.filters import RunFilter, run_filter
from app.groups import Stat, Verdict, summary, verdict
from app.lineage import as_dicts, diff
from app.models import Metric, Run, Status
from app.schemas import RunRead
from trainer.config import DATASETS, group_key, resolve
from trainer.zoo import presets_for

router = APIRouter(tags=["groups"])
GroupKey = Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$", description="A run's group_key")]
KeyQuery = Annotated[str, Query(pattern=r"^[0-9a-f]{16}$")]
Filters = Annotated[RunFilter, Depends(run_filter)]
GROUP_SORTS = ("last_id", "n", "best_mean", "final_mean", "params", "seconds_mean")
COUNTED = (Status.FINISHED,)  # the runs a group's statistics are computed over


class GroupRead(BaseModel):
    key: str
    name: str
    model: str
    dataset: str
    params: int
    config: dict[str, Any] = Field(description="the config the runs share (seed and name left out)")
    changes: list[str] = Field(description="what differs from the preset it started from")
    n: int
    statuses: dict[str, int]
    seeds: list[int]
    run_ids: list[int]
    best_test_acc: Stat = Field(description="over the finished runs")
    final_test_acc: Stat
    total_seconds: Stat
    notes_acc: float | None
    notes_seconds: float | None


class GroupPage(BaseModel):
    items: list[GroupRead]
    total: int
    limit: int
    offset: int


class EpochStat(BaseModel):
    epoch: int
    test_acc: Stat
    test_loss: Stat
    wall_seconds: Stat


class GroupDetail(GroupRead):
    runs: list[RunRead]
    curve: list[EpochStat] = Field(description="per epoch, over the runs that reached it")


class GroupComparison(BaseModel):
    a: GroupRead
    b: GroupRead
    verdict: Verdict = Field(description="b minus a, mean best test accuracy, Welch 95% CI")
    changes: list[dict[str, Any]] = Field(description="what differs from a's config to b's")


def _group(runs: list[Run], known) -> GroupRead:
    latest = max(runs, key=lambda r: r.id)
    read = RunRead.of(latest, presets=known)
    counted = [r for r in runs if r.status in COUNTED]
    return GroupRead(
        key=latest.group_key, name=latest.name, model=latest.model, dataset=latest.dataset, params=latest.params,
        config={k: v for k, v in latest.config.items() if k not in ("seed", "name")}, changes=read.changes,
        n=len(runs), statuses=dict(Counter(r.status for r in runs)),
        seeds=sorted(r.config.get("seed", 0) for r in runs), run_ids=sorted(r.id for r in runs),
        best_test_acc=summary([r.best_test_acc for r in counted]),
        final_test_acc=summary([r.final_test_acc for r in counted]),
        total_seconds=summary([r.total_seconds for r in counted]),
        notes_acc=read.notes_acc, notes_seconds=read.notes_seconds)


def _runs_of(session: Session, keys: list[str], filters: RunFilter | None = None) -> dict[str, list[Run]]:
    query = select(Run).where(Run.group_key.in_(keys)).order_by(Run.id)
    if filters is not None:
        query = filters.apply(query)
    by_key: dict[str, list[Run]] = defaultdict(list)
    for run in session.execute(query).scalars():
        by_key[run.group_key].append(run)
    return by_key


@router.get("/groups", response_model=GroupPage,
            description="Groups of the runs that match the filters (the same as GET /runs, config.* included)")
def list_groups(session: SessionDep, filters: Filters,
                sort: Annotated[Literal[GROUP_SORTS], Query()] = "last_id",
                order: Annotated[Literal["asc", "desc"], Query()] = "desc",
                limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                offset: Annotated[int, Query(ge=0, le=2**31)] = 0) -> GroupPage:
    finished = Run.status.in_(COUNTED)
    figures = {
        "last_id": func.max(Run.id), "n": func.count(), "params": func.max(Run.params),
        "best_mean": func.avg(case((finished, Run.best_test_acc))),
        "final_mean": func.avg(case((finished, Run.final_test_acc))),
        "seconds_mean": func.avg(case((finished, Run.total_seconds))),
    }
    column = figures[sort]
    direction = (column.asc() if order == "asc" else column.desc()).nulls_last()
    tie = func.max(Run.id).desc()
    keys = [k for (k,) in session.execute(filters.apply(select(Run.group_key)).group_by(Run.group_key)
                                          .order_by(direction, tie).limit(limit).offset(offset))]
    total = session.execute(filters.apply(select(func.count(distinct(Run.group_key))))).scalar_one()
    by_key = _runs_of(session, keys, filters)
    known = presets.all_presets(session)
    return GroupPage(items=[_group(by_key[k], known) for k in keys if by_key[k]], total=total, limit=limit,
                     offset=offset)


def _get_group(session: Session, key: str) -> list[Run]:
    runs = _runs_of(session, [key]).get(key)
    if not runs:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"group {key} not found (no run has that group_key)")
    return runs


@router.get("/groups/compare", response_model=GroupComparison)
def compare_groups(a: KeyQuery, b: KeyQuery, session: SessionDep) -> GroupComparison:
    known = presets.all_presets(session)
    runs_a, runs_b = _get_group(session, a), _get_group(session, b)
    group_a, group_b = _group(runs_a, known), _group(runs_b, known)
    best = [[r.best_test_acc for r in runs if r.status in COUNTED] for runs in (runs_a, runs_b)]
    return GroupComparison(a=group_a, b=group_b, verdict=verdict(*best),
                           changes=as_dicts(diff(runs_a[-1].config, runs_b[-1].config)))


@router.get("/groups/{key}", response_model=GroupDetail)
def read_group(key: GroupKey, session: SessionDep) -> GroupDetail:
    runs = _get_group(session, key)
    known = presets.all_presets(session)
    per_epoch: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for epoch, name, value in session.execute(
            select(Metric.epoch, Metric.key, Metric.value)
            .where(Metric.run_id.in_([r.id for r in runs]), Metric.key.in_(("test_acc", "test_loss", "wall_seconds")))):
        per_epoch[epoch][name].append(value)
    curve = [EpochStat(epoch=e, test_acc=summary(m["test_acc"]), test_loss=summary(m["test_loss"]),
                       wall_seconds=summary(m["wall_seconds"])) for e, m in sorted(per_epoch.items())]
    positions = queue.queue_positions(session)
    return GroupDetail(**_group(runs, known).model_dump(), curve=curve,
                       runs=[RunRead.of(r, positions, known) for r in runs])


# --- the notes, reproduced ----------------------------------------------------------------

class Recipe(BaseModel):
    """How the notes' experiments are re-run: each preset's defaults, optionally shortened."""
    model_config = ConfigDict(extra="forbid")  # query parameters arrive as text

    dataset: Literal[DATASETS] = "mnist"
    epochs: Annotated[int | None, Field(ge=1, le=1000)] = None
    train_subset: Annotated[int | None, Field(ge=2)] = None
    test_subset: Annotated[int | None, Field(ge=1)] = None

    def overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("epochs", "train_subset", "test_subset") if getattr(self, k) is not None}


class ReproductionQuery(Recipe):
    """The recipe and the seeds wanted, as GET /reproduction (and its exports) reads them: one
    query model, since a model that forbids extra keys refuses any query parameter beside it."""
    seeds: Annotated[int, Field(ge=1, le=20, description="seeds wanted per preset: 0..N-1")] = 3


class SeedsRequest(Recipe):
    model_config = ConfigDict(extra="forbid", strict=True)

    seeds: Annotated[int, Field(ge=1, le=20, description="wanted seeds per preset: 0..N-1")] = 3
    presets: Annotated[list[Annotated[str, Field(max_length=100)]] | None, Field(max_length=100, description="default: every preset of the "
                                                                            "dataset that has a notes' figure")] = None


class ReproductionRow(BaseModel):
    preset: str
    order: int
    description: str
    params: int
    notes_acc: float | None
    notes_seconds: float | None
    key: str
    n: int
    seeds: list[int]
    missing_seeds: list[int] = Field(description="of 0..wanted-1, seeds with no queued, running or finished run")
    best_test_acc: Stat
    final_test_acc: Stat
    total_seconds: Stat
    reproduced: bool | None = Field(description="mean best accuracy ≥ the notes'; None without a figure or run")
    margin: float | None = Field(description="mean best accuracy minus the notes', as a fraction")


def _reproduction(session: Session, recipe: Recipe, wanted: int) -> list[ReproductionRow]:
    rows, keys = [], {}
    notes = presets_for(recipe.dataset) if recipe.dataset != "fashion-mnist" else []
    for preset in notes:
        keys[preset.id] = group_key(resolve({"model": preset.id, **recipe.overrides()}, preset).model_dump())
    by_key = _runs_of(session, list(keys.values()))
    for preset in notes:
        runs = by_key.get(keys[preset.id], [])
        live = [r for r in runs if r.status not in (Status.FAILED, Status.CANCELLED)]
        counted = [r for r in runs if r.status in COUNTED]
        best = summary([r.best_test_acc for r in counted])
        have = {r.config.get("seed", 0) for r in live}
        margin = best.mean - preset.notes_acc if best.mean is not None and preset.notes_acc is not None else None
        rows.append(ReproductionRow(
            preset=preset.id, order=preset.order, description=preset.description, params=preset.params,
            notes_acc=preset.notes_acc, notes_seconds=preset.notes_seconds, key=keys[preset.id], n=len(counted),
            seeds=sorted(r.config.get("seed", 0) for r in counted),
            missing_seeds=[s for s in range(wanted) if s not in have], best_test_acc=best,
            final_test_acc=summary([r.final_test_acc for r in counted]),
            total_seconds=summary([r.total_seconds for r in counted]),
            reproduced=None if margin is None else margin >= 0, margin=margin))
    return rows


Reproduction = Annotated[ReproductionQuery, Query()]


@router.get("/reproduction", response_model=list[ReproductionRow])
def reproduction(session: SessionDep, recipe: Reproduction) -> list[ReproductionRow]:
    return _reproduction(session, recipe, recipe.seeds)


def _table(rows: list[ReproductionRow]) -> list[dict[str, Any]]:
    def pct(x):
        return None if x is None else round(x * 100, 2)
    return [{"preset": r.preset, "params": r.params, "notes acc %": pct(r.notes_acc), "n": r.n,
             "mean best acc %": pct(r.best_test_acc.mean), "std (points)": pct(r.best_test_acc.std),
             "min %": pct(r.best_test_acc.min), "max %": pct(r.best_test_acc.max),
             "margin (points)": pct(r.margin),
             "reproduced": {True: "yes", False: "no", None: "-"}[r.reproduced],
             "mean seconds": None if r.total_seconds.mean is None else round(r.total_seconds.mean, 1),
             "notes seconds": r.notes_seconds} for r in rows]


@router.get("/reproduction.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def reproduction_csv(session: SessionDep, recipe: Reproduction) -> Response:
    table = _table(_reproduction(session, recipe, recipe.seeds))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(table[0]) if table else ["preset"])
    writer.writeheader()
    writer.writerows(table)
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="reproduction-{recipe.dataset}.csv"'})


@router.get("/reproduction.md", response_class=Response, responses={200: {"content": {"text/markdown": {}}}})
def reproduction_markdown(session: SessionDep, recipe: Reproduction) -> Response:
    table = _table(_reproduction(session, recipe, recipe.seeds))
    if not table:
        return Response(f"No notes' experiments for {recipe.dataset}.\n", media_type="text/markdown")
    head = list(table[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if h == "preset" else "---:" for h in head) + "|"]
    lines += ["| " + " | ".join("-" if row[h] is None else str(row[h]) for h in head) + " |" for row in table]
    return Response("\n".join(lines) + "\n", media_type="text/markdown")


@router.post("/reproduction/seeds", status_code=status.HTTP_201_CREATED, dependencies=[Authorized])
def queue_missing_seeds(body: SeedsRequest, session: WriteSessionDep) -> dict[str, list[int]]:
    """Queue, for each preset (default: those with a notes' figure), the seeds 0..N-1 it lacks."""
    rows = _reproduction(session, body, body.seeds)
    known = {r.preset for r in rows}
    unknown = [p for p in body.presets or [] if p not in known]
    if unknown:
        shown = ", ".join(repr(p[:100]) for p in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise RequestValidationError([{"loc": ("body", "presets"), "type": "value_error",
                                       "msg": f"not {body.dataset} presets of the notes: {shown}; "
                                              f"valid: {', '.join(sorted(known))}"}])
    if body.presets:
        chosen = [r for r in rows if r.preset in body.presets]
    else:
        chosen = [r for r in rows if r.notes_acc is not None]
    runs = []
    for row in chosen:
        preset = presets.find(session, row.preset)
        for seed in row.missing_seeds:
            config = resolve({"model": row.preset, **body.overrides(), "seed": seed}, preset).model_dump()
            runs.append(Run(name=row.preset, model=row.preset, dataset=config["dataset"], config=config,
                            params=row.params, epochs_total=config["epochs"], group_key=group_key(config)))
    if runs:
        queue.enqueue(session, *runs)
    return {"run_ids": [r.id for r in runs]}
