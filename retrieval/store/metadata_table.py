"""The ``photo_metadata`` table: one row per photo whose EXIF (or file time) has been read at index
time: date taken, camera, lens, GPS position and place name (see :mod:`retrieval.io.exif`,
:mod:`retrieval.io.places`). A photo without a row has not been read yet; the next ``retr index``
reads it, without re-embedding. Rows go with their photo (``ON DELETE CASCADE``)."""
from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from retrieval.store.database import Base

#: The table's name (also in :data:`retrieval.store.database.TABLES`).
METADATA_TABLE = "photo_metadata"


class PhotoInfo(Base):
    """What is known of one photo besides its pixels (every field may be None).

    ``taken`` is local wall-clock time ``YYYY-MM-DDTHH:MM:SS`` (sortable as text), ``taken_offset``
    its UTC offset when the EXIF records one, ``taken_source`` ``exif`` or ``mtime``; ``place`` is a
    display name (``Oslo, Norway``) and ``place_key`` every name of the place case-folded between
    ``|`` (what ``--place`` matches); ``latitude``/``longitude`` in degrees (WGS 84)."""

    __tablename__ = METADATA_TABLE
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    taken: Mapped[str | None] = mapped_column(String(19), index=True, nullable=True)
    taken_offset: Mapped[str | None] = mapped_column(String(6), nullable=True)
    taken_source: Mapped[str | None] = mapped_column(String(8), nullable=True)
    camera_make: Mapped[str | None] = mapped_column(String(64), nullable=True)
    camera_model: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lens: Mapped[str | None] = mapped_column(String(128), nullable=True)
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    place: Mapped[str | None] = mapped_column(Text, nullable=True)
    place_key: Mapped[str | None] = mapped_column(Text, nullable=True)
