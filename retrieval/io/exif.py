"""What a photo's EXIF says about it: when it was taken, with which camera and lens, and where.

Read with Pillow (headers only, no pixels decoded). A field whose value is broken or absurd
(a year 0000 or before photography, a date in the future, a latitude beyond 90 degrees, a
position of exactly 0, 0) is left empty; nothing here ever raises for a bad file.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path

#: EXIF tags (EXIF 2.32, CIPA DC-008-2019).
MAKE, MODEL, EXIF_IFD, GPS_IFD = 0x010F, 0x0110, 0x8769, 0x8825
DATETIME, DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL, OFFSET_TIME = 0x0132, 0x9003, 0x9011, 0x9010
LENS_MAKE, LENS_MODEL = 0xA433, 0xA434
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = 1, 2, 3, 4
#: Dates before this year are refused as absurd (the first photographs).
FIRST_YEAR = 1826
_DATE = re.compile(r"^\s*(\d{4})[:\-/](\d{2})[:\-/](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"^\s*([+-])(\d{2}):(\d{2})\s*$")


@dataclass
class PhotoMetadata:
    """What is known of a photo besides its pixels.

    Attributes:
        taken: local date and time it was taken, ``YYYY-MM-DDTHH:MM:SS`` (the camera's wall clock),
            or None.
        taken_offset: the UTC offset of ``taken`` (``+02:00``) when the EXIF records one, else None.
        taken_source: ``"exif"`` (DateTimeOriginal) or ``"mtime"`` (the file's modification time,
            in this machine's time zone, when the EXIF has no usable date).
        camera_make, camera_model, lens: as the EXIF writes them (trimmed), or None.
        latitude, longitude: degrees (WGS 84; north and east positive), or None.
    """

    taken: str | None = None
    taken_offset: str | None = None
    taken_source: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    latitude: float | None = None
    longitude: float | None = None

    @property
    def camera(self) -> str | None:
        """Make and model as one name (see :func:`camera_name`)."""
        return camera_name(self.camera_make, self.camera_model)


def camera_name(make: str | None, model: str | None) -> str | None:
    """Make and model as one name (``Canon EOS 80D``: the make once when the model repeats it); None if neither."""
    make, model = make or "", model or ""
    if make and model.lower().startswith(make.split()[0].lower()):
        make = ""
    return " ".join(x for x in (make, model) if x) or None


def clean_text(v, limit: int = 128) -> str | None:
    """An EXIF string trimmed of NULs and spaces; None when empty, unprintable or not text."""
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if not isinstance(v, str):
        return None
    v = v.replace("\x00", "").strip()
    if not v or not v.isprintable() or "\ufffd" in v:
        return None
    return v[:limit]


def parse_exif_date(v, now: dt.datetime | None = None) -> str | None:
    """``YYYY:MM:DD HH:MM:SS`` -> ``YYYY-MM-DDTHH:MM:SS``; None when missing, malformed, before
    :data:`FIRST_YEAR` or more than a day after ``now`` (default: the current time)."""
    m = _DATE.match(clean_text(v) or "")
    if not m:
        return None
    try:
        t = dt.datetime(*map(int, m.groups()))
    except ValueError:  # month 13, day 0, 24:00 ...
        return None
    now = now or dt.datetime.now()
    if t.year < FIRST_YEAR or t > now + dt.timedelta(days=1):
        return None
    return t.isoformat(timespec="seconds")


def parse_offset(v) -> str | None:
    """``+02:00`` style EXIF offset (OffsetTimeOriginal) -> the same text; None unless valid (|offset| <= 14 h)."""
    m = _OFFSET.match(clean_text(v) or "")
    if not m or int(m.group(2)) * 60 + int(m.group(3)) > 14 * 60 or int(m.group(3)) >= 60:
        return None
    return f"{m.group(1)}{m.group(2)}:{m.group(3)}"


def _degrees(dms, ref) -> float | None:
    try:
        d, m, s = (float(x) for x in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not all(math.isfinite(x) and x >= 0 for x in (d, m, s)) or m >= 60 or s >= 60:
        return None
    v = d + m / 60 + s / 3600
    ref = clean_text(ref) or ""
    return -v if ref.upper() in ("S", "W") else v


def parse_gps(gps: dict) -> tuple[float | None, float | None]:
    """(latitude, longitude) in degrees from an EXIF GPS IFD; (None, None) when missing, out of range
    or exactly (0, 0) (what broken GPS units write)."""
    if not gps:
        return None, None
    lat = _degrees(gps.get(GPS_LAT), gps.get(GPS_LAT_REF))
    lon = _degrees(gps.get(GPS_LON), gps.get(GPS_LON_REF))
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180 or (lat == 0 and lon == 0):
        return None, None
    return round(lat, 6), round(lon, 6)


def mtime_taken(mtime: float) -> str | None:
    """A file modification time (seconds since the epoch) as local ``YYYY-MM-DDTHH:MM:SS`` (None if absurd)."""
    try:
        t = dt.datetime.fromtimestamp(mtime)
    except (OverflowError, OSError, ValueError):
        return None
    return t.isoformat(timespec="seconds") if t.year >= FIRST_YEAR else None


def read_metadata(path: str | Path, mtime: float | None = None) -> PhotoMetadata:
    """The :class:`PhotoMetadata` of the photo at ``path`` (EXIF read with Pillow, no pixels decoded).

    ``taken`` falls back to ``mtime`` (seconds since the epoch; ``taken_source="mtime"``) when the
    EXIF has no valid DateTimeOriginal (or DateTime). A file Pillow cannot open, or broken EXIF,
    gives empty fields; this never raises for a bad file.
    """
    md = PhotoMetadata()
    try:
        ifd0, sub, gps = _exif_dirs(path)
    except Exception:  # noqa: BLE001 - any broken file or EXIF: no metadata, the photo is still indexed
        ifd0, sub, gps = {}, {}, {}
    md.taken = parse_exif_date(sub.get(DATETIME_ORIGINAL)) or parse_exif_date(ifd0.get(DATETIME))
    if md.taken:
        md.taken_source = "exif"
        md.taken_offset = parse_offset(sub.get(OFFSET_TIME_ORIGINAL) if sub.get(DATETIME_ORIGINAL)
                                       else sub.get(OFFSET_TIME))
    elif mtime is not None:
        md.taken = mtime_taken(mtime)
        md.taken_source = "mtime" if md.taken else None
    md.camera_make, md.camera_model = clean_text(ifd0.get(MAKE), 64), clean_text(ifd0.get(MODEL), 64)
    md.lens = clean_text(sub.get(LENS_MODEL))
    md.latitude, md.longitude = parse_gps(gps)
    return md


def _exif_dirs(path) -> tuple[dict, dict, dict]:
    """(IFD0, Exif IFD, GPS IFD) of the file as plain dicts."""
    from PIL import Image

    import retrieval.io.decode  # noqa: F401 - registers the HEIC opener

    with Image.open(path) as im:
        ex = im.getexif()
        return dict(ex), dict(ex.get_ifd(EXIF_IFD)), dict(ex.get_ifd(GPS_IFD))
