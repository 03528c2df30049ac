"""Photos gain ``phash``: the 64-bit perceptual hash (16 hex digits) used to find near-duplicates.

Nullable: photos indexed before this revision get theirs on the next ``retr index`` (decoded
again, never re-embedded); an empty string marks a photo whose hash could not be computed.

Revision ID: photo_perceptual_hash
Revises: 0001
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "photo_perceptual_hash"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.add_column(sa.Column("phash", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("phash")
