"""/runs: queue runs, list and read them, their metrics, artifacts, checkpoints and live
events; cancel, retry, delete. Routes fetch, 404, change, commit, return."""

import asyncio
import csv
import io
from collections import defaultdict
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BeforeValidator, ValidationError
from sqlalchemy import func, or_, select
from sqlmodel import Session

from app import queue
from app.artifacts import RunFiles
from app.auth import Authorized
from app.db import SessionDep, WriteSessionDep, get_engine
from app.events import fetch, last_event_id
from app.models import Metric, Progress, Run, Status
from app.schemas import ArtifactsRead, EpochRead, MetricsRead, ProgressRead, RunPage, RunRead
from app.settings import get_settings
from trainer.config import DATASETS, RunRequest, UnknownModel, resolve
from trainer.zoo import PRESETS

router = APIRouter(tags=["runs"])

SORTABLE = ("id", "name", "model", "dataset", "status", "params", "best_test_acc", "final_test_acc",
            "epochs_done", "total_seconds", "images_per_second", "created_at")


def _digits_only(value):
    # A path parameter arrives as text, which int() would also read from "1.0", "+1" or " 1":
    # then /runs/1.0 would address (and DELETE delete) run 1.
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be digits only, e.g. 12")
    return value


Digits = BeforeValidator(_digits_only)
RunId = Annotated[int, PathParam(ge=1, le=2**62, description="Run id"), Digits]
ImageIndex = Annotated[int, PathParam(ge=0, le=10_000), Digits]


def _get_run(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} not found")
    return run


def _files(run_id: int) -> RunFiles:
    return RunFiles(get_settings().artifact_dir, run_id)


def _filtered(query, status_: str | None, dataset: str | None, model: str | None, q: str | None):
    if status_:
        query = query.where(Run.status == status_)
    if dataset:
        query = query.where(Run.dataset == dataset)
    if model:
        query = query.where(Run.model == model)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(Run.name.ilike(pattern, escape="\\"), Run.model.ilike(pattern, escape="\\")))
    return query


StatusFilter = Annotated[Status | None, Query(alias="status")]
DatasetFilter = Annotated[Literal[DATASETS] | None, Query()]
# A NUL would end the LIKE pattern early in SQLite and widen the search.
TextFilter = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")]


@router.post("/runs", status_code=status.HTTP_201_CREATED, response_model=RunRead, dependencies=[Authorized])
def create_run(body: RunRequest, session: WriteSessionDep) -> RunRead:
    try:
        config = resolve(body.model_dump())
    except UnknownModel as e:
        raise RequestValidationError([{"loc": ("body", "model"), "msg": str(e), "type": "value_error"}]) from None
    except ValidationError as e:
        raise RequestValidationError([{"loc": ("body", *err["loc"]), "msg": err["msg"], "type": err["type"]}
                                      for err in e.errors()]) from None
    preset = PRESETS[config.model]
    run = Run(name=config.name, model=config.model, dataset=config.dataset, config=config.model_dump(),
              params=preset.params, epochs_total=config.epochs)
    run = queue.enqueue(session, run)
    return RunRead.of(run, queue.queue_positions(session))


@router.get("/runs", response_model=RunPage)
def list_runs(session: SessionDep, status_: StatusFilter = None, dataset: DatasetFilter = None,
              model: TextFilter = None, q: TextFilter = None,
              sort: Annotated[Literal[SORTABLE], Query()] = "id",
              order: Annotated[Literal["asc", "desc"], Query()] = "desc",
              limit: Annotated[int, Query(ge=1, le=1000)] = 50,
              offset: Annotated[int, Query(ge=0, le=2**31)] = 0) -> RunPage:
    column = getattr(Run, sort)
    direction = column.asc() if order == "asc" else column.desc()
    tie = Run.id.asc() if order == "asc" else Run.id.desc()
    nulls = direction.nulls_last()
    query = _filtered(select(Run), status_, dataset, model, q).order_by(nulls, tie).limit(limit).offset(offset)
    total = session.execute(_filtered(select(func.count()).select_from(Run), status_, dataset, model, q)).scalar_one()
    positions = queue.queue_positions(session)
    items = [RunRead.of(r, positions) for r in session.execute(query).scalars()]
    return RunPage(items=items, total=total, limit=limit, offset=offset, last_event_id=last_event_id(session))


