"""Exploration: EfficientNet-Lite0's spatial map instead of its frozen pooled vector.
Trains (optionally) the backbone's last MBConv block and/or its 1x1 head conv, an attention
pooling over the 7x7 map, and the alignment heads, from the cached input of the last block
(spatial_extract.py). --extra l2,mn concatenates those backbones' frozen pooled features.

    python experiments/spatial.py --ft none --pool attn
"""
from common import *
import argparse, copy, torch.nn as nn
from retrieval.encoders.alignment import ProjectionHead
from retrieval.encoders.backbones import Backbone
from retrieval.training.losses.infonce import multi_positive_infonce
ap = argparse.ArgumentParser()
ap.add_argument('--ft', default='none', choices=['none', 'head', 'block'])
ap.add_argument('--pool', default='mean', choices=['mean', 'attn', 'attncat'])
ap.add_argument('--heads', type=int, default=4)
ap.add_argument('--extra', default='')
ap.add_argument('--drop', type=float, default=0.5); ap.add_argument('--tdrop', type=float, default=0.1)
ap.add_argument('--lr', type=float, default=3e-4); ap.add_argument('--bblr', type=float, default=3e-5)
ap.add_argument('--wd', type=float, default=0.05); ap.add_argument('--bs', type=int, default=256)
ap.add_argument('--epochs', type=int, default=80); ap.add_argument('--patience', type=int, default=10)
ap.add_argument('--seed', type=int, default=0); ap.add_argument('--save', default=None)
a = ap.parse_args()
torch.manual_seed(a.seed); rng = np.random.default_rng(a.seed)
sp_tr = np.load(OUT / 'sp-l0-train.npy'); sp_dv = np.load(OUT / 'sp-l0-dev.npy')
net = Backbone('efficientnet-lite0')._net
block, head = copy.deepcopy(net._blocks[-1]), nn.Sequential(net._conv_head, net._bn1, nn.ReLU6())
for p in list(block.parameters()) + list(head.parameters()): p.requires_grad_(False)
block.eval(); head.eval()
def run_frozen(x, upto):  # upto: 'block' -> last block output, 'head' -> final map
    outs = []
    with torch.no_grad():
        for s in range(0, x.shape[0], 512):
            y = block(torch.from_numpy(np.asarray(x[s:s + 512], np.float32)))
            if upto == 'head': y = head(y)
            outs.append(y.half().numpy())
    return np.concatenate(outs)
# pre-compute what stays frozen
t0 = time.time()
if a.ft == 'block': tr_in = sp_tr
else:
    upto = 'head' if a.ft == 'none' else 'block'
    tr_in = np.stack([run_frozen(sp_tr[v], upto) for v in range(2)])
print('precompute', round(time.time() - t0), 's', tr_in.shape, flush=True)
if a.ft == 'block':
    for p in list(block.parameters()) + list(head.parameters()): p.requires_grad_(True)
elif a.ft == 'head':
    for p in head.parameters(): p.requires_grad_(True)
class AttnPool(nn.Module):
    """mean + K learned-query attention poolings over the H*W positions (zero-init: starts as mean)."""
    def __init__(s, c=1280, heads=4, dk=128, cat=False):
        super().__init__(); s.cat = cat; s.ln = nn.LayerNorm(c); s.k = nn.Linear(c, heads * dk)
        s.q = nn.Parameter(torch.zeros(heads, dk)); s.h, s.dk = heads, dk
    def forward(s, x):  # (B,C,H,W)
        x = x.flatten(2).transpose(1, 2)  # (B,N,C)
        k = s.k(s.ln(x)).view(x.shape[0], x.shape[1], s.h, s.dk)
        w = torch.einsum('bnhd,hd->bhn', k, s.q).softmax(-1)
        att = torch.einsum('bhn,bnc->bhc', w, x)  # (B,h,C)
        m = x.mean(1)
        return torch.cat([m, att.flatten(1)], 1) if s.cat else m + att.mean(1)
pool = None if a.pool == 'mean' else AttnPool(heads=a.heads, cat=a.pool == 'attncat')
def tower(x, train):  # x: cached array slice -> (B, D) features
    x = torch.from_numpy(np.asarray(x, np.float32))
    if a.ft == 'block':
        x = head(block(x))  # BatchNorm stays in eval mode (frozen statistics)
    elif a.ft == 'head':
        x = head(x)
    return x.mean((2, 3)) if pool is None else pool(x)
ex_tr = ex_dv = None
if a.extra:
    ex_tr, ex_dv = img(a.extra.split(','))
