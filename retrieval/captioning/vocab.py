"""The captioner's words: special tokens, tokenisation of captions and their detokenisation."""
from __future__ import annotations

import re

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|[0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens; punctuation dropped (``"A dog 's ball ."`` -> ``["a", "dog's", "ball"]``).

    Flickr8k writes possessives as separate tokens (``"dog 's"``); they are rejoined.
    """
    return _WORD.findall(text.lower().replace(" '", "'"))


def detokenize(words: list[str]) -> str:
    """Words -> a clean sentence: capitalised, single spaces, one final full stop."""
    out = []
    for w in words:
        if w in SPECIALS:
            continue
        if w == "s" and out:  # a possessive split off by an older tokenizer: "man s" -> "man's"
            out[-1] += "'s"
        else:
            out.append(w)
    s = " ".join(out).strip()
    if not s:
        return ""
    return s[0].upper() + s[1:] + "."
