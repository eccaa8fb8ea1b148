"""/runs: queue runs, list and read them, their metrics, artifacts, checkpoints and live
events; cancel, retry, delete. Routes fetch, 404, change, commit, return."""

import asyncio
import csv
import io
import json
import logging
from collections import defaultdict
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.sse import format_sse_event
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlmodel import Session

from app import labels, presets, queue
from app.artifacts import RunFiles
from app.auth import Authorized
from app.db import SessionDep, WriteSessionDep, get_engine
from app.events import fetch, last_event_id
from app.filters import CONFIG_KEYS, SORTABLE, RunFilter, order_by, run_filter
from app.lineage import diff, label, preset_config
from app.models import MAX_ID, Metric, Progress, Run, Status
from app.schemas import (
    MAX_SEEDS,
    ArtifactsRead,
    Digits,
    EpochRead,
    MetricsRead,
    ProgressRead,
    RunCreated,
    RunEdit,
    RunId,
    RunPage,
    RunRead,
    RunRequest,
)
from app.settings import get_settings
from trainer.config import DATASETS, ConfigError, RunConfig, UnknownModel, group_key, network, resolve

router = APIRouter(tags=["runs"])
log = logging.getLogger("zoolab.events")

ImageIndex = Annotated[int, PathParam(ge=0, le=10_000), Digits]


def _get_run(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} not found")
    return run


def _files(run_id: int) -> RunFiles:
    return RunFiles(get_settings().artifact_dir, run_id)


StatusFilter = Annotated[Status | None, Query(alias="status")]
DatasetFilter = Annotated[Literal[DATASETS] | None, Query()]
# A NUL would end the LIKE pattern early in SQLite and widen the search.
TextFilter = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")]
Sort = Annotated[Literal[SORTABLE], Query(description="a column, or config.KEY")]
Order = Annotated[Literal["asc", "desc"], Query()]
Filters = Annotated[RunFilter, Depends(run_filter)]
CONFIG_FILTERS_DOC = ("Filter on the run config too: config.KEY=VALUE, config.KEY=LO..HI (numbers), "
                      "config.KEY=a,b (text), config.KEY=none; an unknown parameter is a 422")