CSV_COLUMNS = ("id", "name", "model", "dataset", "status", "params", "best_test_acc", "final_test_acc",
               "epochs_done", "epochs_total", "total_seconds", "images_per_second", "created_at",
               "notes_acc", "notes_seconds")


def _csv(rows: list[dict], columns) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@router.get("/runs.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def export_runs(session: SessionDep, status_: StatusFilter = None, dataset: DatasetFilter = None,
                model: TextFilter = None, q: TextFilter = None) -> Response:
    runs = session.execute(_filtered(select(Run), status_, dataset, model, q).order_by(Run.id)).scalars()
    rows = [RunRead.of(r).model_dump(mode="json") for r in runs]
    return Response(_csv(rows, CSV_COLUMNS), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="runs.csv"'})


@router.get("/runs/{run_id}", response_model=RunRead)
def read_run(run_id: RunId, session: SessionDep) -> RunRead:
    return RunRead.of(_get_run(session, run_id), queue.queue_positions(session))


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


@router.post("/runs/{run_id}/cancel", response_model=RunRead, dependencies=[Authorized])
def cancel_run(run_id: RunId, session: WriteSessionDep) -> RunRead:
    run = _get_run(session, run_id)
    if not queue.request_cancel(session, run_id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} is {run.status}; only queued or "
                            "running runs can be cancelled")
    session.refresh(run)
    return RunRead.of(run, queue.queue_positions(session))


@router.post("/runs/{run_id}/retry", response_model=RunRead, dependencies=[Authorized])
def retry_run(run_id: RunId, session: WriteSessionDep) -> RunRead:
    run = _get_run(session, run_id)
    if not queue.retry(session, run_id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} is {run.status}; only failed or "
                            "cancelled runs can be retried")
    session.refresh(run)
    return RunRead.of(run, queue.queue_positions(session))


@router.delete("/runs/{run_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Authorized])
def delete_run(run_id: RunId, session: WriteSessionDep) -> Response:
    _get_run(session, run_id)
    if not queue.remove(session, run_id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} is running; cancel it first")
    _files(run_id).delete()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


LastEventId = Annotated[int | None, Header(alias="Last-Event-ID", ge=0, le=2**62)]


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


async def _stream(request: Request, run_id: int | None, last_id: int | None):
    broadcaster = request.app.state.broadcaster
    live = broadcaster.subscribe()
    try:
        cursor = last_id
        while True:  # replay what the client missed, then follow the live feed
            cursor, missed, seen = await asyncio.to_thread(_replay_batch, cursor, run_id)
            for item in missed:
                yield ServerSentEvent(id=str(item.id), event=item.kind, data=item.data)
            if seen == cursor:
                break
            cursor = seen
        while live in broadcaster.subscribers and not await request.is_disconnected():
            try:
                item = await asyncio.wait_for(live.get(), timeout=5)
            except TimeoutError:
                continue
            if item.id <= cursor or (run_id is not None and item.run_id != run_id):
                continue
            cursor = item.id
            yield ServerSentEvent(id=str(item.id), event=item.kind, data=item.data)
    finally:
        broadcaster.unsubscribe(live)


def _existing_run_id(run_id: RunId) -> int:
    # A dependency runs before the stream starts, so a missing run is still a clean 404;
    # its short session holds no transaction open for the life of the stream.
    with Session(get_engine()) as session:
        return _get_run(session, run_id).id


@router.get("/runs/{run_id}/events", response_class=EventSourceResponse)
async def run_events(run_id: Annotated[int, Depends(_existing_run_id)], request: Request,
                     last_event_id_header: LastEventId = None,
                     last_event_id: Annotated[int | None, Query(ge=0, le=2**62)] = None):
    async for event in _stream(request, run_id, last_event_id_header if last_event_id_header is not None
                               else last_event_id):
        yield event


@router.get("/events", response_class=EventSourceResponse)
async def all_events(request: Request, last_event_id_header: LastEventId = None,
                     last_event_id: Annotated[int | None, Query(ge=0, le=2**62)] = None):
    async for event in _stream(request, None, last_event_id_header if last_event_id_header is not None
                               else last_event_id):
        yield event
