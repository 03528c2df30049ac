"""int8 image model against float32 on this CPU: mean (min) cosine to float32, top-5 agreement over
16 queries (long captions and short typed queries), and CPU time per photo as a ratio to float32.

Quantisations compared, each made now from the same export: the settings this CPU gets
(:func:`retrieval.encoders.quantisation.int8_settings`), and U8S8 per-channel (what every CPU got before),
U8S8 with reduce_range, U8U8 per-channel, when they differ from it.

    python scripts/bench/int8_accuracy.py [--photos 300] [--out docs/int8_output.txt]

Galleries: the first N photos of Flickr8k dev and of COCO-mini (/work/shared/data or
../shared/data); queries: the first caption of 16 of those photos (spread over the gallery),
and the same captions cut to their first three words (short typed queries).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchlib import load_line, machine_line

from retrieval.encoders import onnx_runtime
from retrieval.encoders.quantisation import Int8Settings, cpu_features, int8_refusal, int8_settings

ROOT = Path(__file__).resolve().parents[2]

SHARED = next((p for p in (ROOT.parent / "shared" / "data", Path("/work/shared/data")) if p.is_dir()), None)


def gallery(name: str, n: int):
    """(photo paths, 16 (long, short) query pairs) of a dev set."""
    if name == "flickr8k-dev":
        caps, images = SHARED / "flickr8k" / "captions_dev.json", SHARED / "flickr8k" / "images"
    else:
        caps, images = SHARED / "coco_mini" / "captions.json", SHARED / "coco_mini" / "images"
    data = json.loads(caps.read_text())
    ims = sorted(data["images"], key=lambda im: im["file_name"])[:n]
    first = {}
    for a in data["annotations"]:
        first.setdefault(a["image_id"], a["caption"].strip().rstrip(" ."))
    step = max(1, len(ims) // 16)
    queries = [first[im["id"]] for im in ims[::step][:16]]
    return [images / im["file_name"] for im in ims], [(q, " ".join(q.split()[:3])) for q in queries]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=300, help="gallery size per dev set")
    ap.add_argument("--out", type=Path, default=None, help="also write the output here")
    args = ap.parse_args()
    if SHARED is None:
        sys.exit("no shared data folder (flickr8k, coco_mini)")
    from PIL import Image

    from retrieval.encoders.base import load_encoder

    enc = load_encoder()
    enc.export_fast_path()
    export = onnx_runtime.export_dir(enc.id)
    here = int8_settings()
    candidates = [here] + [s for s in (Int8Settings("int8", True, False, "U8S8, every CPU before"),
                                       Int8Settings("int8", True, True, "U8S8 reduce_range"),
                                       Int8Settings("uint8", True, False, "U8U8"),
                                       Int8Settings("uint8", False, False, "U8U8 per-tensor"))
                           if (s.weight_type, s.reduce_range, s.per_channel)
                           != (here.weight_type, here.reduce_range, here.per_channel)]
    lines = [machine_line(), load_line(), f"cpu: {cpu_features()[0]}, int8 settings chosen here: {here.describe()}"
             + (f"; int8 refused here ({int8_refusal()})" if int8_refusal() else ""),
             f"command: python scripts/bench/int8_accuracy.py --photos {args.photos}"]
    print("\n".join(lines), flush=True)
    work = Path(tempfile.mkdtemp(prefix="int8-"))
    try:
        models = {}
        for s in candidates:
            d = work / s.describe().replace(" ", "_").replace("(", "").replace(")", "").replace(",", "")
            shutil.copytree(export, d, ignore=shutil.ignore_patterns("image.int8.*", "*.opt.*", ".q-*"))
            models[s.describe()] = onnx_runtime.OnnxImageEncoder(d, precision="int8", int8_settings=s)
            assert models[s.describe()].precision == "int8"
        fp32 = onnx_runtime.OnnxImageEncoder(export, precision="fp32")
        text = onnx_runtime.OnnxTextEncoder(export)
        for name in ("flickr8k-dev", "coco-mini"):
            paths, queries = gallery(name, args.photos)
            ims = [Image.open(p).convert("RGB") for p in paths]
            fp32.encode_images(ims[:4])  # warm-up: first-run allocations are not per-photo cost
            t = time.process_time()
            base = fp32.encode_images(ims)
            t_fp32 = time.process_time() - t
            q_long = text.encode_texts([q for q, _ in queries])
            q_short = text.encode_texts([q for _, q in queries])
            top = {k: np.argsort(-(q @ base.T), axis=1)[:, :5] for k, q in (("long", q_long), ("short", q_short))}
            print(f"\n{name}: {len(ims)} photos, 16 queries (long captions / their first 3 words)", flush=True)
            lines.append(f"\n{name}: {len(ims)} photos, 16 queries (long captions / their first 3 words)")
            lines.append(f"float32: {1000 * t_fp32 / len(ims):.1f} CPU ms a photo (one ONNX Runtime thread)")
            print(lines[-1])
            header = f"{'int8 settings':58s} {'mean cos':>8s} {'min cos':>8s} {'top-5 long':>10s} {'top-5 short':>11s} {'CPU vs fp32':>11s}"
            print(header)
            lines.append(header)
            for label, m in models.items():
                m.encode_images(ims[:4])
                t = time.process_time()
                a = m.encode_images(ims)
                ratio = (time.process_time() - t) / t_fp32
                cos = (a * base).sum(1)
                agree = {}
                for k, q in (("long", q_long), ("short", q_short)):
                    got = np.argsort(-(q @ a.T), axis=1)[:, :5]
                    agree[k] = sum(len(set(x) & set(y)) for x, y in zip(got, top[k]))
                row = (f"{label:58s} {cos.mean():8.4f} {cos.min():8.4f} {agree['long']:>7d}/80 "
                       f"{agree['short']:>8d}/80 {ratio:10.2f}x")
                print(row, flush=True)
                lines.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
