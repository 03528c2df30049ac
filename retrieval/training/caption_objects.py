"""Objects named in captions: the COCO classes a caption mentions, the object-mention rate and CHAIR.

A caption names a COCO class (Lin et al. 2014) when it holds one of the class's words or
synonyms, singular or plural (a synonym table in the spirit of Rohrbach et al. 2018,
"Object Hallucination in Image Captioning", built for this project, smaller than theirs).
Two-word names ("hot dog", "teddy bear", "stop sign") are matched before single words, so
"hot dog" is food, not an animal. Evaluation only: no part of the product reads this module.
"""
from __future__ import annotations

from functools import lru_cache

from retrieval.captioning.vocab import tokenize

#: COCO's 80 object classes -> the words that name them (singular; plurals are derived).
COCO_SYNONYMS: dict[str, tuple[str, ...]] = {
    "person": ("person", "man", "woman", "men", "women", "people", "boy", "girl", "child", "children", "kid",
               "baby", "toddler", "player", "guy", "lady", "skier", "surfer", "skateboarder", "snowboarder",
               "rider", "biker", "cyclist", "adult", "teenager", "teen", "gentleman", "chef", "cook", "officer",
               "policeman", "worker", "pitcher", "batter", "catcher", "tourist", "pedestrian", "crowd", "family",
               "couple", "mother", "father", "son", "daughter", "someone", "athlete", "runner", "climber",
               "swimmer", "dancer", "soldier", "student", "infant", "youngster", "individual", "spectator"),
    "bicycle": ("bicycle", "bike", "cycle"), "car": ("car", "automobile", "taxi", "cab", "suv", "sedan"),
    "motorcycle": ("motorcycle", "motorbike", "scooter", "moped", "dirt bike"), "airplane": ("airplane", "plane", "jet", "aircraft", "airliner"),
    "bus": ("bus",), "train": ("train", "locomotive", "tram", "subway"), "truck": ("truck", "pickup", "lorry"),
    "boat": ("boat", "ship", "canoe", "kayak", "sailboat", "yacht", "ferry", "raft"),
    "traffic light": ("traffic light", "stoplight", "traffic signal"), "fire hydrant": ("fire hydrant", "hydrant"),
    "stop sign": ("stop sign",), "parking meter": ("parking meter", "meter"), "bench": ("bench",),
    "bird": ("bird", "pigeon", "seagull", "gull", "duck", "goose", "parrot", "eagle", "swan", "owl", "chicken"),
    "cat": ("cat", "kitten", "kitty"), "dog": ("dog", "puppy", "pup", "terrier", "poodle", "retriever", "labrador"),
    "horse": ("horse", "pony", "foal", "stallion"), "sheep": ("sheep", "lamb", "ram"),
    "cow": ("cow", "cattle", "bull", "calf", "ox", "oxen"), "elephant": ("elephant",), "bear": ("bear", "grizzly"),
    "zebra": ("zebra",), "giraffe": ("giraffe",), "backpack": ("backpack", "rucksack"),
    "umbrella": ("umbrella", "parasol"), "handbag": ("handbag", "purse"), "tie": ("tie", "necktie"),
    "suitcase": ("suitcase", "luggage", "baggage"), "frisbee": ("frisbee",), "skis": ("ski", "skis"),
    "snowboard": ("snowboard",), "sports ball": ("ball", "football", "soccer ball", "baseball", "basketball", "tennis ball", "volleyball"),
    "kite": ("kite",), "baseball bat": ("baseball bat", "bat"), "baseball glove": ("baseball glove", "glove", "mitt"),
    "skateboard": ("skateboard",), "surfboard": ("surfboard", "surf board"), "tennis racket": ("racket", "racquet"),
    "bottle": ("bottle",), "wine glass": ("wine glass",), "cup": ("cup", "mug"), "fork": ("fork",),
    "knife": ("knife", "knives"), "spoon": ("spoon",), "bowl": ("bowl",), "banana": ("banana",), "apple": ("apple",),
    "sandwich": ("sandwich", "burger", "hamburger", "sub"), "orange": ("orange",), "broccoli": ("broccoli",),
    "carrot": ("carrot",), "hot dog": ("hot dog", "hotdog"), "pizza": ("pizza",), "donut": ("donut", "doughnut"),
    "cake": ("cake", "cupcake"), "chair": ("chair", "stool"), "couch": ("couch", "sofa"),
    "potted plant": ("potted plant", "houseplant", "plant"), "bed": ("bed",), "dining table": ("table", "dining table", "desk"),
    "toilet": ("toilet",), "tv": ("tv", "television", "tvs"), "laptop": ("laptop", "computer", "notebook"),
    "mouse": ("computer mouse",), "remote": ("remote", "controller", "remote control"), "keyboard": ("keyboard",),
    "cell phone": ("phone", "cellphone", "cell phone", "smartphone", "telephone"), "microwave": ("microwave",),
    "oven": ("oven", "stove"), "toaster": ("toaster",), "sink": ("sink",), "refrigerator": ("refrigerator", "fridge"),
    "book": ("book",), "clock": ("clock",), "vase": ("vase",), "scissors": ("scissors",),
    "teddy bear": ("teddy bear", "teddy", "stuffed animal"), "hair drier": ("hair drier", "hair dryer", "hairdryer"),
    "toothbrush": ("toothbrush",),
}
_IRREGULAR = {"men": "man", "women": "woman", "people": "person", "children": "child", "knives": "knife",
              "oxen": "ox", "geese": "goose", "mice": "mouse", "skis": "ski", "scissors": "scissors",
              "buses": "bus", "glasses": "glass", "benches": "bench", "sandwiches": "sandwich",
              "couches": "couch", "boxes": "box", "dishes": "dish", "brushes": "brush", "teeth": "tooth",
              "puppies": "puppy", "ponies": "pony", "cherries": "cherry", "calves": "calf", "bus": "bus"}


