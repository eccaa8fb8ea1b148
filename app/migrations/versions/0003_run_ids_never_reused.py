"""Run ids are never reused: the run table gets SQLite's AUTOINCREMENT.

Without it SQLite hands the id of the newest run out again once that run is deleted, and the
deleted run's events (kept in the event table) replay under the new run. SQLite cannot add
AUTOINCREMENT to a table, so the table is rebuilt (batch mode; app/migrate.py turns foreign
keys off meanwhile, so the rebuild does not cascade-delete metrics and progress). The id
counter starts above every id a run ever had, including deleted runs that left only events.
PostgreSQL's sequences never reuse an id: nothing to do there.

Revision ID: 0003
Revises: 0002
Created: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

HIGHEST_RUN_ID = sa.text("SELECT max(coalesce((SELECT max(id) FROM run), 0), coalesce((SELECT max(run_id) FROM event), 0),"
                         " coalesce((SELECT max(current_run_id) FROM worker), 0))")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    with op.batch_alter_table("run", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass
    highest = bind.execute(HIGHEST_RUN_ID).scalar_one()
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'run'"))
    bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('run', :seq)"), {"seq": highest})


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("run", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
