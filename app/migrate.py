"""Schema migrations (Alembic, scripts in app/migrations/versions/): every schema change ships
as a revision, so a user's runs.db — or a lab's PostgreSQL — keeps every run across upgrades.

    zoolab db upgrade            # bring the database to this version's schema (the server does it at start)
    zoolab db current            # the database's revision and this code's
    zoolab db revision -m MSG    # (developers) a new revision from the models' difference to the database

The server upgrades at start; a worker only checks (a worker newer or older than the
database says so and stops, rather than change a schema a running server relies on) — but
creates a brand-new, empty database. A database newer than the code is refused, never altered.
Migrations run in one transaction holding the database's write lock (SQLite: BEGIN IMMEDIATE;
PostgreSQL: an advisory lock), so a server and workers starting together never race.

The database also holds the Optuna studies of sweeps (app/studies.py) in Optuna's own tables:
these migrations neither create, alter nor drop them, and autogenerate never sees them
(`include_name`). zoolab's revision is in its own table, `zoolab_version`, so that Optuna keeps
Alembic's default `alembic_version` for its own schema and checks it as it is meant to."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from optuna.storages._rdb.models import BaseModel as OptunaModel  # Optuna's tables, as Optuna declares them
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from app import models  # noqa: F401  (registers the tables)

SCRIPTS = Path(__file__).resolve().parent / "migrations"
# The first release created its tables without Alembic: such a database is stamped with this.
BASELINE = "0001"
ADVISORY_LOCK = 0x7A6F6F6C  # "zool"
# Optuna's version table is Alembic's default name; zoolab's revision lives in its own.
VERSION_TABLE = "zoolab_version"
OPTUNA_TABLES = frozenset(OptunaModel.metadata.tables) | {"alembic_version"}


def include_name(name: str | None, type_: str, parent_names) -> bool:
    """Alembic's filter: Optuna's tables are Optuna's (app/studies.py), never zoolab's schema."""
    return not (type_ == "table" and name in OPTUNA_TABLES)


class SchemaError(RuntimeError):
    """This database cannot be used by this version of zoolab; the message says why and what to do."""


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    return _scripts().get_current_head()


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _state(connection: Connection) -> tuple[str | None, bool]:
    """(the database's revision, whether it has zoolab's tables at all)."""
    revision = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()
    return revision, "run" in inspect(connection).get_table_names()


def _refuse_newer(engine: Engine, revision: str) -> None:
    if revision not in {s.revision for s in _scripts().walk_revisions()}:
        raise SchemaError(
            f"the database {_where(engine)} has schema revision {revision!r}, written by a newer zoolab "
            f"than this one (which knows revisions up to {head()!r}); it was left unchanged. Upgrade "
            "zoolab here, or point ZOOLAB_DATABASE_URL at another database.")


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the database's migration lock until the end."""
    with engine.connect() as connection:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            # SQLite rebuilds a table to alter it; with foreign keys enforced, dropping the old
            # `run` table would cascade-delete every metric. The pragma is a no-op inside a
            # transaction, so it goes to the driver's connection before ours begins.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.execution_options(sqlite_write=True).begin():
                if engine.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
                yield connection
                if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise SchemaError(f"migrating {_where(engine)} broke a foreign key; nothing was changed")
        finally:
            if sqlite:
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def _move_early_version_table(connection: Connection) -> None:
    """Development builds before the first release with migrations kept zoolab's revision in
    Alembic's default table, `alembic_version`: such a row (one of zoolab's revisions, never
    Optuna's) moves to zoolab's own table."""
    tables = inspect(connection).get_table_names()
    if VERSION_TABLE in tables or "alembic_version" not in tables:
        return
    ours = {s.revision for s in _scripts().walk_revisions()}
    revisions = {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}
    if revisions and revisions <= ours:
        connection.execute(text(f"ALTER TABLE alembic_version RENAME TO {VERSION_TABLE}"))


def upgrade(engine: Engine) -> str | None:
    """Bring the database to this code's schema; returns the revision it was at (None: new)."""
    with _locked(engine) as connection:
        _move_early_version_table(connection)
        revision, has_tables = _state(connection)
        config = _config(connection)
        if revision is None and not has_tables:
            # A new database: the models' tables as they are now, marked current (the
            # migrations are checked to build the very same schema: tests/test_migrations.py).
            SQLModel.metadata.create_all(connection)
            command.stamp(config, "head")
            return None
        if revision is None:
            command.stamp(config, BASELINE)
            revision = BASELINE
        _refuse_newer(engine, revision)
        if revision != head():
            command.upgrade(config, "head")
        return revision


def require_current(engine: Engine) -> None:
    """A worker's check: the database must be at this code's revision (a new one is created)."""
    with engine.connect() as connection:
        revision, has_tables = _state(connection)
    if revision is None and not has_tables:
        upgrade(engine)
        return
    if revision is not None:
        _refuse_newer(engine, revision)
    if revision != head():
        raise SchemaError(
            f"the database {_where(engine)} is at schema revision {revision or 'v0.1.0 (none)'!r}; this "
            f"worker needs {head()!r}. Upgrade the database first: start the new zoolab server (it "
            "upgrades at start) or run `zoolab db upgrade`.")


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return _state(connection)[0]


def revision(engine: Engine, message: str) -> None:
    """A new revision script whose operations Alembic derives from the models (check it by hand)."""
    with _locked(engine) as connection:
        command.revision(_config(connection), message=message, autogenerate=True)