def _invalid(loc: tuple, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", *loc), "msg": message, "type": "value_error"}])


def _seeds(body: RunRequest) -> list[int | None]:
    if body.seeds is None:
        return [body.seed]
    if body.seed is not None:
        raise _invalid(("seeds",), "give either seed or seeds, not both")
    seeds = list(range(body.seeds)) if isinstance(body.seeds, int) else list(body.seeds)
    if not 1 <= len(seeds) <= MAX_SEEDS:
        raise _invalid(("seeds",), f"seeds makes {len(seeds)} runs; one request queues 1 to {MAX_SEEDS}")
    if len(set(seeds)) != len(seeds):
        raise _invalid(("seeds",), "seeds repeats a seed: each run of a group needs its own")
    return seeds


def _name(config: RunConfig, preset, parent: Run | None) -> str:
    """A run with no name given is named by its change: against its parent, or its preset."""
    base = parent.config if parent is not None else preset_config(preset)
    changes = diff(base, config.model_dump())
    if not changes:
        return parent.name if parent is not None else preset.id
    return f"{config.model} · {label(changes)}"[:200]


@router.post("/runs", status_code=status.HTTP_201_CREATED, response_model=RunCreated, dependencies=[Authorized],
             description="Queue a run: a preset and what to change. With `seeds`, one run per seed (a group).")
def create_run(body: RunRequest, session: WriteSessionDep) -> RunCreated:
    try:
        preset = presets.find(session, body.model)
    except UnknownModel as e:
        raise _invalid(("model",), str(e)) from None
    parent = None
    if body.parent is not None and (parent := session.get(Run, body.parent)) is None:
        raise _invalid(("parent",), f"parent run {body.parent} does not exist")
    seeds = _seeds(body)
    request = body.model_dump(exclude={"parent", "seeds"})
    try:
        configs = [resolve({**request, "seed": seed}, preset) for seed in seeds]
        tables = [network(c) for c in configs[:1]]
    except ValidationError as e:
        raise RequestValidationError([{"loc": ("body", *err["loc"]), "msg": err["msg"], "type": err["type"]}
                                      for err in e.errors()]) from None
    except ConfigError as e:
        raise _invalid(e.loc, e.message) from None
    name = body.name or _name(configs[0], preset, parent)
    runs = []
    for config in configs:
        config = config.model_copy(update={"name": name})
        stored = config.model_dump()
        runs.append(Run(name=name, model=config.model, dataset=config.dataset, config=stored,
                        params=tables[0].params, epochs_total=config.epochs, parent_id=body.parent,
                        group_key=group_key(stored)))
    queue.enqueue(session, *runs)
    positions = queue.queue_positions(session)
    return RunCreated(**RunRead.of(runs[0], positions, presets.all_presets(session)).model_dump(),
                      run_ids=[r.id for r in runs])


@router.get("/runs", response_model=RunPage, description=CONFIG_FILTERS_DOC)
def list_runs(session: SessionDep, filters: Filters, status_: StatusFilter = None, dataset: DatasetFilter = None,
              model: TextFilter = None, q: TextFilter = None, sort: Sort = "id", order: Order = "desc",
              limit: Annotated[int, Query(ge=1, le=1000)] = 50,
              offset: Annotated[int, Query(ge=0, le=2**31)] = 0) -> RunPage:
    # Read first: the page then reflects at least the events up to this id (on PostgreSQL a
    # request's statements need not share one snapshot), which the page's store relies on.
    event_id = last_event_id(session)
    query = filters.apply(select(Run)).order_by(*order_by(sort, order)).limit(limit).offset(offset)
    total = session.execute(filters.apply(select(func.count()).select_from(Run))).scalar_one()
    positions = queue.queue_positions(session)
    known = presets.all_presets(session)
    items = [RunRead.of(r, positions, known) for r in session.execute(query).scalars()]
    return RunPage(items=items, total=total, limit=limit, offset=offset, last_event_id=event_id)


CSV_COLUMNS = ("id", "name", "model", "dataset", "status", "params", "best_test_acc", "final_test_acc",
               "epochs_done", "epochs_total", "total_seconds", "images_per_second", "created_at",
               "notes_acc", "notes_seconds", "parent_id", "group_key", "changes", "tags", "notes")


def _csv(rows: list[dict], columns) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@router.get("/runs.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}},
            description="The runs table as CSV, with every config key as a column; the same filters and "
                        "order as GET /runs. " + CONFIG_FILTERS_DOC)
def export_runs(session: SessionDep, filters: Filters, status_: StatusFilter = None, dataset: DatasetFilter = None,
                model: TextFilter = None, q: TextFilter = None, sort: Sort = "id", order: Order = "asc") -> Response:
    known = presets.all_presets(session)
    rows = []
    for run in session.execute(filters.apply(select(Run)).order_by(*order_by(sort, order))).scalars():
        row = RunRead.of(run, presets=known).model_dump(mode="json")
        row["changes"] = "; ".join(row["changes"])
        row["tags"] = " ".join(row["tags"])
        row.update({f"config.{k}": run.config.get(k) for k in CONFIG_KEYS})
        row["config.layers"] = " | ".join(run.config.get("layers") or [])
        rows.append(row)
    columns = (*CSV_COLUMNS, "config.layers", *(f"config.{k}" for k in CONFIG_KEYS))
    return Response(_csv(rows, columns), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="runs.csv"'})


@router.get("/runs/{run_id}", response_model=RunRead)
def read_run(run_id: RunId, session: SessionDep) -> RunRead:
    return RunRead.of(_get_run(session, run_id), queue.queue_positions(session), presets.all_presets(session))


def _epochs(session: Session, run_id: int) -> list[EpochRead]:
    by_epoch: dict[int, dict] = defaultdict(dict)
    for epoch, key, value in session.execute(
            select(Metric.epoch, Metric.key, Metric.value).where(Metric.run_id == run_id).order_by(Metric.epoch)):
        by_epoch[epoch][key] = value
    return [EpochRead(epoch=e, **{k: v for k, v in m.items() if k in EpochRead.model_fields})
            for e, m in sorted(by_epoch.items())]


@router.get("/runs/{run_id}/metrics", response_model=MetricsRead)
def read_metrics(run_id: RunId, session: SessionDep) -> MetricsRead:
    _get_run(session, run_id)
    event_id = last_event_id(session)
    progress = session.execute(select(Progress).where(Progress.run_id == run_id).order_by(Progress.id)).scalars()
    return MetricsRead(run_id=run_id, epochs=_epochs(session, run_id), last_event_id=event_id,
                       progress=[ProgressRead.model_validate(p, from_attributes=True) for p in progress])


@router.get("/runs/{run_id}/metrics.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def export_metrics(run_id: RunId, session: SessionDep) -> Response:
    _get_run(session, run_id)
    rows = [e.model_dump() for e in _epochs(session, run_id)]
    return Response(_csv(rows, EpochRead.model_fields), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="run-{run_id}-metrics.csv"'})


@router.get("/runs/{run_id}/artifacts", response_model=ArtifactsRead)
def read_artifacts(run_id: RunId, session: SessionDep) -> ArtifactsRead:
    run = _get_run(session, run_id)
    files = _files(run.id)
    if not run.has_artifacts or not files.artifacts.exists():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no artifacts (status {run.status})")
    return ArtifactsRead.model_validate(files.read_json())


@router.get("/runs/{run_id}/misclassified/{k}.png", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}}})
def misclassified_image(run_id: RunId, k: ImageIndex, session: SessionDep) -> FileResponse:
    run = _get_run(session, run_id)
    path = _files(run.id).misclassified(k)
    if not path.exists():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no misclassified image {k}")
    return FileResponse(path, media_type="image/png")


@router.get("/runs/{run_id}/checkpoint", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}}})
def download_checkpoint(run_id: RunId, session: SessionDep) -> FileResponse:
    run = _get_run(session, run_id)
    path = _files(run.id).model
    if not path.exists():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no checkpoint yet")
    return FileResponse(path, media_type="application/octet-stream", filename=f"run-{run.id}.pt")


