"""/workers and /health: which workers are alive, so a user sees why a run waits."""

from fastapi import APIRouter
from sqlalchemy import select

from app import queue
from app.db import SessionDep
from app.models import WorkerRecord, worker_alive
from app.schemas import Health, WorkerRead
from app.settings import get_settings

router = APIRouter(tags=["workers"])


@router.get("/workers", response_model=list[WorkerRead])
def list_workers(session: SessionDep) -> list[WorkerRead]:
    alive = worker_alive(get_settings().stale_seconds).label("alive")
    rows = session.execute(select(WorkerRecord, alive).order_by(WorkerRecord.heartbeat_at.desc())).all()
    return [WorkerRead.model_validate(w).model_copy(update={"alive": bool(is_alive)}) for w, is_alive in rows]


@router.get("/health", response_model=Health)
def health(session: SessionDep) -> Health:
    return Health(ok=True, workers_alive=queue.count_alive_workers(session, get_settings().stale_seconds))
