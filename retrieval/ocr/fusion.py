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
    """Share (0..1) of ``words`` (from :func:`query_words`) found in ``text``, any case, also inside longer
    words (OCR often joins neighbouring words: "STARBUCKSCOFFEE")."""
    if not words:
        return 0.0
    low = text.lower()
    return sum(w in low for w in words) / len(words)


def fused_scores(semantic: dict[int, float], matches: list[tuple[int, str]], words: list[str],
                 weight: float = OCR_WEIGHT) -> dict[int, tuple[float, float]]:
    """{photo id: (fused score, coverage)} over the photos in ``semantic`` ({id: cosine}, which must hold
    every id of ``matches`` too) given the lexical ``matches`` ((id, recognised text))."""
    cov = {pid: coverage(words, text) for pid, text in matches}
    return {pid: (cos + weight * cov.get(pid, 0.0), cov.get(pid, 0.0)) for pid, cos in semantic.items()}


__all__ = ["OCR_WEIGHT", "STOP_WORDS", "coverage", "fused_scores", "query_words"]