def singular(word: str) -> str:
    """A plural noun's singular (rules plus a short irregular table): ``"horses"`` -> ``"horse"``."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


@lru_cache(maxsize=1)
def _phrase_table() -> dict[tuple[str, ...], str]:
    table = {}
    for cls, names in COCO_SYNONYMS.items():
        for n in names:
            table[tuple(singular(w) for w in n.split())] = cls
    return table


def caption_objects(caption: str) -> set[str]:
    """The COCO classes a caption names.

    Args:
        caption: any English sentence.

    Returns:
        set of class names (keys of :data:`COCO_SYNONYMS`); two-word names win over their words
        ("hot dog" -> {"hot dog"}, not "dog").
    """
    words = [singular(w) for w in tokenize(caption)]
    table, found, i = _phrase_table(), set(), 0
    while i < len(words):
        if i + 1 < len(words) and (words[i], words[i + 1]) in table:
            found.add(table[(words[i], words[i + 1])])
            i += 2
            continue
        if (words[i],) in table:
            found.add(table[(words[i],)])
        i += 1
    return found


def salient_objects(references: list[str], min_captions: int = 3) -> set[str]:
    """Classes named by at least ``min_captions`` of a photo's human captions (the photo's salient objects)."""
    counts: dict[str, int] = {}
    for r in references:
        for c in caption_objects(r):
            counts[c] = counts.get(c, 0) + 1
    return {c for c, n in counts.items() if n >= min_captions}


def object_scores(refs: dict, hyps: dict, min_captions: int = 3) -> dict:
    """Object-mention rate and CHAIR (Rohrbach et al. 2018) of one caption a photo.

    Args:
        refs: ``{key: [human caption, ...]}``; hyps: ``{key: generated caption}``, same keys.
        min_captions: human captions that must name a class for it to count as salient.

    Returns:
        ``mention``: among (photo, class) pairs whose class is salient (named by >= ``min_captions``
        references), the share whose generated caption names it (a synonym counts);
        ``salient_pairs``: their number; ``mention_non_person``: the same without the class person; ``CHAIR-i``: mentioned objects that no reference of the
        photo names / all mentioned objects; ``CHAIR-s``: captions with at least one such object /
        all captions; ``objects_per_caption``: mentioned objects a caption. Fractions in [0, 1].
    """
    hit = pairs = mentioned = halluc = bad_caps = hit_np = pairs_np = 0
    for k, rs in refs.items():
        named = caption_objects(hyps[k])
        truth = set().union(*(caption_objects(r) for r in rs)) if rs else set()
        sal = salient_objects(rs, min_captions)
        pairs += len(sal)
        hit += len(sal & named)
        pairs_np += len(sal - {"person"})
        hit_np += len((sal & named) - {"person"})
        mentioned += len(named)
        wrong = named - truth
        halluc += len(wrong)
        bad_caps += bool(wrong)
    n = max(1, len(refs))
    return {"mention": hit / max(1, pairs), "salient_pairs": pairs, "mention_non_person": hit_np / max(1, pairs_np), "CHAIR-i": halluc / max(1, mentioned),
            "CHAIR-s": bad_caps / n, "objects_per_caption": mentioned / n}
