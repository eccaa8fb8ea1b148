"""Alembic's environment for zoolab. Migrations always run on a connection handed over by
app/migrate.py (which holds the database's write lock while they run); the command line is
`zoolab db upgrade | current | revision`.

On SQLite a batch operation may rebuild a table: one on `run` must pass
`table_kwargs={"sqlite_autoincrement": True}` (revision 0003), or ids could be reused again
(tests/test_migrations.py checks it)."""

from alembic import context
from sqlmodel import SQLModel

from app import models  # noqa: F401  (registers the tables in SQLModel.metadata)
from app.migrate import VERSION_TABLE, include_name

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite alters a table by copying it: "batch" mode does that for every operation there.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_name=include_name,  # Optuna's tables (sweeps' studies) live beside ours
    version_table=VERSION_TABLE,  # Optuna's own revision is in `alembic_version`
)
with context.begin_transaction():
    context.run_migrations()
