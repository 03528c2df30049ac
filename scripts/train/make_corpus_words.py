"""Write ``retrieval/query/data/corpus_words.txt``: the words of the caption corpus that typo
correction must never "correct". Run once; the output is committed (words only, no captions).

Source: the caption corpus ``captions/corpus.tsv.gz`` of the shared data folder (225,472 English
captions of Flickr30k, Flickr8k and COCO; see ``retrieval/query/data/README.md``). Words are the
captioner's tokens (lower-case letters), at least :data:`MIN_LETTERS` letters (shorter words are
never corrected). A word is kept when the corpus has it at least :data:`MIN_COUNT` times, except a
typo: a word one edit away from a word the corpus has far more often, :data:`TYPO_RATIO` times as
often for a word seen fewer than :data:`RARE` times ("climing", "neclace"), :data:`COMMON_TYPO_RATIO`
times for one seen fewer than :data:`COMMON` times ("feild" 7 times, "field" 5,312).

Usage: python scripts/train/make_corpus_words.py [CORPUS_TSV_GZ] [OUT_TXT]
"""
import collections
import gzip
import re
import sys
from pathlib import Path

from retrieval.query.spelling import MIN_LENGTH, edits1

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "data" / "captions" / "corpus.tsv.gz"
OUT = ROOT / "retrieval" / "query" / "data" / "corpus_words.txt"
MIN_LETTERS = MIN_LENGTH
MIN_COUNT = 2
RARE = 5
TYPO_RATIO = 20
COMMON = 10
COMMON_TYPO_RATIO = 200
WORD = re.compile(r"[a-z]+")


def count_words(corpus: Path) -> collections.Counter:
    """Word -> number of occurrences in the captions (third column) of the corpus."""
    counts = collections.Counter()
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            counts.update(WORD.findall(line.rstrip("\n").split("\t")[2].lower()))
    return counts


def is_typo(word: str, n: int, counts: collections.Counter) -> bool:
    """A rare word one edit away from a far more frequent corpus word."""
    ratio = TYPO_RATIO if n < RARE else COMMON_TYPO_RATIO if n < COMMON else None
    return ratio is not None and any(counts.get(v, 0) >= ratio * n for v in edits1(word))


def corpus_words(counts: collections.Counter) -> list[str]:
    """The kept words, sorted."""
    return sorted(w for w, n in counts.items()
                  if n >= MIN_COUNT and len(w) >= MIN_LETTERS and not is_typo(w, n, counts))


def main(argv: list[str]) -> None:
    corpus = Path(argv[0]) if argv else CORPUS
    out = Path(argv[1]) if len(argv) > 1 else OUT
    counts = count_words(corpus)
    words = corpus_words(counts)
    out.write_text("\n".join(words) + "\n", encoding="utf-8")
    print(f"{len(counts)} distinct words in {corpus.name}; {len(words)} kept -> {out} "
          f"({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main(sys.argv[1:])
