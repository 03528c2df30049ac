"""Evaluate saved embeddings (mp.py --save PREFIX): single, flip TTA and concatenated ensembles."""
from common import *
import sys
def load(n):
    z = np.load(f'{n}.npz'); return z['di'], z['dflip'], z['dt']
names = sys.argv[1].split(',')
zs = [load(n) for n in names]
for n, (di, df, dt) in zip(names, zs):
    report(f'single {n}', di, dt)
    m = di + df; report(f'single {n} +flip', m / np.linalg.norm(m, axis=1, keepdims=True), dt)
if len(zs) > 1:
    K = len(zs)
    di = np.concatenate([z[0] for z in zs], 1) / np.sqrt(K); dt = np.concatenate([z[2] for z in zs], 1) / np.sqrt(K)
    report(f'ensemble {names}', di, dt)
    df = np.concatenate([(z[0] + z[1]) / np.linalg.norm(z[0] + z[1], axis=1, keepdims=True) for z in zs], 1) / np.sqrt(K)
    report(f'ensemble {names} +flip', df, dt)
