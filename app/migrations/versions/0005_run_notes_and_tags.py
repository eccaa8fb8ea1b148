"""Runs get notes and tags (and an editable name, which needs no column): what a user writes
about a run, edited with PATCH /runs/{id} and POST /runs/bulk (app/labels.py). Existing runs
get none: empty notes, an empty list of tags.

Revision ID: 0005
Revises: 0004
Created: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


# SQLite may rebuild the table for a batch: it must keep the AUTOINCREMENT of revision 0003.
RUN_TABLE = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("run", table_kwargs=RUN_TABLE) as batch:
        batch.add_column(sa.Column("notes", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("run", table_kwargs=RUN_TABLE) as batch:
        batch.drop_column("tags")
        batch.drop_column("notes")
