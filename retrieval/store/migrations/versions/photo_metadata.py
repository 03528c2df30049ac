"""Photo metadata read at index time: date taken, camera, lens, GPS position, place name.

One row per photo that has been read (``photo_metadata``); photos indexed before get theirs
on the next ``retr index``, without re-embedding.

Revision ID: photo_metadata
Revises: photo_perceptual_hash
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "photo_metadata"
down_revision = "photo_perceptual_hash"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "photo_metadata",
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("taken", sa.String(19), nullable=True),
        sa.Column("taken_offset", sa.String(6), nullable=True),
        sa.Column("taken_source", sa.String(8), nullable=True),
        sa.Column("camera_make", sa.String(64), nullable=True),
        sa.Column("camera_model", sa.String(64), nullable=True),
        sa.Column("lens", sa.String(128), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("place", sa.Text(), nullable=True),
        sa.Column("place_key", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("photo_id"),
    )
    op.create_index("ix_photo_metadata_taken", "photo_metadata", ["taken"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_photo_metadata_taken", table_name="photo_metadata")
    op.drop_table("photo_metadata")
