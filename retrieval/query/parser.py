"""Words of a query that are metadata: dates and places become filters, the rest is searched by meaning.

``"beach 2023"`` -> ``beach`` taken in 2023; ``"dogs in July 2019"``, ``"snow in Norway"``,
``"sunset last summer"``, ``"in spring 2021"``. A small table-driven parser (no ``dateparser``
import: the search path stays fast):

- a year (1826-2099) anywhere; ``from 2019 to 2021``; ``last year``, ``this year``;
- a month or season with a year (``July 2019``, ``winter 2021`` = Dec 2021 - Feb 2022), or after
  ``last``/``this`` (the most recent one), or after ``in``/``during``/``since`` (any year's; ``in
  May``). Without that context a month stays a word: "dogs may run", "a march";
- a place only after ``in``, ``at``, ``from`` or ``near``, only when photos of the index were taken
  there (a city, region, country or country code of theirs), and never when the word also names a
  concept (Chihuahua, Newfoundland, Labrador and Cardigan are dogs).

Seasons are the northern hemisphere's meteorological ones.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.query.filters import Filters

MONTHS = {m: i + 1 for i, m in enumerate(("january", "february", "march", "april", "may", "june", "july",
                                          "august", "september", "october", "november", "december"))}
MONTHS.update({m[:3]: i for m, i in list(MONTHS.items()) if m != "may"} | {"sept": 9})
#: Season -> its months, in order (winter runs over the new year).
SEASONS = {"spring": (3, 4, 5), "summer": (6, 7, 8), "autumn": (9, 10, 11), "fall": (9, 10, 11),
           "winter": (12, 1, 2)}
#: Words that make a following month or season a date ("in May").
DATE_PREPS = {"in", "during", "since", "from", "of"}
#: Words that make the following words a place ("at Oslo").
PLACE_PREPS = {"in", "at", "from", "near"}
RELATIVE = {"last", "this", "past"}
#: Concept names that are also places: never place filters (the ImageNet class names are added when shipped).
CONCEPT_PLACES = {"chihuahua", "newfoundland", "labrador", "cardigan", "pembroke", "maltese", "pomeranian",
                  "leonberg", "brittany", "boston", "norwich", "norfolk", "yorkshire", "afghan", "siberian",
                  "eskimo", "egyptian", "persian", "siamese", "madagascar", "irish", "english", "scotch",
                  "tibetan", "border", "dutch", "french", "arabian", "indian", "african", "windsor", "china",
                  "shetland", "bernese", "saint bernard", "great dane", "lakeland", "sealyham", "dandie dinmont",
                  "bedlington", "kerry", "weimaraner", "rottweiler", "appenzeller", "entlebucher", "samoyed",
                  "pekinese", "shih-tzu", "japanese", "mexican", "american", "german", "welsh", "walker",
                  "irish wolfhound", "scottish deerhound", "granny smith", "seashore", "lakeside", "valley",
                  "alp", "cliff", "volcano", "promontory", "sandbar", "geyser"}
_YEAR = re.compile(r"^(18[3-9]\d|19\d\d|20\d\d)$")
_EDGE = re.compile(r"^[\"'(\[]+|[\"'.,;:!?)\]]+$")


@dataclass
class ParsedQuery:
    """A query split into words searched by meaning (``text``) and ``filters``; ``understood``
    lists what was taken out (``["2023"]``); ``text`` is the query unchanged when nothing was."""

    text: str
    filters: Filters = field(default_factory=Filters)
    understood: list[str] = field(default_factory=list)


def concept_words() -> set[str]:
    """Concept names that must not become places: :data:`CONCEPT_PLACES` and, when the concept
    channel's ImageNet class table is installed, every word of its class names, case-folded."""
    words = set(CONCEPT_PLACES)
    table = Path(__file__).resolve().parents[1] / "concepts" / "data" / "imagenet_classes.tsv"
    try:
        lines = table.read_text(encoding="utf-8").splitlines()[1:]
    except OSError:
        return words
    for line in lines:
        cols = line.split("\t")
        for lemma in cols[2].split(",") if len(cols) > 2 else ():
            lemma = lemma.strip().casefold()
            words.add(lemma)
            words.add(lemma.split(" ")[0])
    return words


def _year_range(y: int) -> tuple[str, str]:
    return f"{y:04d}-01-01", f"{y + 1:04d}-01-01"


def _month_range(y: int, m: int) -> tuple[str, str]:
    return f"{y:04d}-{m:02d}-01", (f"{y + 1:04d}-01-01" if m == 12 else f"{y:04d}-{m + 1:02d}-01")


