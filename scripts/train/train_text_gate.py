"""Train the OCR gate's linear probe for one encoder: does a photo embedding carry drawn text?

    python scripts/train/train_text_gate.py [--encoder fast] [-n 1500] [--dev 400] [--extra 0.02]
        [--data ../shared/data] [--out retrieval/weights/text-gate.json]

``-n`` Flickr8k *train* photos are embedded as they are (negatives) and with one to three lines of
words of the train captions drawn on them (positives; :mod:`retrieval.training.drawn_text`: 3-10% of
the photo's height, four fonts, six colour schemes, up to 5 degrees). A logistic regression (L2,
weight 1e-3, L-BFGS) on them. Its threshold is chosen on ``--dev`` Flickr8k dev photos (the tuning split) as they
are: of those the zero-shot prompts skip, the probe may pass at most ``--extra`` (2%) of all, so
the gate (prompts or probe) skips nearly as many ordinary photos as the prompts alone. The probe
(weights, bias, threshold) is written into ``--out`` under the encoder's id, beside the other
encoders' probes. COCO-mini is never used here; scripts/eval/ocr.py measures
the gate on it and on Flickr8k dev photos.
"""
import argparse
import json
import random
from pathlib import Path

import numpy as np
import torch

from retrieval.encoders.base import load_encoder
from retrieval.io.decode import load_image
from retrieval.ocr.gate import TextGate
from retrieval.training.drawn_text import caption_words, draw_text, random_lines

ROOT = Path(__file__).resolve().parents[2]


def embed(encoder, images) -> np.ndarray:
    return np.concatenate([encoder.encode_images(images[i : i + 32]) for i in range(0, len(images), 32)])


def fit(x: np.ndarray, y: np.ndarray, weight_decay: float = 1e-3) -> tuple[np.ndarray, float]:
    """Logistic regression on (N, D) x, (N,) 0/1 y: (weights (D,), bias); the logit is 10 x.w + b."""
    X, Y = torch.tensor(x), torch.tensor(y, dtype=torch.float32)
    w, b = torch.zeros(X.shape[1], requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(X @ w * 10 + b, Y) + weight_decay * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return (w.detach().numpy() * 10).astype(np.float32), float(b.item())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoder", default="fast")
    ap.add_argument("-n", type=int, default=1500)
    ap.add_argument("--dev", type=int, default=400, help="Flickr8k dev photos the threshold is chosen on")
    ap.add_argument("--extra", type=float, default=0.02, help="share of those photos the probe may add")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "retrieval" / "weights" / "text-gate.json"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    data, rng = Path(a.data).resolve(), random.Random(a.seed)
    encoder, words = load_encoder(a.encoder), caption_words(data / "flickr8k" / "captions_train.json")
    images = json.loads((data / "flickr8k" / "captions_train.json").read_text())["images"]
    photos = [data / "flickr8k" / "images" / i["file_name"] for i in rng.sample(images, a.n)]
    plain = embed(encoder, [load_image(p) for p in photos])
    drawn = embed(encoder, [draw_text(load_image(p), random_lines(words, rng), rng) for p in photos])
    w, b = fit(np.concatenate([plain, drawn]), np.r_[np.zeros(a.n), np.ones(a.n)])
    dev = json.loads((data / "flickr8k" / "captions_dev.json").read_text())["images"]
    dev = embed(encoder, [load_image(data / "flickr8k" / "images" / i["file_name"]) for i in rng.sample(dev, a.dev)])
    prompts = TextGate(encoder, probe=False).passes(dev)
    scores = np.sort(dev[~prompts] @ w + b)[::-1]  # of the photos the prompts skip, the probe passes --extra
    threshold = float(scores[int(a.extra * len(dev))]) + 1e-4 if len(scores) > int(a.extra * len(dev)) else 0.0
    print(f"{encoder.id}: on {a.dev} Flickr8k dev photos the prompts pass {prompts.mean():.1%}; with the probe "
          f"(threshold {threshold:.3f}) the gate passes {(prompts | (dev @ w + b >= threshold)).mean():.1%}")
    out = Path(a.out)
    probes = json.loads(out.read_text()) if out.exists() else {}
    probes[encoder.id] = {"weights": [round(float(v), 6) for v in w], "bias": round(b, 6),
                          "threshold": round(threshold, 6),
                          "trained": f"scripts/train/train_text_gate.py --encoder {a.encoder} -n {a.n} --dev {a.dev} "
                                     f"--extra {a.extra}"}
    out.write_text(json.dumps(probes, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
