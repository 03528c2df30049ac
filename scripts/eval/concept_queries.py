"""Short typed queries for the concept-channel evaluation, with the words that make a photo relevant.

Written before any tuning and not changed after. A photo is relevant to a query when at least
``MIN_CAPTIONS`` of its human captions name the query's concept: every group of words of the
query must match in the same caption (a word matches itself and its plural: ``car`` matches
``cars``; a group matches when any of its words or phrases does), so "a red car" needs red and a
car word, not "car" alone.

``QUERIES``: the evaluation set (the 19 queries a new user tried, first, then everyday concepts,
most of them rare in Flickr8k). ``TRAIN_QUERIES``: other queries, only for fitting fusion weights
and the match-score calibration on the held-out part of Flickr8k train (never on the evaluation
galleries).
"""
from __future__ import annotations

import re

MIN_CAPTIONS = 2
#: a query counts on a gallery when it has at least this many relevant photos there
MIN_RELEVANT = 3

CAR = ["car", "cars", "vehicle", "sedan", "suv", "taxi", "jeep", "convertible", "sports car"]
PEOPLE_HUG = ["hug", "hugs", "hugging", "hugged", "embrace", "embraces", "embracing", "embraced"]
MAN = ["man", "men", "guy", "boy", "person", "gentleman"]
CHILD = ["child", "children", "kid", "kids", "boy", "boys", "girl", "girls", "youngster", "youngsters"]
WATER = ["water", "lake", "pool", "river", "ocean", "sea", "pond", "stream", "creek", "surf", "waves"]

