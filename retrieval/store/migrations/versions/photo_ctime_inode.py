"""Photos record their inode change time and inode, so that a file written over another of the
same name, size and mtime is noticed (NULL for photos indexed before: filled by the next run).

Revision ID: photo_ctime_inode
Revises: tombstones
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "photo_ctime_inode"
down_revision = "tombstones"
branch_labels = None
depends_on = None


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("photos")}
    if {"ctime", "inode"} <= have:  # an index set back to an older revision
        return
    with op.batch_alter_table("photos") as b:
        b.add_column(sa.Column("ctime", sa.Float(), nullable=True))
        b.add_column(sa.Column("inode", sa.Integer().with_variant(sa.BigInteger(), "postgresql"), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("photos") as b:
        b.drop_column("inode")
        b.drop_column("ctime")