@router.patch("/runs/{run_id}", response_model=RunRead, dependencies=[Authorized],
              description="Change a run's name, notes or tags; what is left out stays. Tags: " + labels.TAG_RULE)
def edit_run(run_id: RunId, body: RunEdit, session: WriteSessionDep) -> RunRead:
    if not labels.edit(session, run_id, **body.model_dump(exclude_none=True)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} not found")
    return RunRead.of(_get_run(session, run_id), queue.queue_positions(session), presets.all_presets(session))


@router.post("/runs/{run_id}/cancel", response_model=RunRead, dependencies=[Authorized])
def cancel_run(run_id: RunId, session: WriteSessionDep) -> RunRead:
    run = _get_run(session, run_id)
    if not queue.request_cancel(session, run_id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} is {run.status}; only queued or "
                            "running runs can be cancelled")
    session.refresh(run)
    return RunRead.of(run, queue.queue_positions(session), presets.all_presets(session))


@router.post("/runs/{run_id}/retry", response_model=RunRead, dependencies=[Authorized])
def retry_run(run_id: RunId, session: WriteSessionDep) -> RunRead:
    run = _get_run(session, run_id)
    if not queue.retry(session, run_id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} is {run.status}; only failed or "
                            "cancelled runs can be retried")
    session.refresh(run)
    return RunRead.of(run, queue.queue_positions(session), presets.all_presets(session))


