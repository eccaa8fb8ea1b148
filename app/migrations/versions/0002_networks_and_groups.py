"""Networks are data in a run, runs have a parent, seeds form groups, users save presets.

- run.config gains `layers` (the network): a run of v0.1.0 trained its preset's layers,
  written in below as they were then.
- run.parent_id: the run a run was derived from (lineage).
- run.group_key: runs whose config differs only in seed share it (the function is copied
  here as it is at this revision: a later change of the function needs its own migration).
- preset: presets saved by users.

Revision ID: 0002
Revises: 0001
Created: 2026-11-28
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _group_key(config: dict) -> str:
    same = {k: v for k, v in config.items() if k not in ("seed", "name")}
    return hashlib.sha256(json.dumps(same, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("group_key", sa.String(16), nullable=False, server_default=""))
        batch.create_foreign_key("fk_run_parent_id_run", "run", ["parent_id"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_run_parent_id", ["parent_id"])
        batch.create_index("ix_run_group_key", ["group_key"])
    op.create_table(
        "preset",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("dataset", sa.String(40), nullable=False),
        sa.Column("layers", sa.JSON(), nullable=False),
        sa.Column("defaults", sa.JSON(), nullable=False),
        sa.Column("params", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("from_run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    run = sa.table("run", sa.column("id", sa.Integer()), sa.column("model", sa.String()),
                   sa.column("config", sa.JSON()), sa.column("group_key", sa.String()))
    connection = op.get_bind()
    for run_id, model, config in connection.execute(sa.select(run.c.id, run.c.model, run.c.config)).all():
        if "layers" not in config and model in V0_1_0_LAYERS:
            config = {**config, "layers": V0_1_0_LAYERS[model]}
        connection.execute(sa.update(run).where(run.c.id == run_id)
                           .values(config=config, group_key=_group_key(config)))


def downgrade() -> None:
    op.drop_table("preset")
    with op.batch_alter_table("run") as batch:
        batch.drop_index("ix_run_group_key")
        batch.drop_index("ix_run_parent_id")
        batch.drop_constraint("fk_run_parent_id_run", type_="foreignkey")
        batch.drop_column("group_key")
        batch.drop_column("parent_id")


V0_1_0_LAYERS = {'mnist-logreg': ['flatten', 'linear 784 10'],
 'mnist-2fc-sigmoid-8k': ['flatten', 'linear 784 10', 'sigmoid', 'linear 10 10'],
 'mnist-2fc-sigmoid-55k': ['flatten', 'linear 784 70', 'sigmoid', 'linear 70 10'],
 'mnist-2fc-relu-55k': ['flatten', 'linear 784 70', 'relu', 'linear 70 10'],
 'mnist-2fc-relu-bn-55k': ['flatten', 'linear 784 70', 'bn1d 70', 'relu', 'linear 70 10'],
 'mnist-3fc-51k': ['flatten', 'linear 784 60', 'relu', 'linear 60 60', 'relu', 'linear 60 10'],
 'mnist-3fc-bn1-51k': ['flatten', 'linear 784 60', 'bn1d 60', 'relu', 'linear 60 60', 'relu', 'linear 60 10'],
 'mnist-3fc-bn2-51k': ['flatten', 'linear 784 60', 'relu', 'linear 60 60', 'bn1d 60', 'relu', 'linear 60 10'],
 'mnist-3fc-2bn-51k': ['flatten',
                       'linear 784 60',
                       'bn1d 60',
                       'relu',
                       'linear 60 60',
                       'bn1d 60',
                       'relu',
                       'linear 60 10'],
 'mnist-3fc-2bn-explr': ['flatten',
                         'linear 784 60',
                         'bn1d 60',
                         'relu',
                         'linear 60 60',
                         'bn1d 60',
                         'relu',
                         'linear 60 10'],
 'mnist-3fc-2bn-polylr': ['flatten',
                          'linear 784 60',
                          'bn1d 60',
                          'relu',
                          'linear 60 60',
                          'bn1d 60',
                          'relu',
                          'linear 60 10'],
 'mnist-best-augment': ['flatten',
                        'linear 784 60',
                        'bn1d 60',
                        'relu',
                        'linear 60 60',
                        'bn1d 60',
                        'relu',
                        'linear 60 10'],
 'cifar-conv5-fc-8k': ['conv 3 1 5', 'relu', 'flatten', 'linear 784 10'],
 'cifar-conv5-pool-fc-2k': ['conv 3 1 5', 'maxpool 2', 'relu', 'flatten', 'linear 196 10'],
 'cifar-conv5-2fc-bn-47k': ['conv 3 1 5',
                            'relu',
                            'flatten',
                            'linear 784 60',
                            'bn1d 60',
                            'relu',
                            'linear 60 10'],
 'cifar-2conv5-2fc-bn-21k': ['conv 3 6 5',
                             'maxpool 2',
                             'relu',
                             'conv 6 12 5',
                             'maxpool 2',
                             'relu',
                             'flatten',
                             'linear 300 60',
                             'bn1d 60',
                             'relu',
                             'linear 60 10'],
 'cifar-2conv5-2fc-bn-36k': ['conv 3 10 5',
                             'maxpool 2',
                             'relu',
                             'conv 10 20 5',
                             'maxpool 2',
                             'relu',
                             'flatten',
                             'linear 500 60',
                             'bn1d 60',
                             'relu',
                             'linear 60 10'],
 'cifar-3conv-2fc-bn-41k': ['conv 3 30 5',
                            'maxpool 2',
                            'relu',
                            'conv 30 30 3',
                            'maxpool 2',
                            'relu',
                            'conv 30 60 3',
                            'maxpool 2',
                            'relu',
                            'flatten',
                            'linear 240 60',
                            'bn1d 60',
                            'relu',
                            'linear 60 10'],
 'cifar-vgg-179k': ['convblock 3 15 3 pad=1',
                    'convblock 15 30 3 pad=1',
                    'maxpool 2',
                    'convblock 30 45 3 pad=1',
                    'dropout 0.2',
                    'convblock 45 60 3 pad=1',
                    'maxpool 2',
                    'convblock 60 75 3',
                    'dropout 0.2',
                    'convblock 75 90 3',
                    'maxpool 2',
                    'flatten',
                    'linear 360 70',
                    'bn1d 70',
                    'relu',
                    'dropout 0.2',
                    'linear 70 10'],
 'cifar-inception-2step': ['convblock 3 30 3 pad=1',
                           'convblock 30 60 3 pad=1',
                           'maxpool 2',
                           'dropout 0.2',
                           'inception 60 20 30 40 10 20 10',
                           'maxpool 2',
                           'inception 90 30 35 60 20 30 20',
                           'dropout 0.2',
                           'inception 140 60 50 100 50 50 30',
                           'maxpool 2',
                           'inception 240 70 50 140 50 70 50',
                           'maxpool 2',
                           'dropout 0.2',
                           'flatten',
                           'linear 1320 70',
                           'bn1d 70',
                           'relu',
                           'dropout 0.2',
                           'linear 70 10'],
 'cifar-inception-1step': ['convblock 3 30 3 pad=1',
                           'convblock 30 60 3 pad=1',
                           'maxpool 2',
                           'dropout 0.2',
                           'inception 60 20 30 40 10 20 10',
                           'maxpool 2',
                           'inception 90 30 35 60 20 30 20',
                           'dropout 0.2',
                           'inception 140 60 50 100 50 50 30',
                           'maxpool 2',
                           'inception 240 70 50 140 50 70 50',
                           'maxpool 2',
                           'dropout 0.2',
                           'flatten',
                           'linear 1320 70',
                           'bn1d 70',
                           'relu',
                           'dropout 0.2',
                           'linear 70 10'],
 'cifar-resnet-6.6m': ['convblock 3 64 3 pad=1',
                       'convblock 64 128 3 pad=1',
                       'maxpool 2',
                       'resblock 128',
                       'convblock 128 256 3 pad=1',
                       'maxpool 2',
                       'convblock 256 512 3 pad=1',
                       'maxpool 2',
                       'resblock 512',
                       'maxpool 4',
                       'flatten',
                       'linear 512 10']}