def _season_range(y: int, season: str) -> tuple[str, str]:
    ms = SEASONS[season]
    return f"{y:04d}-{ms[0]:02d}-01", _month_range(y + 1 if ms[0] == 12 else y, ms[-1])[1]


def _last(name: str, today: dt.date, this: bool) -> tuple[str, str] | None:
    """The range of ``last``/``this`` + year, month name or season, relative to ``today``."""
    if name == "year":
        return _year_range(today.year if this else today.year - 1)
    if name == "month":
        y, m = (today.year, today.month) if this else ((today.year - 1, 12) if today.month == 1
                                                        else (today.year, today.month - 1))
        return _month_range(y, m)
    if name in MONTHS:
        m = MONTHS[name]
        y = today.year if (this or m < today.month) else today.year - 1
        return _month_range(y, m)
    if name in SEASONS:
        if this:  # this year's (a winter belongs to the year of its December)
            return _season_range(today.year - (name == "winter" and today.month < 12), name)
        for y in (today.year, today.year - 1, today.year - 2):  # the last one that has ended
            since, until = _season_range(y, name)
            if until <= today.isoformat():
                return since, until
    return None


def _date_at(words: list[str], i: int, prep: str | None, today: dt.date):
    """(words used, (since, until) or None, months or None) of a date starting at ``words[i]``; None if none."""
    w = words[i]
    nxt = words[i + 1] if i + 1 < len(words) else ""
    if w in ("from", "between") and _YEAR.match(nxt) and i + 3 < len(words) and words[i + 2] in ("to", "and", "-") \
            and _YEAR.match(words[i + 3]) and int(words[i + 3]) >= int(nxt):
        return 4, (_year_range(int(nxt))[0], _year_range(int(words[i + 3]))[1]), None
    if _YEAR.match(w):
        return 1, _year_range(int(w)), None
    if w in RELATIVE and (nxt in MONTHS or nxt in SEASONS or nxt in ("year", "month")):
        rng = _last(nxt, today, this=w == "this")
        return (2, rng, None) if rng else None
    if (w in MONTHS or w in SEASONS) and _YEAR.match(nxt):
        y = int(nxt)
        return 2, (_month_range(y, MONTHS[w]) if w in MONTHS else _season_range(y, w)), None
    if (w in MONTHS or w in SEASONS) and prep in DATE_PREPS:
        return 1, None, (MONTHS[w],) if w in MONTHS else SEASONS[w]
    return None


def _place_at(words: list[str], i: int, places: set[str], concepts: set[str]) -> int:
    """How many words from ``words[i]`` name a known place (longest first, up to 3); 0 if none."""
    for n in (3, 2, 1):
        name = " ".join(words[i : i + n])
        if i + n <= len(words) and name in places and name not in concepts and words[i] not in concepts:
            return n
    return 0


def parse_query(query: str, places: set[str] | frozenset = frozenset(), today: dt.date | None = None,
                concepts: set[str] | None = None) -> ParsedQuery:
    """Split ``query`` into words searched by meaning and metadata filters.

    Args:
        query: the words typed.
        places: known place names, case-folded (:meth:`retrieval.store.queries.Queries.place_names`).
        today: the date ``last``/``this`` count from (default: today).
        concepts: words never taken as places (default: :func:`concept_words`, read only when needed).

    Returns:
        a :class:`ParsedQuery`. The first date found is the date filter; when only filters would be
        left (``"2023"``), the query is searched unchanged.
    """
    today = today or dt.date.today()
    raw = query.split()
    words = [_EDGE.sub("", w).casefold() for w in raw]
    out, understood, f = [], [], Filters()
    i = 0
    while i < len(words):
        prep = words[i] if words[i] in DATE_PREPS | PLACE_PREPS and i + 1 < len(words) else None
        d, j = (_date_at(words, i, None, today), i) if words[i] in ("from", "between") else (None, i)
        if d is None and prep:
            d, j = _date_at(words, i + 1, prep, today), i + 1
        if d is None:
            d, j = _date_at(words, i, None, today), i
        if d and not (f.since or f.months):
            n, rng, months = d
            f.since, f.until = rng if rng else (None, None)
            f.months = months
            understood.append(" ".join(raw[i : j + n]))
            i = j + n
            continue
        if prep in PLACE_PREPS and places and f.place is None:
            n = _place_at(words, i + 1, places, concepts if concepts is not None else (concepts := concept_words()))
            if n:
                f.place = " ".join(_EDGE.sub("", w) for w in raw[i + 1 : i + 1 + n])
                understood.append(" ".join(raw[i : i + 1 + n]))
                i += 1 + n
                continue
        out.append(raw[i])
        i += 1
    text = " ".join(out)
    if not understood or not text.strip():
        return ParsedQuery(query)
    return ParsedQuery(text, f, understood)
