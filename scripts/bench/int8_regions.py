"""The int8 image model's spatial maps (output ``regions``) against float32: cosine per region.

    python scripts/bench/int8_regions.py [--photos 100] [--out docs/int8_regions_output.txt]

For each quantisation (U8S8 per-channel, what x86 with VNNI and ARM64 get; U8U8 per-channel, what
x86 without VNNI would get), made now from the current export, two runs:

* ``kernels``: ONNX Runtime with every graph optimisation, so the QDQ nodes fuse into this CPU's
  int8 kernels (on x86 without VNNI, U8S8 then saturates in int16: see
  :mod:`retrieval.encoders.quantisation`);
* ``exact``: the same model with graph optimisations off, so every quantised node runs as
  dequantise -> float32 operator -> quantise: the integer arithmetic without any saturation, which
  is what VNNI (``VPDPBUSD``, int32 sums) and ARM64 kernels compute (up to float rounding).

Per set (the first N photos of Flickr8k dev and COCO-mini): mean, 1st-percentile and min cosine
per region, cosine of the regions' means (the pooled features) and of the embeddings.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from benchlib import load_line, machine_line

from retrieval.encoders import onnx_runtime
from retrieval.encoders.quantisation import Int8Settings, cpu_features, int8_settings

ROOT = Path(__file__).resolve().parents[2]
SHARED = next((p for p in (ROOT.parent / "shared" / "data", Path("/work/shared/data")) if p.is_dir()), None)


def gallery(name: str, n: int) -> list[Path]:
    """The first ``n`` photos (by file name) of Flickr8k dev or COCO-mini."""
    import json

    caps, images = ((SHARED / "flickr8k" / "captions_dev.json", SHARED / "flickr8k" / "images") if name == "flickr8k-dev"
                    else (SHARED / "coco_mini" / "captions.json", SHARED / "coco_mini" / "images"))
    names = sorted(im["file_name"] for im in json.loads(caps.read_text())["images"])[:n]
    return [images / f for f in names]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def run_model(path: Path, sizes: list[int], ims, optimise: bool) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, regions) of ``ims`` from the model at ``path``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimise
                                     else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    embs, maps = [], []
    for i in range(0, len(ims), 16):
        batch = ims[i : i + 16]
        feeds = {n: onnx_runtime.preprocess(batch, s) for n, s in zip(names, sizes)}
        e, r = sess.run(["embedding", "regions"], feeds)
        embs.append(e)
        maps.append(r)
    return np.concatenate(embs), np.concatenate(maps)


def row(label: str, emb, maps, base_emb, base_maps, counts) -> str:
    c = cosines(maps, base_maps)
    bounds = np.cumsum([0] + counts)
    pooled = [cosines(maps[:, a:b].mean(1), base_maps[:, a:b].mean(1)) for a, b in zip(bounds[:-1], bounds[1:])]
    return (f"{label:44s} {c.mean():8.4f} {np.percentile(c, 1):8.4f} {c.min():8.4f} "
            f"{np.concatenate(pooled).mean():9.4f} {cosines(emb, base_emb).mean():9.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=100)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from PIL import Image

    from retrieval.encoders.base import load_encoder

    enc = load_encoder(args.preset)
    enc.export_fast_path()
    export = onnx_runtime.export_dir(enc.id)
    fmt = onnx_runtime.read_image_format(export)
    sizes = [int(x) for x in (export / "image_size.txt").read_text().split()]
    lines = [machine_line(), load_line(), f"cpu: {cpu_features()[0]}, int8 settings chosen here: {int8_settings().describe()}",
             f"command: python scripts/bench/int8_regions.py --photos {args.photos} --preset {args.preset}"]
    print("\n".join(lines), flush=True)
    work = Path(tempfile.mkdtemp(prefix="int8-regions-"))
    try:
        models = {}
        for s in (Int8Settings("int8", True, False, "U8S8"), Int8Settings("uint8", True, False, "U8U8")):
            d = work / s.weight_type
            shutil.copytree(export, d, ignore=shutil.ignore_patterns("image.int8.*", "*.opt.*", ".q-*"))
            models[s.describe()] = onnx_runtime.quantize_image_model(d, s)
        for name in ("flickr8k-dev", "coco-mini"):
            paths = gallery(name, args.photos)
            ims = [Image.open(p).convert("RGB") for p in paths]
            base_emb, base_maps = run_model(export / onnx_runtime.IMAGE_FILE, sizes, ims, True)
            head = (f"\n{name}: {len(ims)} photos x {base_maps.shape[1]} regions ({args.preset})\n"
                    f"{'int8 model, run':44s} {'mean cos':>8s} {'p1 cos':>8s} {'min cos':>8s} {'pooled':>9s} {'embedding':>9s}")
            print(head, flush=True)
            lines.append(head)
            for label, path in models.items():
                for run, optimise in (("kernels", True), ("exact", False)):
                    lines.append(row(f"{label.split(' (')[0]}, {run}", *run_model(path, sizes, ims, optimise),
                                     base_emb, base_maps, fmt["region_counts"]))
                    print(lines[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if SHARED is None:
        raise SystemExit("no shared data folder (flickr8k, coco_mini)")
    main()
