"""/lineage: the runs of a dataset as a tree by parent — the notes' chronology is the trunk, a
run without a parent hangs from the preset it started from — each edge carrying what changed
(layers inserted, removed or changed; hyper-parameters) and what it did (Δ best accuracy,
Δ parameters, Δ time). /runs/{id}/changes: one run's edge, for "derived from #N"."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi import Path as PathParam
from sqlalchemy import select

from app import presets
from app.db import SessionDep
from app.lineage import preset_edge, run_edge
from app.models import MAX_ID, Run
from trainer.config import DATASETS
from trainer.zoo import presets_for

router = APIRouter(tags=["lineage"])
RUN_FIELDS = ("id", "name", "model", "dataset", "status", "params", "best_test_acc", "final_test_acc",
              "total_seconds", "epochs_done", "epochs_total", "parent_id", "group_key")


def _run_node(run: Run) -> dict[str, Any]:
    return {"kind": "run", **{k: getattr(run, k) for k in RUN_FIELDS}, "seed": run.config.get("seed", 0)}


def _preset_node(preset) -> dict[str, Any]:
    return {"kind": "preset", "id": preset.id, "source": preset.source, "order": preset.order,
            "dataset": preset.dataset, "description": preset.description, "params": preset.params,
            "notes_acc": preset.notes_acc, "notes_seconds": preset.notes_seconds}


@router.get("/lineage")
def lineage(session: SessionDep, dataset: Annotated[Literal[DATASETS], Query()] = "mnist",
            limit: Annotated[int, Query(ge=1, le=2000, description="the newest runs shown, with their ancestors")] = 300
            ) -> dict[str, Any]:
    runs = {r.id: r for r in session.execute(select(Run).where(Run.dataset == dataset)
                                             .order_by(Run.id.desc()).limit(limit)).scalars()}
    missing = {r.parent_id for r in runs.values() if r.parent_id and r.parent_id not in runs}
    while missing:  # ancestors of the shown runs, however old
        for run in session.execute(select(Run).where(Run.id.in_(missing))).scalars():
            runs[run.id] = run
        missing = {r.parent_id for r in runs.values() if r.parent_id and r.parent_id not in runs}
    known = presets.all_presets(session)
    trunk = presets_for(dataset) if dataset != "fashion-mnist" else []
    used = {r.model for r in runs.values() if r.parent_id is None and r.model in known}
    nodes = [_preset_node(p) for p in trunk]
    nodes += [_preset_node(known[m]) for m in sorted(used - {p.id for p in trunk})]
    edges = [preset_edge(a, b) for a, b in zip(trunk, trunk[1:])]
    for run in sorted(runs.values(), key=lambda r: r.id):
        nodes.append(_run_node(run))
        parent = runs.get(run.parent_id) if run.parent_id else None
        edge = run_edge(run, parent, known.get(run.model))
        if edge:
            edges.append(edge)
    return {"dataset": dataset, "nodes": nodes, "edges": edges}


@router.get("/runs/{run_id}/changes")
def run_changes(run_id: Annotated[int, PathParam(ge=1, le=MAX_ID)], session: SessionDep) -> dict[str, Any]:
    run = session.get(Run, run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} not found")
    parent = session.get(Run, run.parent_id) if run.parent_id else None
    edge = run_edge(run, parent, presets.all_presets(session).get(run.model))
    return {"run_id": run.id, "parent": _run_node(parent) if parent else None, "edge": edge}
