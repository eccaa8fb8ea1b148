"""The database: engines and sessions (the schema is app/migrate.py's).

SQLite (the default, `runs.db`) runs in WAL mode with a busy timeout so the server
reads while a worker writes; PostgreSQL works through the same code."""

from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated

from fastapi import Depends
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from app.migrate import upgrade
from app.settings import get_settings

SQLITE_BUSY_TIMEOUT_MS = 30_000


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
        engine = create_engine(url, pool_pre_ping=True)
    return engine


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
