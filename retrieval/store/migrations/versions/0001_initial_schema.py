"""The first schema (index format 1): photos, texts, meta.

Indexes made before retr used Alembic have exactly this schema; they are stamped at
this revision when opened.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer().with_variant(sa.BigInteger(), "postgresql"), nullable=False),
        sa.Column("mtime", sa.Float(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("indexed_at", sa.String(32), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_photos_path", "photos", ["path"], unique=True)
    op.create_index("ix_photos_hash", "photos", ["hash"], unique=False)
    op.create_table(
        "texts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_texts_photo_id", "texts", ["photo_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_texts_photo_id", table_name="texts")
    op.drop_table("texts")
    op.drop_index("ix_photos_hash", table_name="photos")
    op.drop_index("ix_photos_path", table_name="photos")
    op.drop_table("photos")
    op.drop_table("meta")
