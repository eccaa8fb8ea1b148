"""A run's labels: its name, notes and tags, the parts of a run a user writes. What a tag may
be and how many a run holds, and the writes that change labels (PATCH /runs/{id}, the bulk
tag and untag of POST /runs/bulk).

    check_tag("lr-sweep")                  # "lr-sweep"; a ValueError that says why otherwise
    edit(session, 7, tags=["baseline"])    # False if run 7 does not exist

A write touches the label columns only, so it never races a worker's writes to the same row,
and records a `status` event carrying the run as it is now: every open page shows the change."""

import re
from typing import Annotated

from pydantic import AfterValidator, Field
from sqlalchemy import select, update
from sqlmodel import Session

from app.models import Event, Run

MAX_TAGS = 20          # per run
MAX_TAG_LENGTH = 32
MAX_NOTES = 10_000     # characters
# Lower case, so a tag reads and filters the same everywhere; no quote, space or %, so a tag
# is found in the stored JSON list by a plain text match (app/filters.py).
TAG = re.compile(r"[a-z0-9][a-z0-9._:/-]*")
TAG_RULE = (f"a tag is 1 to {MAX_TAG_LENGTH} characters of a-z, 0-9 and . _ : / -, "
            "starting with a letter or a digit")


def check_tag(text: str) -> str:
    if len(text) > MAX_TAG_LENGTH or not TAG.fullmatch(text):
        hint = f" (write {text.lower()!r})" if text != text.lower() and TAG.fullmatch(text.lower()) else ""
        raise ValueError(f"{text[:60]!r} is not a tag{hint}: {TAG_RULE}")
    return text


def check_tags(tags: list[str]) -> list[str]:
    if len(tags) > MAX_TAGS:
        raise ValueError(f"{len(tags)} tags; a run holds at most {MAX_TAGS}")
    repeated = sorted({t for t in tags if tags.count(t) > 1})
    if repeated:
        raise ValueError(f"tags repeats {', '.join(map(repr, repeated))}")
    return tags


def check_text(text: str) -> str:
    if "\x00" in text:  # PostgreSQL text cannot hold one
        raise ValueError("a NUL character cannot be stored")
    return text


def check_name(text: str) -> str:
    if not text.strip():
        raise ValueError("a name needs at least one visible character")
    return check_text(text)


Tag = Annotated[str, AfterValidator(check_tag)]
Tags = Annotated[list[Tag], AfterValidator(check_tags)]
Name = Annotated[str, Field(max_length=200), AfterValidator(check_name)]
Notes = Annotated[str, Field(max_length=MAX_NOTES), AfterValidator(check_text)]


def _changed(session: Session, run_id: int, status: str) -> None:
    session.add(Event(run_id=run_id, kind="status", data={"run_id": run_id, "status": status}))


def edit(session: Session, run_id: int, *, name: str | None = None, notes: str | None = None,
         tags: list[str] | None = None) -> bool:
    """Set the labels given (None: unchanged), in one transaction. False if there is no such run."""
    values = {k: v for k, v in (("name", name), ("notes", notes), ("tags", tags)) if v is not None}
    row = session.execute(select(Run.status, Run.config).where(Run.id == run_id).with_for_update()).first()
    if row is None:
        session.rollback()
        return False
    if values:
        if name is not None:  # the config's name is the same label (a re-run copies it)
            values["config"] = {**row.config, "name": name}
        session.execute(update(Run).where(Run.id == run_id).values(**values))
        _changed(session, run_id, row.status)
    session.commit()
    return True


def retag(session: Session, run_id: int, *, add: list[str] = (), remove: list[str] = ()) -> str | None:
    """Add and remove tags of one run, in one transaction. None when done, else why not."""
    row = session.execute(select(Run.status, Run.tags).where(Run.id == run_id).with_for_update()).first()
    if row is None:
        session.rollback()
        return "no such run"
    tags = [t for t in row.tags if t not in remove] + [t for t in add if t not in row.tags]
    if len(tags) > MAX_TAGS:
        session.rollback()
        return f"it would hold {len(tags)} tags; a run holds at most {MAX_TAGS}"
    if tags != row.tags:
        session.execute(update(Run).where(Run.id == run_id).values(tags=tags))
        _changed(session, run_id, row.status)
    session.commit()
    return None
