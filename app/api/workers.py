"""/workers and /health: which workers are alive, so a user sees why a run waits."""

from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy import select

from app import queue
from app.config import get_settings
from app.db import SessionDep
from app.models import Worker, utcnow
from app.schemas import Health, WorkerRead

router = APIRouter(tags=["workers"])


@router.get("/workers", response_model=list[WorkerRead])
def list_workers(session: SessionDep) -> list[WorkerRead]:
    fresh = utcnow() - timedelta(seconds=get_settings().stale_seconds)
    workers = session.execute(select(Worker).order_by(Worker.heartbeat_at.desc())).scalars()
    return [WorkerRead.model_validate(w).model_copy(
        update={"alive": w.heartbeat_at >= fresh and w.status in ("idle", "busy")}) for w in workers]


@router.get("/health", response_model=Health)
def health(session: SessionDep) -> Health:
    return Health(ok=True, workers_alive=queue.count_alive_workers(session, get_settings().stale_seconds))
