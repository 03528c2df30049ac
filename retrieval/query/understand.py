"""What ``retr search`` and ``/api/search`` understood of a query: the words searched by meaning,
the filters (given, and parsed out of the words by :mod:`retrieval.query.parser`), and the
one line saying so (``searched "beach" from 2023-01-01 to 2023-12-31``)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from retrieval.query.filters import Filters
from retrieval.query.parser import PLACE_PREPS, concept_words, parse_query


@dataclass
class Understood:
    """``text``: what is searched by meaning; ``filters``: given ones merged with parsed ones (given
    win); ``parsed``: whether words were taken out of the query or corrected; ``corrected``: the
    spelling-corrected words, or None."""

    text: str
    filters: Filters = field(default_factory=Filters)
    parsed: bool = False
    corrected: str | None = None

    def line(self) -> str:
        """``searched "beach" from 2023-01-01 to 2023-12-31`` (what is searched, and the filters), or
        ``searched for: a dog on the beach`` when words were only corrected."""
        where = self.filters.describe()
        if self.corrected and not where:
            return f"searched for: {self.text}"
        return f'searched "{self.text}"' + (f" {where}" if where else "")


def understand(query: str, given: Filters | None = None, literal: bool = False,
               places: Callable[[], set[str]] | None = None, files: bool = True,
               vocabulary: Callable[[str], bool] | None = None,
               in_texts: Callable[[str], bool] | None = None, spelling: bool = True) -> Understood:
    """Parse dates and places out of a words query (unless ``literal``, or the query names a file).

    Args:
        query: the words (or a photo path, left alone).
        given: filters from options (``--after`` ...), which win over parsed ones.
        literal: search the words as they are.
        places: returns the index's place names, case-folded; called only when the query has
            a word that may introduce a place (in, at, from, near).
        files: a query naming an existing file is a photo query, left alone (False: always words).
        vocabulary, in_texts: ``(word) -> bool``: the text encoder's word list, and whether the index's
            texts hold the word; with the concept and place names they keep a word from being
            corrected (:func:`retrieval.query.spelling.correct_query`; ``spelling=False``: no correction).
    """
    given = given or Filters()
    if literal or "\n" in query or len(query) >= 4096 or (files and os.path.exists(query)):
        return Understood(query, given)
    words = {w.casefold() for w in query.split()}
    known = places() if places and words & PLACE_PREPS else set()
    p = parse_query(query, known)
    u = Understood(p.text, given.merged(p.filters), parsed=bool(p.understood))
    if spelling:
        from retrieval.query.spelling import correct_query

        place_names = lazy_set(lambda: known or (places() if places else set()))
        concepts = lazy_set(concept_words)
        fixed = correct_query(u.text, vocabulary, [lambda w: w in concepts(), lambda w: w in place_names(),
                                                   in_texts or (lambda w: False)])
        if fixed.changed:
            u.text, u.corrected, u.parsed = fixed.text, fixed.text, True
    return u


def lazy_set(make: Callable[[], set[str]]) -> Callable[[], set[str]]:
    """A function returning ``make()``, computed on the first call only."""
    cache: list = []

    def get() -> set[str]:
        if not cache:
            cache.append(make())
        return cache[0]

    return get
