"""Many runs at once: POST /runs/bulk cancels, deletes, retries, tags or untags up to BULK_MAX
runs named by id, each in its own transaction (the same status moves as the one-run routes),
and answers what was done and what was skipped, with why; GET /runs/ids lists the ids of every
run that matches the filters of GET /runs, so "all runs matching this filter" can be acted on."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlmodel import Session

from app import labels, queue
from app.api.runs import DatasetFilter, StatusFilter, TextFilter
from app.artifacts import RunFiles
from app.auth import Authorized
from app.db import SessionDep, WriteSessionDep
from app.filters import RunFilter, run_filter
from app.models import MAX_ID, Run
from app.settings import get_settings

router = APIRouter(tags=["runs"])
BULK_MAX = 1000     # ids per request
IDS_MAX = 100_000   # ids GET /runs/ids lists at most
Filters = Annotated[RunFilter, Depends(run_filter)]


class BulkRequest(BaseModel):
    """Body of POST /runs/bulk."""
    model_config = ConfigDict(extra="forbid", strict=True)

    ids: Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]], Field(
        min_length=1, max_length=BULK_MAX, description=f"the runs, at most {BULK_MAX} (a repeated id counts once)")]
    action: Literal["cancel", "delete", "retry", "tag", "untag"]
    tags: Annotated[labels.Tags | None, Field(description="for tag and untag: the tags to add or remove")] = None

    @model_validator(mode="after")
    def _tags_go_with_tagging(self) -> "BulkRequest":
        if self.action in ("tag", "untag") and not self.tags:
            raise ValueError(f"{self.action} needs `tags`, a list of one tag or more")
        if self.action not in ("tag", "untag") and self.tags is not None:
            raise ValueError(f"{self.action} takes no `tags`")
        return self


class Skipped(BaseModel):
    id: int
    reason: str


class BulkResult(BaseModel):
    action: str
    done: list[int] = Field(description="the runs the action was applied to, in the order given")
    skipped: list[Skipped] = Field(description="the others, each with why")


class IdList(BaseModel):
    ids: list[int] = Field(description="ascending")
    total: int


# Why a run is not in a state the action applies to (read after the action refused it).
REFUSED = {
    "cancel": "it is {status}; only queued or running runs can be cancelled",
    "retry": "it is {status}; only failed or cancelled runs can be retried",
    "delete": "it is {status}; cancel it first",
}


def _apply(session: Session, action: str, run_id: int, tags: list[str]) -> str | None:
    """One run, one transaction: None when done, else why not."""
    if action == "tag":
        return labels.retag(session, run_id, add=tags)
    if action == "untag":
        return labels.retag(session, run_id, remove=tags)
    move = {"cancel": queue.request_cancel, "retry": queue.retry, "delete": queue.remove}[action]
    if move(session, run_id):
        if action == "delete":
            RunFiles(get_settings().artifact_dir, run_id).delete()
        return None
    status = session.execute(select(Run.status).where(Run.id == run_id)).scalar()
    session.rollback()
    return "no such run" if status is None else REFUSED[action].format(status=status)


@router.post("/runs/bulk", response_model=BulkResult, dependencies=[Authorized],
             description=f"Cancel, delete, retry, tag or untag up to {BULK_MAX} runs: each run in its own "
                         "transaction, as its one-run route would; the answer says which were done and why "
                         "the others were skipped.")
def bulk(body: BulkRequest, session: WriteSessionDep) -> BulkResult:
    done, skipped = [], []
    for run_id in dict.fromkeys(body.ids):
        reason = _apply(session, body.action, run_id, body.tags or [])
        if reason is None:
            done.append(run_id)
        else:
            skipped.append(Skipped(id=run_id, reason=reason))
    return BulkResult(action=body.action, done=done, skipped=skipped)


@router.get("/runs/ids", response_model=IdList,
            description="The ids of the runs that match the filters of GET /runs (config.*, tag, group "
                        f"included), ascending, at most {IDS_MAX}; `total` counts them all.")
def list_ids(session: SessionDep, filters: Filters, status_: StatusFilter = None, dataset: DatasetFilter = None,
             model: TextFilter = None, q: TextFilter = None,
             limit: Annotated[int, Query(ge=1, le=IDS_MAX)] = IDS_MAX) -> IdList:
    ids = session.execute(filters.apply(select(Run.id)).order_by(Run.id).limit(limit)).scalars().all()
    total = session.execute(filters.apply(select(func.count()).select_from(Run))).scalar_one()
    return IdList(ids=list(ids), total=total)

