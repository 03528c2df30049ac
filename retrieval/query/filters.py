"""Metadata filters of a search (``--after --before --folder --camera --place``), as SQL over
``photos`` (``p``) left-joined to ``photo_metadata`` (``m``; see :class:`retrieval.store.database.PhotoInfo`).

Dates compare the local date and time a photo was taken (``YYYY-MM-DDTHH:MM:SS`` text, sortable);
a photo with no known date never passes a date filter.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, fields

_DAY = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")
_GLOB = set("*?[")
MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def parse_day(text: str, end: bool = False) -> str:
    """``2023``, ``2023-07`` or ``2023-07-14`` -> the first day (``end``: the day after the last day)
    of that year, month or day, as ``YYYY-MM-DD``.

    Raises:
        ValueError: anything else, or an impossible date (one line naming it).
    """
    m = _DAY.match(text.strip())
    if not m:
        raise ValueError(f"{text!r}: not a date (give YYYY, YYYY-MM or YYYY-MM-DD)")
    y, mo, d = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
    try:
        day = dt.date(y, mo, d)
    except ValueError as e:
        raise ValueError(f"{text!r}: not a date ({e})") from None
    if end:
        if m.group(3):
            day += dt.timedelta(days=1)
        elif m.group(2):
            day = dt.date(y + (mo == 12), mo % 12 + 1, 1)
        else:
            day = dt.date(y + 1, 1, 1)
    return day.isoformat()


def like_escape(s: str) -> str:
    """``s`` with LIKE's wildcards (``%``, ``_``) and the escape character (``\\``) escaped."""
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def folder_like(pattern: str) -> str:
    """A LIKE pattern over photo paths for ``--folder PATTERN``: photos in that folder or below it.

    A pattern without ``*``, ``?`` or ``[`` names a folder: an absolute path, ``~/...``, or a folder
    that exists relative to the current one, else any folder of that name (``holidays`` ->
    ``*/holidays``). Glob wildcards: ``*`` any characters (``/`` too), ``?`` one character.
    """
    p = os.path.expanduser(pattern.strip()).rstrip("/") or "/"
    if not _GLOB & set(p):
        if os.path.isabs(p) or os.path.isdir(p):
            return like_escape(os.path.abspath(p).rstrip("/")) + "/%"
        return "%/" + like_escape(p) + "/%"
    out = "".join("%" if c == "*" else "_" if c == "?" else like_escape(c) for c in p)
    if not (os.path.isabs(p) or p.startswith("*")):
        out = "%/" + out
    return out + "/%"


@dataclass
class Filters:
    """What a photo must be to be searched. Every field None: no filter.

    Attributes:
        since: taken on or after this day (``YYYY-MM-DD``).
        until: taken before this day (``YYYY-MM-DD``, exclusive).
        folder: ``--folder`` pattern (:func:`folder_like`).
        camera: words of the camera's make and model (case-insensitive substring).
        place: a place name: city, region, country or ISO country code (case-insensitive, whole name).
        months: taken in one of these months (1-12) of any year ("in July", "in winter").
    """

    since: str | None = None
    until: str | None = None
    folder: str | None = None
    camera: str | None = None
    place: str | None = None
    months: tuple[int, ...] | None = None

    @classmethod
    def from_options(cls, after: str | None = None, before: str | None = None, folder: str | None = None,
                     camera: str | None = None, place: str | None = None) -> "Filters":
        """Filters from the command line's ``--after DATE`` (on or after its first day) and ``--before
        DATE`` (before its first day), ``--folder``, ``--camera``, ``--place``.

        Raises:
            ValueError: a date that is not one, or an empty camera or place.
        """
        for name, v in (("--folder", folder), ("--camera", camera), ("--place", place)):
            if v is not None and not v.strip():
                raise ValueError(f"{name} needs a value")
        return cls(since=parse_day(after) if after else None, until=parse_day(before) if before else None,
                   folder=folder, camera=camera.strip() if camera else None, place=place.strip() if place else None)

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    def merged(self, other: "Filters") -> "Filters":
        """These filters, with ``other``'s set fields where these have none."""
        return Filters(**{f.name: getattr(self, f.name) if getattr(self, f.name) is not None
                          else getattr(other, f.name) for f in fields(self)})

    def sql(self) -> tuple[str, tuple]:
        """(WHERE condition with ``?`` placeholders over ``p`` and ``m``, its parameters)."""
        conds, params = [], []
        if self.since:
            conds.append("m.taken >= ?")
            params.append(self.since)
        if self.until:
            conds.append("m.taken < ?")
            params.append(self.until)
        if self.months:
            conds.append(f"substr(m.taken, 6, 2) IN ({','.join('?' * len(self.months))})")
            params.extend(f"{mo:02d}" for mo in self.months)
        if self.folder:
            conds.append("p.path LIKE ? ESCAPE '\\'")
            params.append(folder_like(self.folder))
        if self.camera:
            conds.append("lower(coalesce(m.camera_make, '') || ' ' || coalesce(m.camera_model, '')) LIKE ? ESCAPE '\\'")
            params.append("%" + like_escape(self.camera.lower()) + "%")
        if self.place:
            conds.append("m.place_key LIKE ? ESCAPE '\\'")
            params.append("%|" + like_escape(self.place.casefold()) + "|%")
        return " AND ".join(conds) or "1 = 1", tuple(params)

    def describe(self) -> str:
        """The filters in words: ``from 2023-01-01 to 2023-12-31 in Norway`` ('' for none)."""
        parts = []
        if self.since or self.until:
            last = (dt.date.fromisoformat(self.until) - dt.timedelta(days=1)).isoformat() if self.until else None
            parts.append(" ".join(([f"from {self.since}"] if self.since else [])
                                  + ([f"to {last}"] if last else [])))
        if self.months:
            parts.append("in " + ", ".join(MONTH_ABBR[mo - 1] for mo in self.months))
        if self.place:
            parts.append(f"in {self.place}")
        if self.camera:
            parts.append(f"with camera {self.camera}")
        if self.folder:
            parts.append(f"in folder {self.folder}")
        return " ".join(parts)
