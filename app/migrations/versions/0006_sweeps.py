"""Sweeps: a search over a space of run configs, whose trials are runs; a run may end `pruned`.

- sweep: the search (base config, space, sampler, pruner, budget, status, best run). Its
  sampler's and pruner's memory is an Optuna study in this same database: Optuna creates and
  owns its own tables (studies, trials, ...), which these migrations leave alone (app/migrate.py).
- run.sweep_id, run.trial_number: the sweep that queued a run and its trial's number there.
- `pruned` is a new value of run.status (a string column: nothing to migrate).

Revision ID: 0006
Revises: 0005
Created: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

# SQLite may rebuild the table for a batch: it must keep the AUTOINCREMENT of revision 0003.
RUN_TABLE = {"sqlite_autoincrement": True}

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweep",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("dataset", sa.String(40), nullable=False),
        sa.Column("base", sa.JSON(), nullable=False),
        sa.Column("base_run_id", sa.Integer(), nullable=True),
        sa.Column("space", sa.JSON(), nullable=False),
        sa.Column("sampler", sa.String(16), nullable=False),
        sa.Column("pruner", sa.String(16), nullable=False),
        sa.Column("budget", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("best_run_id", sa.Integer(), nullable=True),
        sa.Column("study_name", sa.String(100), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_name"),
    )
    op.create_index("ix_sweep_status", "sweep", ["status"])
    with op.batch_alter_table("run", table_kwargs=RUN_TABLE) as batch:
        batch.add_column(sa.Column("sweep_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("trial_number", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_run_sweep_id_sweep", "sweep", ["sweep_id"], ["id"], ondelete="SET NULL")
        batch.create_unique_constraint("uq_run_sweep_trial", ["sweep_id", "trial_number"])
        batch.create_index("ix_run_sweep_id", ["sweep_id"])


def downgrade() -> None:
    # An older zoolab knows no `pruned`: such a run reads as stopped on request (its reason stays in error).
    op.execute("UPDATE run SET status = 'cancelled' WHERE status = 'pruned'")
    with op.batch_alter_table("run", table_kwargs=RUN_TABLE) as batch:
        batch.drop_index("ix_run_sweep_id")
        batch.drop_constraint("uq_run_sweep_trial", type_="unique")
        batch.drop_constraint("fk_run_sweep_id_sweep", type_="foreignkey")
        batch.drop_column("trial_number")
        batch.drop_column("sweep_id")
    op.drop_index("ix_sweep_status", "sweep")
    op.drop_table("sweep")
