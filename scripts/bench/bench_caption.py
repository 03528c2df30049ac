"""`retr caption` speed after start-up, per photo, with ratios against the image pass alone in the same run
(ratios are what to compare on a shared machine).

    python scripts/bench/bench_caption.py [--preset fast] [--captioner PATH] [--rounds 5] [--precision fp32|int8]

Per photo of data/photos (11), rounds interleaved, wall-clock median over ``--rounds`` rounds:

* image pass: ``encode_images`` (the baseline of the ratios);
* image pass with spatial maps and posteriors: ``encode_images_concepts_and_regions`` (one run);
* for an attention captioner (the shipped one of the preset, or ``--captioner``): what ``retr caption``
  does, the image pass with maps, the COCO detector and the beam caption (beam 5), with concepts and
  objects (the default) and without (``--no-concepts``);
* for a pooled captioner: ``encode_images`` + ``caption`` (beam 5, no re-ranking), and with the
  concept-word prior (``--concepts``).
"""
import argparse
import os
import statistics
import time
from pathlib import Path

from retrieval.app.describe import ObjectSource, attend_captions, photo_inputs
from retrieval.captioning.concept_words import CONCEPT_WEIGHT
from retrieval.captioning.model import load_captioner
from retrieval.encoders.base import load_encoder
from retrieval.io.decode import load_image


def runs(enc, cap, objects: ObjectSource) -> dict:
    """name -> one photo's work, as ``retr caption`` does it."""
    out = {"image pass (embedding)": lambda im: enc.encode_images([im]),
           "image pass + spatial maps + posteriors": lambda im: enc.encode_images_concepts_and_regions([im])}
    if getattr(cap, "needs_regions", False):
        out["retr caption: maps + detector + attention beam 5"] = lambda im: attend_captions(
            cap, photo_inputs(enc, im, True, objects), beam=5)
        out["retr caption --no-concepts: maps + attention beam 5"] = lambda im: attend_captions(
            cap, photo_inputs(enc, im, False, None), beam=5)
        out["detector alone"] = objects.pairs
        return out

    def pooled_concepts(im):
        e, p = enc.encode_images_and_concepts([im])
        cap.concept_weight = CONCEPT_WEIGHT  # `retr caption --concepts`
        try:
            return cap.caption(e[0], 5, "none", concepts=p[0])
        finally:
            cap.concept_weight = 0.0

    out["pooled captioner, beam 5"] = lambda im: cap.caption(enc.encode_images([im])[0], 5, "none")
    out["pooled captioner, beam 5, --concepts"] = pooled_concepts
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--captioner", default=None, help="captioner checkpoint [default: the preset's shipped one]")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--precision", default=None, help="RETR_IMAGE_PRECISION for this run (fp32 or int8)")
    ap.add_argument("--torch-threads", type=int, default=None, help="torch threads of the decoder "
                    "[default: 1, as retr caption]")
    a = ap.parse_args()
    if a.precision:
        os.environ["RETR_IMAGE_PRECISION"] = a.precision
    enc = load_encoder(a.preset)
    enc.export_fast_path()
    cap = load_captioner(a.captioner, enc.id, encoder=enc)
    import torch

    torch.set_num_threads(a.torch_threads or 1)  # as retr caption with the ONNX image path
    photos = [load_image(p) for p in sorted(Path("data/photos").glob("*.jpg"))]
    fns = runs(enc, cap, ObjectSource())
    for fn in fns.values():  # warm-up: sessions, first-run allocations
        fn(photos[0])
    times = {name: [] for name in fns}
    for _ in range(a.rounds):
        for name, fn in fns.items():
            for im in photos:
                t = time.perf_counter()
                fn(im)
                times[name].append(1000 * (time.perf_counter() - t))
    base = statistics.median(times["image pass (embedding)"])
    print(f"command: python scripts/bench/bench_caption.py --preset {a.preset} --rounds {a.rounds}"
          f"{' --captioner ' + a.captioner if a.captioner else ''}{' --precision ' + a.precision if a.precision else ''}"
          f"  ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; captioner {cap.path.name}, "
          f"image precision {enc.image_precision}; torch threads {torch.get_num_threads()})")
    print("| per photo, after start-up | median ms | ratio to the image pass |")
    print("|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.0f} | {statistics.median(ts) / base:.2f} |")


if __name__ == "__main__":
    main()
