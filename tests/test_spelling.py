"""Typo tolerance: unknown words corrected, known ones (rare dictionary words, words of the index's
texts, names, concept and place names) never."""
from __future__ import annotations

import json

from conftest import run_retr

from retrieval.query.spelling import correct_query
from retrieval.query.understand import understand


def test_typos_are_corrected():
    s = correct_query("a dog on the beahc at sunsett")
    assert s.text == "a dog on the beach at sunset" and s.changed == {"beahc": "beach", "sunsett": "sunset"}
    assert correct_query("horsse, running!").text == "horse, running!"


def test_known_words_are_never_corrected():
    for q in ("an axolotl and a dachshund", "a samoyed on a kayak", "Zwieback near Trondheim", "a 4x4 car"):
        assert correct_query(q).changed == {}, q  # rare dictionary words, capitalised names, digits
    assert correct_query("a beachh kite").changed == {"beachh": "beach"}  # in no vocabulary ...
    assert correct_query("a beachh kite", known=[lambda w: w == "beachh"]).changed == {}  # ... but in the index
    assert correct_query("a beahc", vocabulary=lambda w: w == "beahc").changed == {}


def test_caption_corpus_words_are_never_corrected():
    """Rare words people wrote describing photos, absent from the dictionary, are kept; a corpus typo
    filtered out of the word list is still corrected."""
    from retrieval.query.spelling import correction, corpus_words, dictionary

    words = corpus_words()
    assert 10_000 < len(words) < 20_000 and "travelator" in words and "climing" not in words
    for w in ("travelator", "shorebreak", "headshot"):  # each twice or so in the corpus, none in the dictionary
        assert w not in dictionary() and correction(w, dictionary()) not in (None, w)
        assert correct_query(f"a {w} by the sea").changed == {}, w
    assert correct_query("a child climing a tree").changed == {"climing": "climbing"}


def test_understood_line_and_literal():
    u = understand("a dog on the beahc")
    assert u.line() == "searched for: a dog on the beach"
    assert understand("a dog on the beahc", literal=True).text == "a dog on the beahc"
    u = understand("a dog on the beahc 2023")
    assert u.line() == 'searched "a dog on the beach" from 2023-01-01 to 2023-12-31'
    assert understand("a quokka", in_texts=lambda w: w == "quokka").corrected is None


def test_cli_corrects_but_keeps_the_index_own_words(demo_index):
    p = run_retr("search", "horsses in a feild", "--index", demo_index, "-k", "1", check=0)
    assert "searched for: horses in a field" in p.stderr and p.stdout.strip().endswith("horses.jpg")
    p = run_retr("search", "a colorful kite", "--index", demo_index, "--json", check=0)
    assert "searched" not in p.stderr and json.loads(p.stdout)  # 'colorful': in the demo captions and the caption corpus
