"""Cache the input of a backbone's last MBConv block (a spatial map) for Flickr8k train and dev,
for the explorations that fine-tune the last block and pool with attention (spatial.py).

    python experiments/spatial_extract.py l0
writes $RETR_EXPLORE_OUT/sp-l0-{train,dev}.npy, (2, N, C, H, W) float16 (view 0 original, 1 mirrored).
"""
import os; os.environ.setdefault("OMP_NUM_THREADS", "2")
import sys, time, importlib
from pathlib import Path
import numpy as np, torch
from PIL import ImageOps
from retrieval.io.coco import load_coco_captions
from retrieval.encoders.backbones import Backbone
from retrieval.encoders.onnx_runtime import preprocess
from retrieval.io.decode import load_image
torch.set_num_threads(2)
name = {'l0': 'efficientnet-lite0', 'l2': 'efficientnet-lite2'}[sys.argv[1]]
OUT = Path(os.environ.get('RETR_EXPLORE_OUT', '/tmp/retr-explore'))
f8 = Path(os.environ.get('RETR_DATA', '../shared/data')) / 'flickr8k'
bb = Backbone(name); net = bb._net
class Cut(torch.nn.Module):
    def __init__(s): super().__init__(); s.n = net
    def forward(s, x):
        x = s.n._swish(s.n._bn0(s.n._conv_stem(x)))
        for b in s.n._blocks[:-1]: x = b(x)
        return x
size = bb.spec.image_size
m = torch.jit.freeze(torch.jit.trace(Cut().eval(), torch.zeros(2, 3, size, size)))
for split in ('train', 'dev'):
    c = load_coco_captions(f8 / f'captions_{split}.json'); n = len(c.file_names); out = None; t = time.time()
    for s in range(0, n, 32):
        ims = [load_image(f8 / 'images' / f) for f in c.file_names[s:s + 32]]
        x = torch.from_numpy(preprocess(ims, size))
        with torch.inference_mode():
            y = m(torch.cat([x, x.flip(-1)])).numpy().astype(np.float16)
        if out is None: out = np.zeros((2, n) + y.shape[1:], np.float16)
        k = len(ims); out[0, s:s + k] = y[:k]; out[1, s:s + k] = y[k:]
        if s % 640 == 0: print(split, s, n, f'{(s + k) / (time.time() - t):.1f}/s', flush=True)
    np.save(OUT / f'sp-{sys.argv[1]}-{split}.npy', out); print(split, out.shape, time.time() - t, flush=True)