#: query -> list of word groups (each group: alternatives; every group must match)
QUERIES: dict[str, list[list[str]]] = {
    # the new user's queries
    "a cat": [["cat", "kitten", "kitty", "tabby"]],
    "a red car": [["red"], CAR],
    "two people hugging": [PEOPLE_HUG],
    "a crowd at a concert": [["crowd", "audience", "concert", "fans"], ["concert", "band", "stage", "show", "performance", "music", "performing"]],
    "a man playing guitar": [MAN, ["guitar", "guitarist"]],
    "children playing football": [CHILD, ["football", "soccer"]],
    "a man on a bicycle": [MAN + ["cyclist", "biker", "bicyclist", "rider"], ["bicycle", "bike", "cyclist", "biker", "bicyclist", "bmx"]],
    "snow": [["snow", "snowy", "snowboarder", "snowboarding", "skier", "skiing", "snowboard"]],
    "sunset": [["sunset", "sunsets", "dusk", "setting sun", "sundown"]],
    "a baby": [["baby", "babies", "infant", "toddler", "newborn"]],
    "food on a table": [["food", "meal", "dinner", "lunch", "breakfast", "pizza", "sandwich", "plate", "dish", "cake", "vegetables", "fruit"], ["table", "tables", "counter", "desk"]],
    "a horse": [["horse", "pony", "horseback", "stallion", "mare", "foal"]],
    "a skateboarder doing a trick": [["skateboarder", "skateboard", "skateboarding", "skater", "skating"], ["trick", "jump", "jumps", "jumping", "air", "flip", "grind", "grinds", "grinding", "ramp", "stunt"]],
    "a surfer riding a wave": [["surfer", "surfing", "surfboard", "surfs"], ["wave", "waves", "surf"]],
    "an old man with a beard": [["old", "elderly", "older", "aged", "gray", "grey", "white haired"], ["beard", "bearded"]],
    "a boat on a lake": [["boat", "canoe", "kayak", "sailboat", "rowboat", "ship", "raft"], ["lake", "water", "river", "pond"]],
    "a little girl in a pink dress": [["girl", "girls"], ["pink"], ["dress", "dresses", "outfit", "gown"]],
    "a city street at night": [["street", "city", "road", "downtown"], ["night", "nighttime", "dark", "lights", "lit"]],
    "a dog on a beach": [["dog", "puppy"], ["beach", "shore", "sand", "ocean"]],
    "a dog jumping into water": [["dog", "puppy"], ["jump", "jumps", "jumping", "leaps", "leaping", "dives", "diving"], WATER],
    "fireworks": [["firework", "fireworks"]],
    # everyday concepts, many of them rare in Flickr8k
    "a giraffe": [["giraffe"]],
    "a pizza": [["pizza"]],
    "a clock": [["clock", "clocks", "clocktower", "clock tower"]],
    "a bedroom": [["bedroom", "bed", "beds"]],
    "a couple kissing": [["kiss", "kisses", "kissing", "kissed"]],
    "someone on the phone": [["phone", "cellphone", "cell phone", "telephone", "smartphone", "mobile"]],
    "a zebra": [["zebra"]],
    "an elephant": [["elephant"]],
    "a kitchen": [["kitchen"]],
    "a bathroom": [["bathroom", "restroom", "toilet", "bathtub", "shower"]],
    "a laptop": [["laptop", "computer", "notebook"]],
    "a bus": [["bus", "buses", "busses"]],
    "a train": [["train", "locomotive", "subway", "tram"]],
    "an airplane": [["airplane", "plane", "jet", "aircraft", "airliner"]],
    "a sandwich": [["sandwich", "burger", "hamburger", "sub", "hot dog"]],
    "a cake": [["cake", "cupcake", "cupcakes"]],
    "a teddy bear": [["teddy", "stuffed animal", "stuffed bear"]],
    "an umbrella": [["umbrella"]],
    "a kite": [["kite"]],
    "a tennis player": [["tennis"]],
    "a baseball game": [["baseball", "batter", "pitcher", "softball"]],
    "sheep in a field": [["sheep", "lamb", "lambs"]],
    "a cow": [["cow", "cattle", "bull", "calf", "oxen", "ox"]],
    "a bird": [["bird", "birds", "seagull", "gull", "pigeon", "duck", "eagle", "parrot", "goose", "geese", "hawk", "owl", "pelican"]],
    "a motorcycle": [["motorcycle", "motorbike", "motorcyclist", "dirt bike", "moped", "scooter"]],
    "a truck": [["truck", "lorry", "pickup"]],
    "a traffic light": [["traffic light", "traffic signal", "stoplight", "stop light"]],
    "a couch in a living room": [["couch", "sofa", "living room"]],
    "a television": [["television", "tv", "monitor", "screen"]],
    "a bowl of fruit": [["fruit", "fruits", "bananas", "apples", "oranges", "banana", "apple", "orange"]],
    "broccoli": [["broccoli"]],
    "a skier": [["skier", "skiing", "skis", "ski"]],
    "a frisbee": [["frisbee"]],
    "a fire hydrant": [["hydrant"]],
    "a stop sign": [["stop sign"]],
    "a refrigerator": [["refrigerator", "fridge"]],
    "a cup of coffee": [["coffee", "cup", "mug", "espresso", "latte"]],
    "a keyboard and a mouse": [["keyboard"]],
    "a bench in a park": [["bench", "benches"]],
    "a sailboat": [["sailboat", "sailing", "sail", "sailboats", "yacht"]],
    "a woman with an umbrella": [["woman", "women", "lady", "girl"], ["umbrella"]],
    "a person skiing down a slope": [["skier", "skiing", "skis", "ski"], ["slope", "hill", "mountain", "down", "snow"]],
    "a vase of flowers": [["vase", "flowers", "bouquet"]],
    "a plate of food": [["plate", "dish", "bowl", "tray"], ["food", "meal", "vegetables", "meat", "rice", "salad", "pizza", "sandwich", "fries", "broccoli", "fruit", "eggs"]],
    "a mountain": [["mountain", "mountains", "mountainside", "cliff", "peak"]],
    "a waterfall": [["waterfall", "falls"]],
    "a climber on a rock": [["climber", "climbing", "climbs", "climb"], ["rock", "rocks", "cliff", "wall", "mountain", "boulder"]],
    "a basketball game": [["basketball"]],
    "a swimming pool": [["pool"]],
    "a bride and groom": [["bride", "wedding", "groom"]],
    "a motorcycle race": [["motorcycle", "motorbike", "dirt bike", "motocross", "motorcyclist"], ["race", "races", "racing", "track", "racer"]],
    "a tent": [["tent", "tents"]],
}

