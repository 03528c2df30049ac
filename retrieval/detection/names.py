"""Everyday names of the 80 COCO classes, for matching queries to detected objects.

Each class (in the network's output order, :data:`retrieval.detection.classes.COCO_CLASSES`) has a
display name and the words people use for it in captions and queries (written for retr from the
COCO category names of Lin et al. 2014, with common synonyms); plurals are added by
:func:`plural`.
"""
from __future__ import annotations

from retrieval.detection.classes import COCO_CLASSES

#: darknet class name -> (display name, other names)
_NAMES = {
    "person": ("person", ("man", "woman", "boy", "girl", "child", "kid", "player", "guy", "lady", "baby")),
    "bicycle": ("bicycle", ("bike", "cyclist")), "car": ("car", ("automobile", "taxi")),
    "motorbike": ("motorcycle", ("motorbike", "dirt bike", "scooter")), "aeroplane": ("airplane", ("plane", "jet", "aircraft")),
    "bus": ("bus", ()), "train": ("train", ("locomotive",)), "truck": ("truck", ("lorry", "pickup")),
    "boat": ("boat", ("ship", "canoe", "kayak", "sailboat")), "traffic light": ("traffic light", ("stoplight",)),
    "fire hydrant": ("fire hydrant", ("hydrant",)), "stop sign": ("stop sign", ()),
    "parking meter": ("parking meter", ()), "bench": ("bench", ()), "bird": ("bird", ("seagull", "pigeon", "duck")),
    "cat": ("cat", ("kitten", "kitty")), "dog": ("dog", ("puppy",)), "horse": ("horse", ("pony",)),
    "sheep": ("sheep", ("lamb",)), "cow": ("cow", ("cattle", "bull", "calf")), "elephant": ("elephant", ()),
    "bear": ("bear", ()), "zebra": ("zebra", ()), "giraffe": ("giraffe", ()), "backpack": ("backpack", ()),
    "umbrella": ("umbrella", ()), "handbag": ("handbag", ("purse", "bag")), "tie": ("tie", ("necktie",)),
    "suitcase": ("suitcase", ("luggage",)), "frisbee": ("frisbee", ()), "skis": ("skis", ("ski", "skier")),
    "snowboard": ("snowboard", ("snowboarder",)), "sports ball": ("ball", ("football", "soccer ball", "tennis ball")),
    "kite": ("kite", ()), "baseball bat": ("baseball bat", ("bat",)), "baseball glove": ("baseball glove", ("mitt",)),
    "skateboard": ("skateboard", ("skateboarder",)), "surfboard": ("surfboard", ("surfer",)),
    "tennis racket": ("tennis racket", ("racket", "racquet")), "bottle": ("bottle", ()),
    "wine glass": ("wine glass", ()), "cup": ("cup", ("mug", "coffee")), "fork": ("fork", ()), "knife": ("knife", ()),
    "spoon": ("spoon", ()), "bowl": ("bowl", ()), "banana": ("banana", ()), "apple": ("apple", ()),
    "sandwich": ("sandwich", ("burger",)), "orange": ("orange", ()), "broccoli": ("broccoli", ()),
    "carrot": ("carrot", ()), "hot dog": ("hot dog", ()), "pizza": ("pizza", ()), "donut": ("donut", ("doughnut",)),
    "cake": ("cake", ("cupcake",)), "chair": ("chair", ()), "sofa": ("couch", ("sofa",)),
    "pottedplant": ("potted plant", ("houseplant", "plant")), "bed": ("bed", ("bedroom",)),
    "diningtable": ("dining table", ("table",)), "toilet": ("toilet", ("bathroom",)),
    "tvmonitor": ("television", ("tv", "monitor", "screen")), "laptop": ("laptop", ("computer",)),
    "mouse": ("computer mouse", ()), "remote": ("remote control", ("remote",)), "keyboard": ("keyboard", ()),
    "cell phone": ("cell phone", ("phone", "cellphone", "smartphone", "mobile phone")),
    "microwave": ("microwave", ()), "oven": ("oven", ("stove",)), "toaster": ("toaster", ()), "sink": ("sink", ()),
    "refrigerator": ("refrigerator", ("fridge",)), "book": ("book", ()), "clock": ("clock", ()),
    "vase": ("vase", ()), "scissors": ("scissors", ()), "teddy bear": ("teddy bear", ("stuffed animal",)),
    "hair drier": ("hair dryer", ("hair drier", "blow dryer")), "toothbrush": ("toothbrush", ()),
}

_IRREGULAR = {"person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice",
              "knife": "knives", "sheep": "sheep", "skis": "skis", "scissors": "scissors", "people": "people",
              "men": "men", "women": "women", "children": "children", "luggage": "luggage", "cattle": "cattle",
              "broccoli": "broccoli", "coffee": "coffee", "books": "books", "calf": "calves",
              "aircraft": "aircraft"}


def plural(name: str) -> str:
    """English plural of a (possibly multi-word) name: its last word's plural."""
    head, _, last = name.rpartition(" ")
    if last in _IRREGULAR:
        p = _IRREGULAR[last]
    elif last.endswith(("s", "x", "ch", "sh")) or last in ("tomato", "potato"):
        p = last + "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        p = last[:-1] + "ies"
    else:
        p = last + "s"
    return f"{head} {p}" if head else p


def display_name(index: int) -> str:
    """The everyday name of COCO class ``index`` ("motorcycle", not darknet's "motorbike")."""
    return _NAMES[COCO_CLASSES[index]][0]


def name_forms(index: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(singular names, plural names) of COCO class ``index``, display name first."""
    main, other = _NAMES[COCO_CLASSES[index]]
    names = (main, *other)
    return names, tuple(dict.fromkeys(plural(n) for n in names))


def class_names(index: int) -> tuple[str, ...]:
    """Every name of COCO class ``index``: display name first, then synonyms, then their plurals."""
    one, many = name_forms(index)
    return tuple(dict.fromkeys(one + many))