@router.delete("/runs/{run_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Authorized])
def delete_run(run_id: RunId, session: WriteSessionDep) -> Response:
    _get_run(session, run_id)
    if not queue.remove(session, run_id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} is running; cancel it first")
    _files(run_id).delete()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


LastEventId = Annotated[int | None, Header(alias="Last-Event-ID", ge=0, le=MAX_ID)]


def _replay_batch(cursor: int | None, run_id: int | None):
    # Its own short session per batch: a session held across the awaits below would keep a
    # pooled connection while waiting for an executor thread, and many streams opening at
    # once (tabs reconnecting after a restart) then starve the pool until it times out.
    with Session(get_engine()) as s:
        newest = last_event_id(s)
        # A cursor past the newest event (the client saw a database since reset) would
        # skip everything until the table caught up with it: it starts from now instead.
        cursor = newest if cursor is None else min(cursor, newest)
        missed, seen = fetch(s, cursor, run_id)
        return cursor, missed, seen


PING_SECONDS = 15  # an idle stream sends a comment this often, so proxies keep it open
PING = b": ping\n\n"
SSE_ITEM = {"type": "object", "properties": {"id": {"type": "string"}, "event": {"type": "string"},
                                             "data": {"type": "string"}}}


class EventStream(StreamingResponse):
    """Server-Sent Events as a plain streaming response. Not FastAPI's EventSourceResponse route
    mode: its keep-alive task raises anyio.BrokenResourceError into the server log whenever a
    client leaves mid-stream (fastapi discussion #15725), and leaving is how every page closes."""
    media_type = "text/event-stream"


def _event_stream(request: Request, run_id: int | None, header_id: int | None, query_id: int | None) -> EventStream:
    frames = _stream(request, run_id, header_id if header_id is not None else query_id)
    return EventStream(frames, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _frame(item) -> bytes:
    return format_sse_event(data_str=json.dumps(item.data), event=item.kind, id=str(item.id))


async def _stream(request: Request, run_id: int | None, last_id: int | None):
    broadcaster = request.app.state.broadcaster
    live = broadcaster.subscribe()
    try:
        cursor = last_id
        while True:  # replay what the client missed, then follow the live feed
            cursor, missed, seen = await asyncio.to_thread(_replay_batch, cursor, run_id)
            for item in missed:
                yield _frame(item)
            if seen == cursor:
                break
            cursor = seen
        while live in broadcaster.subscribers and not await request.is_disconnected():
            try:
                item = await asyncio.wait_for(live.get(), timeout=PING_SECONDS)
            except TimeoutError:
                yield PING
                continue
            if item.id <= cursor or (run_id is not None and item.run_id != run_id):
                continue
            cursor = item.id
            yield _frame(item)
    except asyncio.CancelledError:  # the client left: starlette cancels the stream, nothing went wrong
        log.debug("event stream closed by the client")
        raise
    finally:
        broadcaster.unsubscribe(live)


def _existing_run_id(run_id: RunId) -> int:
    # A dependency runs before the stream starts, so a missing run is still a clean 404;
    # its short session holds no transaction open for the life of the stream.
    with Session(get_engine()) as session:
        return _get_run(session, run_id).id


STREAM = {200: {"description": "Server-Sent Events", "content": {"text/event-stream": {"itemSchema": SSE_ITEM}}}}


@router.get("/runs/{run_id}/events", response_class=EventStream, responses=STREAM)
async def run_events(run_id: Annotated[int, Depends(_existing_run_id)], request: Request,
                     last_event_id_header: LastEventId = None,
                     last_event_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None) -> EventStream:
    return _event_stream(request, run_id, last_event_id_header, last_event_id)


@router.get("/events", response_class=EventStream, responses=STREAM)
async def all_events(request: Request, last_event_id_header: LastEventId = None,
                     last_event_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None) -> EventStream:
    return _event_stream(request, None, last_event_id_header, last_event_id)
