"""The concepts table: each photo's top ImageNet classes and their posteriors (the concept channel).

An index from before has no concepts; ``retr index`` fills them in without re-embedding.

Revision ID: concepts
Revises: photo_ocr_text
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "concepts"
down_revision = "photo_ocr_text"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "concepts",
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("classes", sa.LargeBinary(), nullable=False),
        sa.Column("probs", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("photo_id"),
    )


def downgrade() -> None:
    op.drop_table("concepts")
