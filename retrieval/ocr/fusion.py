"""Fusing the text read in photos (OCR) with the semantic score of a words query.

A photo's fused score is its cosine similarity to the query plus :data:`OCR_WEIGHT` times the
share of the query's words found in its recognised text (a lexical match: the words are found
through SQLite FTS5 or PostgreSQL full-text search, then counted here). This is a weighted
linear combination of a dense and a lexical score, as in hybrid retrieval (e.g. Kuzi et al.,
*Leveraging semantic and lexical matching to improve the recall of document retrieval systems*, 2020).
"""
from __future__ import annotations

import re

#: weight of the share of query words found in a photo's text (text-to-photo cosines are ~0.1-0.35)
OCR_WEIGHT = 0.25
#: weight of that share on the calibrated match probability (0..1) of the fused ranking: a photo whose
#: text holds every word of the query ranks above photos whose match is below 0.5 more than its own
MATCH_WEIGHT = 0.5
#: a query word this long also counts inside a longer word of the text (OCR joins words: "STARBUCKSCOFFEE");
#: shorter words must be whole words ("room" is not found in "bathroom", "pass" not in "password")
MIN_INNER = 5
#: words too common to count as found
STOP_WORDS = frozenset("a an and are as at be by for from in is it of on or the this to with".split())
_WORD = re.compile(r"\w+", re.UNICODE)


def query_words(text: str) -> list[str]:
    """The words of a query that count for a lexical match: lowercase, 3 letters or more, no stop words, once each."""
    out: list[str] = []
    for w in _WORD.findall(text.lower()):
        if len(w) >= 3 and w not in STOP_WORDS and w not in out:
            out.append(w)
    return out


def coverage(words: list[str], text: str) -> float:
    """Share (0..1) of ``words`` (from :func:`query_words`) found in ``text``, any case: as whole words,
    or inside longer words for words of :data:`MIN_INNER` letters or more (OCR often joins neighbouring
    words: "STARBUCKSCOFFEE")."""
    if not words:
        return 0.0
    tokens = set(_WORD.findall(text.lower()))
    return sum(w in tokens or (len(w) >= MIN_INNER and any(w in t for t in tokens)) for w in words) / len(words)


def boosted(score: float, match: float | None, cov: float) -> tuple[float, float | None]:
    """A fused hit's (score, match) raised by the share ``cov`` (0..1) of the query's words found in the
    photo's text: ``score + OCR_WEIGHT * cov`` and ``min(1, match + MATCH_WEIGHT * cov)`` (None stays None)."""
    return score + OCR_WEIGHT * cov, None if match is None else min(1.0, match + MATCH_WEIGHT * cov)


def fused_scores(semantic: dict[int, float], matches: list[tuple[int, str]], words: list[str],
                 weight: float = OCR_WEIGHT) -> dict[int, tuple[float, float]]:
    """{photo id: (fused score, coverage)} over the photos in ``semantic`` ({id: cosine}, which must hold
    every id of ``matches`` too) given the lexical ``matches`` ((id, recognised text))."""
    cov = {pid: coverage(words, text) for pid, text in matches}
    return {pid: (cos + weight * cov.get(pid, 0.0), cov.get(pid, 0.0)) for pid, cos in semantic.items()}


__all__ = ["MATCH_WEIGHT", "MIN_INNER", "OCR_WEIGHT", "STOP_WORDS", "boosted", "coverage", "fused_scores", "query_words"]
