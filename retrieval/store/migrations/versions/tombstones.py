"""Tombstones: removed photos kept 30 days (vector, generated caption), so that a file that comes
back with the same content returns without re-embedding.

Revision ID: tombstones
Revises: concepts
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "tombstones"
down_revision = "concepts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "tombstones" in sa.inspect(op.get_bind()).get_table_names():  # an index set back to an older revision
        return
    op.create_table(
        "tombstones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.Column("caption_vector", sa.LargeBinary(), nullable=True),
        sa.Column("removed_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_tombstones_hash", "tombstones", ["hash"], unique=False)
    op.create_index("ix_tombstones_removed_at", "tombstones", ["removed_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tombstones_removed_at", table_name="tombstones")
    op.drop_index("ix_tombstones_hash", table_name="tombstones")
    op.drop_table("tombstones")
