"""``ocr_texts``: the text recognised in each photo (OCR), one row a photo it was run on or skipped for.

On SQLite, an FTS5 index ``ocr_fts`` over it (trigram tokens, so a word is found inside a longer
one: OCR often joins neighbouring words; external content, kept in step by triggers) answers
lexical queries; on PostgreSQL they run on the table itself (``ILIKE``).

Revision ID: photo_ocr_text
Revises: photo_metadata
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "photo_ocr_text"
down_revision = "photo_metadata"
branch_labels = None
depends_on = None

FTS = [
    "CREATE VIRTUAL TABLE ocr_fts USING fts5(text, content='ocr_texts', content_rowid='photo_id', "
    "tokenize='trigram')",
    "CREATE TRIGGER ocr_texts_ai AFTER INSERT ON ocr_texts BEGIN "
    "INSERT INTO ocr_fts(rowid, text) VALUES (new.photo_id, new.text); END",
    "CREATE TRIGGER ocr_texts_ad AFTER DELETE ON ocr_texts BEGIN "
    "INSERT INTO ocr_fts(ocr_fts, rowid, text) VALUES ('delete', old.photo_id, old.text); END",
    "CREATE TRIGGER ocr_texts_au AFTER UPDATE ON ocr_texts BEGIN "
    "INSERT INTO ocr_fts(ocr_fts, rowid, text) VALUES ('delete', old.photo_id, old.text); "
    "INSERT INTO ocr_fts(rowid, text) VALUES (new.photo_id, new.text); END",
]


def upgrade() -> None:
    op.create_table(
        "ocr_texts",
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("photo_id"),
    )
    if op.get_bind().dialect.name == "sqlite":
        for sql in FTS:
            op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("ocr_texts_ai", "ocr_texts_ad", "ocr_texts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS ocr_fts")
    op.drop_table("ocr_texts")
