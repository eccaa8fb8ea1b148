"""Workers report their device's memory (and a GPU's utilisation) with each heartbeat.

Revision ID: 0004
Revises: 0003
Created: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("worker") as batch:
        batch.add_column(sa.Column("memory_used_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("memory_total_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("utilization", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("worker") as batch:
        for column in ("utilization", "memory_total_bytes", "memory_used_bytes"):
            batch.drop_column(column)
