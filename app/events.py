"""Live events: one loop watches the event table and fans new rows out to every open
stream, instead of one query loop per browser. A stream that (re)connects with a last
event id first replays what it missed from the table, then follows the live feed."""

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from app import queue
from app.db import get_engine
from app.models import Event, Run
from app.schemas import RunRead

log = logging.getLogger("zoolab.events")
POLL_SECONDS = 0.25
BATCH = 1000


@dataclass
class Item:
    id: int
    run_id: int | None
    kind: str
    data: dict[str, Any]


def last_event_id(session: Session) -> int:
    return session.execute(select(func.coalesce(func.max(Event.id), 0))).scalar_one()


def fetch(session: Session, after: int, run_id: int | None = None,
          limit: int = BATCH) -> tuple[list[Item], int]:
    """Events after `after`, oldest first, and the last id looked at. A status event
    carries the run as it is now, with the status (and error) that the event recorded."""
    query = select(Event).where(Event.id > after).order_by(Event.id).limit(limit)
    if run_id is not None:
        query = query.where(Event.run_id == run_id)
    events = session.execute(query).scalars().all()
    status_ids = {e.run_id for e in events if e.kind == "status"}
    runs = {}
    if status_ids:
        positions = queue.queue_positions(session)
        runs = {r.id: RunRead.of(r, positions).model_dump(mode="json")
                for r in session.execute(select(Run).where(Run.id.in_(status_ids))).scalars()}
    items = []
    for e in events:
        data = e.data
        if e.kind == "status":
            if e.run_id not in runs:  # deleted since; its `deleted` event follows
                continue
            data = {**runs[e.run_id], **e.data}  # the run now, with the status this event recorded
        items.append(Item(e.id, e.run_id, e.kind, data))
    return items, events[-1].id if events else after


class Broadcaster:
    def __init__(self):
        self.subscribers: set[asyncio.Queue] = set()
        self.last_id = 0
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        with Session(get_engine()) as s:
            self.last_id = last_event_id(s)
        self._task = asyncio.create_task(self._loop(), name="event-broadcaster")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self.subscribers.clear()

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(maxsize=10_000)
        self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self.subscribers.discard(q)

    def _poll(self) -> tuple[list[Item], int]:
        with Session(get_engine()) as s:
            if not self.subscribers:  # nobody listens: just keep up with the table
                return [], last_event_id(s)
            return fetch(s, self.last_id)

    async def _loop(self) -> None:
        while True:
            try:
                before = self.last_id
                items, self.last_id = await asyncio.to_thread(self._poll)
                for item in items:
                    for q in list(self.subscribers):
                        try:
                            q.put_nowait(item)
                        except asyncio.QueueFull:  # a stuck client: its stream ends, it reconnects
                            self.subscribers.discard(q)
                if self.last_id - before >= BATCH:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event poll failed; retrying")
            await asyncio.sleep(POLL_SECONDS)
