"""The database: engines and sessions (the schema is app/migrate.py's).

SQLite (the default, `runs.db`) runs in WAL mode with a busy timeout so the server
reads while a worker writes. PostgreSQL (`postgresql+psycopg://user:password@host/db`,
for workers on several machines) runs the same code, with a connection pool and one
rule of its own: event ids are handed out in commit order (see `_events_in_commit_order`)."""

from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated

from fastapi import Depends
from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, create_engine

from app import models
from app.migrate import upgrade
from app.settings import get_settings

SQLITE_BUSY_TIMEOUT_MS = 30_000

# PostgreSQL connections per process. The server's sync routes run on anyio's pool of 40
# threads, each holding at most one session, and event streams read in short sessions of
# their own: 10 kept open plus 30 opened under load serve 40 at once, and a 41st waits for
# a free one (pool_timeout, 30 s) rather than failing. A worker process uses two (training
# thread and heartbeat thread) and a pool opens only what is used, so a server and 25
# workers stay within PostgreSQL's default max_connections of 100.
PG_POOL_SIZE = 10
PG_MAX_OVERFLOW = 30

# The key of the PostgreSQL advisory lock that orders event inserts (app/migrate.py has its own).
EVENT_LOCK = 0x7A6F6F02


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own BEGIN handling is switched off and replaced: reads begin
        # DEFERRED, writes (engines made by `writer()`) begin IMMEDIATE, so a writer takes
        # the lock up front and waits out the busy timeout instead of failing with
        # "database is locked" when a read transaction cannot be upgraded.
        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_connection, _record):
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn):
            immediate = conn.get_execution_options().get("sqlite_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
    else:
        # pre_ping: a connection dropped by a restarted database server is replaced, not used.
        engine = create_engine(url, pool_pre_ping=True, pool_size=PG_POOL_SIZE, max_overflow=PG_MAX_OVERFLOW)
    return engine


@event.listens_for(models.Event, "before_insert")
def _events_in_commit_order(_mapper, conn: Connection, _target) -> None:
    """Streams follow the event table by id (`WHERE id > last seen`), which needs a row
    with a smaller id never to become visible after one with a larger id. SQLite commits
    one writer at a time; PostgreSQL hands out ids when rows are inserted, so two
    transactions could commit out of id order and a stream would skip the first forever.
    This lock, taken before each event insert and held until commit, serialises the
    event-writing tails of transactions. Events come after a transaction's updates and
    deletes (app/queue.py keeps to that): a transaction holding the lock then only inserts
    and commits, never waits for a row lock held by one waiting for the lock, and no
    deadlock can form."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(EVENT_LOCK)))


@lru_cache
def get_engine() -> Engine:
    """The server's engine, on a database brought to this version's schema (app/migrate.py)."""
    engine = make_engine(get_settings().database_url)
    upgrade(engine)
    return engine


def writer(engine: Engine) -> Engine:
    """The same engine (same pool) whose transactions are meant to write."""
    return engine.execution_options(sqlite_write=True)


def get_session() -> Iterator[Session]:
    with Session(get_engine()) as session:
        yield session


def get_write_session() -> Iterator[Session]:
    with Session(writer(get_engine())) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
WriteSessionDep = Annotated[Session, Depends(get_write_session)]
