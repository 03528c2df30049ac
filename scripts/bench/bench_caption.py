"""`retr caption` speed after start-up: the photo's image pass and its caption, with and without the
concept-word prior, in the same run (ratios are what to compare on a shared machine).

    python scripts/bench/bench_caption.py [--preset fast] [--rounds 5] [--precision fp32|int8]

Per photo of data/photos (11): ``encode_images`` + ``caption`` (beam 5, no re-ranking: today's
default without a caption bank), against ``encode_images_and_concepts`` + ``caption`` with the
photo's concepts (``--concepts``). Wall-clock median over ``--rounds`` rounds of the 11 photos, rounds interleaved.
"""
import argparse
import os
import statistics
import time
from pathlib import Path

from retrieval.captioning.concept_words import CONCEPT_WEIGHT
from retrieval.captioning.model import load_captioner
from retrieval.encoders.base import load_encoder
from retrieval.io.decode import load_image

ap = argparse.ArgumentParser()
ap.add_argument("--preset", default="fast")
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--precision", default=None, help="RETR_IMAGE_PRECISION for this run (fp32 or int8)")
a = ap.parse_args()
if a.precision:
    os.environ["RETR_IMAGE_PRECISION"] = a.precision
enc = load_encoder(a.preset)
cap = load_captioner(None, enc.id)
photos = [load_image(p) for p in sorted(Path("data/photos").glob("*.jpg"))]


def plain(im):
    return cap.caption(enc.encode_images([im])[0], None, "none")


def with_concepts(im):
    e, p = enc.encode_images_and_concepts([im])
    cap.concept_weight = CONCEPT_WEIGHT  # `retr caption --concepts`
    try:
        return cap.caption(e[0], None, "none", concepts=p[0])
    finally:
        cap.concept_weight = 0.0


times = {"without concepts": [], "with concepts": []}
plain(photos[0]), with_concepts(photos[0])  # warm-up
for _ in range(a.rounds):
    for name, fn in (("without concepts", plain), ("with concepts", with_concepts)):
        for im in photos:
            t = time.perf_counter()
            fn(im)
            times[name].append(1000 * (time.perf_counter() - t))
base = statistics.median(times["without concepts"])
print(f"command: python scripts/bench/bench_caption.py --preset {a.preset} --rounds {a.rounds}"
      f"{' --precision ' + a.precision if a.precision else ''}  ({os.cpu_count()} cores, "
      f"load average {os.getloadavg()[0]:.1f})")
print("| decoding (beam 5, no re-ranking) | median ms a photo (image pass + caption) | ratio |")
print("|---|---|---|")
for name, ts in times.items():
    print(f"| {name} | {statistics.median(ts):.0f} | {statistics.median(ts) / base:.2f} |")
