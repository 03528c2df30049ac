"""Edge cases of query spelling: a very long unknown word (a pasted hash, words run together) is left
alone instead of generating its distance-2 edits (quadratic in its length: minutes for 600 letters,
hanging a ``retr serve`` worker); punctuation and non-ASCII words are kept as typed."""
from __future__ import annotations

import pytest


@pytest.fixture
def counted_edits(monkeypatch):
    from retrieval.query import spelling

    calls = []
    real = spelling.edits1

    def edits1(word):
        calls.append(word)
        return real(word)

    monkeypatch.setattr(spelling, "edits1", edits1)
    return calls


def test_a_very_long_unknown_word_is_left_alone(counted_edits):
    from retrieval.query.spelling import correct_query

    long_word = "x" * 600
    fixed = correct_query(f"dog {long_word} beach")
    assert fixed.text == f"dog {long_word} beach" and fixed.changed == {}
    assert counted_edits == []


def test_many_unknown_words_are_not_all_corrected(counted_edits):
    from retrieval.query.spelling import MAX_CORRECTED, correct_query

    words = [f"qzx{c}" for c in "abcdefghijkl"]
    fixed = correct_query(" ".join(["qzxa"] * 5 + words))
    assert len(set(counted_edits) & set(words)) == MAX_CORRECTED < len(words)
    assert fixed.text.split()[5 + MAX_CORRECTED:] == words[MAX_CORRECTED:]  # the others kept as typed


def test_punctuation_and_unicode_words_are_kept_or_fixed_in_place():
    from retrieval.query.spelling import correct_query

    assert correct_query("a dgo, runing! (biycle)").text == "a dgo, running! (bicycle)"
    assert correct_query("naïve café 🐶").changed == {}