cp = np.asarray(train.caption_photo)
photos = np.unique(cp); perm = rng.permutation(photos); nh = int(round(len(photos) * 0.08))
hold, tr = np.sort(perm[:nh]), np.sort(perm[nh:])
caps_of = {}
for j, p in enumerate(cp): caps_of.setdefault(int(p), []).append(j)
def feats(split_in, extra, v, idx, train):
    f = tower(split_in[v][idx], train)
    if extra is not None: f = torch.cat([f, torch.from_numpy(extra[v][idx])], 1)
    return f
with torch.no_grad():
    f0 = torch.cat([feats(tr_in, ex_tr, 0, tr[s:s + 512], False) for s in range(0, len(tr), 512)])
ihead = ProjectionHead(f0.shape[1], 512, 1024, a.drop); ihead.set_stats(f0)
thead = ProjectionHead(384, 512, 1024, a.tdrop)
trc = np.concatenate([caps_of[int(p)] for p in tr]); thead.set_stats(torch.from_numpy(ttxt[trc]))
scale = nn.Parameter(torch.tensor(2.659))
main_p = list(ihead.parameters()) + list(thead.parameters()) + [scale] + (list(pool.parameters()) if pool else [])
bb_p = [p for p in list(block.parameters()) + list(head.parameters()) if p.requires_grad]
groups = [{'params': main_p, 'lr': a.lr}] + ([{'params': bb_p, 'lr': a.bblr}] if bb_p else [])
opt = torch.optim.AdamW(groups, weight_decay=a.wd)
spe = len(tr) // a.bs
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs * spe)
hcp = np.concatenate([[k] * len(caps_of[int(p)]) for k, p in enumerate(hold)]); hcaps = np.concatenate([caps_of[int(p)] for p in hold])
mods = [ihead, thead] + ([pool] if pool else [])
def emb_img(split_in, extra, v, idx):
    for m_ in mods: m_.eval()
    with torch.no_grad():
        return torch.cat([ihead(feats(split_in, extra, v, idx[s:s + 512], False)) for s in range(0, len(idx), 512)]).numpy()
def emb_txt(t):
    thead.eval()
    with torch.no_grad(): return thead(torch.from_numpy(t)).numpy()
parts = dict(ihead=ihead, thead=thead, block=block, head=head, **({'pool': pool} if pool else {}))
def state():
    return {n: {k: v.clone() for k, v in m_.state_dict().items()} for n, m_ in parts.items()}
best, bs_, be, bad = -1, None, 0, 0
t0 = time.time()
for ep in range(a.epochs):
    for m_ in mods: m_.train()
    order = rng.permutation(tr)
    for s in range(spe):
        b = np.sort(order[s * a.bs:(s + 1) * a.bs]); v = int(rng.integers(0, 2))
        ei = ihead(feats(tr_in, ex_tr, v, b, True))
        c = np.array([rng.choice(caps_of[int(p)], 5, replace=len(caps_of[int(p)]) < 5) for p in b])
        et = thead(torch.from_numpy(ttxt[c.reshape(-1)]))
        loss = multi_positive_infonce(ei, et, scale)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    hi, ht = emb_img(tr_in, ex_tr, 0, hold), emb_txt(ttxt[hcaps])
    r = recall_at_k(hi, ht, hcp); score = r['i2t'][1] + r['t2i'][1] + 0.5 * (r['i2t'][5] + r['t2i'][5])
    print(f'ep {ep} loss {loss.item():.3f} hold {r["t2i"][1]:.1f}/{r["i2t"][1]:.1f} {time.time() - t0:.0f}s', flush=True)
    if score > best: best, be, bad = score, ep, 0; bs_ = state()
    else:
        bad += 1
        if bad >= a.patience: break
for n, m_ in parts.items():
    m_.load_state_dict(bs_[n])
# dev: run the (possibly fine-tuned) block+head from the cut features
a_ft = a.ft; a.ft = 'block'
di = emb_img(sp_dv, ex_dv, 0, np.arange(sp_dv.shape[1])); dflip = emb_img(sp_dv, ex_dv, 1, np.arange(sp_dv.shape[1]))
a.ft = a_ft
dt = emb_txt(dtxt)
if a.save: np.savez(a.save, di=di, dflip=dflip, dt=dt); torch.save(bs_, a.save + '.pt')
report(f"spatial {vars(a)}", di, dt, {'s': round(time.time() - t0), 'epoch': be})
n = (di + dflip); n /= np.linalg.norm(n, axis=1, keepdims=True); report('  +flipTTA', n, dt)
