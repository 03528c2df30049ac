"""The objects table: the COCO objects the detector found in each photo (the detector channel).

An index from before has no objects; ``retr index`` detects them without re-embedding.

Revision ID: detected_objects
Revises: photo_ctime_inode
Create Date: 2026-12-07
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "detected_objects"
down_revision = "photo_ctime_inode"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "objects" in sa.inspect(op.get_bind()).get_table_names():  # an index set back to an older revision
        return
    op.create_table(
        "objects",
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("classes", sa.LargeBinary(), nullable=False),
        sa.Column("scores", sa.LargeBinary(), nullable=False),
        sa.Column("counts", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("photo_id"),
    )


def downgrade() -> None:
    op.drop_table("objects")