#: queries for fitting fusion weights and the calibration on held-out Flickr8k train photos only
TRAIN_QUERIES: dict[str, list[list[str]]] = {
    "a puppy": [["puppy", "puppies"]],
    "a black dog": [["black"], ["dog", "dogs", "puppy"]],
    "a white dog running": [["white"], ["dog", "dogs"], ["run", "runs", "running"]],
    "a brown dog": [["brown"], ["dog", "dogs"]],
    "two dogs playing": [["dogs"], ["play", "plays", "playing"]],
    "a dog with a ball": [["dog", "dogs"], ["ball"]],
    "a ball": [["ball", "balls"]],
    "a tree": [["tree", "trees"]],
    "a bridge": [["bridge"]],
    "a fountain": [["fountain", "sprinkler"]],
    "a crowd of people": [["crowd", "group", "people"]],
    "a woman in a red shirt": [["woman", "lady", "girl"], ["red"], ["shirt", "top", "jacket", "sweater"]],
    "a man in a hat": [MAN, ["hat", "cap", "helmet"]],
    "a boy swimming": [["boy", "boys", "child", "kid"], ["swim", "swims", "swimming", "pool"]],
    "a motorcyclist": [["motorcycle", "motorbike", "motorcyclist", "dirt bike"]],
    "a rock climber": [["climber", "climbing", "climbs"]],
    "a beach": [["beach", "shore"]],
    "a street": [["street", "road", "sidewalk"]],
    "grass": [["grass", "grassy", "lawn"]],
    "a field": [["field", "meadow"]],
    "the ocean": [["ocean", "sea"]],
    "a playground": [["playground", "slide", "swing", "swings"]],
    "a soccer game": [["soccer", "football"]],
    "a basketball player": [["basketball"]],
    "a bicycle": [["bike", "bicycle", "bmx", "cyclist", "biker"]],
    "a cyclist racing": [["bike", "bicycle", "bmx", "cyclist", "biker"], ["race", "racing", "track"]],
    "a skateboard": [["skateboard", "skateboarder", "skateboarding"]],
    "a snowboarder": [["snowboard", "snowboarder", "snowboarding"]],
    "a swing": [["swing", "swings", "swinging"]],
    "a wall with graffiti": [["graffiti"]],
    "a man with a camera": [["camera", "photograph", "photographer", "photo", "picture"]],
    "a girl with long hair": [["girl", "woman"], ["hair"]],
    "a child on a slide": [["slide", "slides", "sliding"]],
    "a woman with sunglasses": [["sunglasses", "glasses"]],
    "a runner": [["run", "runs", "running", "runner", "jogging", "jogs", "marathon"]],
    "people at a market": [["market", "vendor", "shop", "store"]],
    "a goat": [["goat", "goats"]],
    "a monkey": [["monkey", "ape"]],
    "a lion": [["lion"]],
    "a piano": [["piano", "keyboard"]],
    "a violin": [["violin", "cello"]],
    "a drum": [["drum", "drums", "drummer"]],
    "a microphone": [["microphone", "singing", "singer", "sings"]],
    "a desk with a computer": [["computer", "laptop"]],
    "a wooden fence": [["fence"]],
    "a church": [["church", "cathedral", "chapel"]],
    "a dog in the snow": [["dog", "dogs", "puppy"], ["snow", "snowy"]],
    "a horse race": [["horse", "horses"], ["race", "racing", "jockey", "track"]],
    "a cowboy at a rodeo": [["rodeo", "cowboy", "bull", "bronco"]],
    "a parade": [["parade"]],
    "a wedding": [["wedding", "bride", "groom"]],
    "a pumpkin": [["pumpkin", "pumpkins"]],
    "a shopping cart": [["cart", "shopping"]],
    "a hammock": [["hammock"]],
    "a chess game": [["chess"]],
    "a canoe": [["canoe", "kayak", "kayaker", "kayaking", "canoeing"]],
    "a tractor": [["tractor"]],
    "a helicopter": [["helicopter"]],
    "a pig": [["pig", "pigs", "hog"]],
    "a bear": [["bear", "bears"]],
    "a sword": [["sword", "swords", "fencing"]],
    "a flag": [["flag", "flags"]],
    "a pink balloon": [["balloon", "balloons"]],
    "a sand castle": [["sandcastle", "sand castle"]],
}


def _words(caption: str) -> str:
    return " " + " ".join(re.findall(r"[a-z]+", caption.lower())) + " "


def _has(text: str, word: str) -> bool:
    return any(f" {w} " in text for w in (word, word + "s", word + "es"))


def caption_names(caption: str, groups: list[list[str]]) -> bool:
    """Whether one caption names the concept: every group has a word (or its plural) in it."""
    t = _words(caption)
    return all(any(_has(t, w) for w in g) for g in groups)


def relevant(captions_of_photos: list[list[str]], groups: list[list[str]], min_captions: int = MIN_CAPTIONS):
    """Indices of the photos whose captions name the concept in at least ``min_captions`` of them."""
    return [i for i, caps in enumerate(captions_of_photos)
            if sum(caption_names(c, groups) for c in caps) >= min_captions]


def absent(captions_of_photos: list[list[str]], groups: list[list[str]]) -> bool:
    """True when no caption of any photo names the concept (its subject is absent from the gallery)."""
    return not any(caption_names(c, groups) for caps in captions_of_photos for c in caps)
