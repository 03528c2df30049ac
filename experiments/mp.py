"""Exploratory alignment trainer (same algorithm as retrieval.training.align, every knob a flag):
multi-caption batches (--caps), text-head dropout (--tdrop), label smoothing, --save embeddings."""
from common import *
import argparse, torch.nn.functional as F
from retrieval.encoders.alignment import AlignmentNetwork
ap = argparse.ArgumentParser()
ap.add_argument('names'); ap.add_argument('--hidden', type=int, default=1024)
ap.add_argument('--drop', type=float, default=0.5); ap.add_argument('--tdrop', type=float, default=None)
ap.add_argument('--lr', type=float, default=3e-4); ap.add_argument('--wd', type=float, default=0.05)
ap.add_argument('--bs', type=int, default=256); ap.add_argument('--epochs', type=int, default=80)
ap.add_argument('--patience', type=int, default=10); ap.add_argument('--caps', type=int, default=1, help='captions per photo per step (5=all)')
ap.add_argument('--dim', type=int, default=512); ap.add_argument('--seed', type=int, default=0)
ap.add_argument('--ls', type=float, default=0.0, help='label smoothing')
ap.add_argument('--maxscale', type=float, default=100.)
ap.add_argument('--save', default=None)
ap.add_argument('--batchview', action='store_true', help='one view (original or mirrored) for the whole batch')
a = ap.parse_args()
torch.manual_seed(a.seed); rng = np.random.default_rng(a.seed)
names = a.names.split(',')
views, dv = img(names)
cp = np.asarray(train.caption_photo)
photos = np.unique(cp); perm = rng.permutation(photos); nh = int(round(len(photos) * 0.08))
hold, tr = np.sort(perm[:nh]), np.sort(perm[nh:])
caps_of = {}
for j, p in enumerate(cp): caps_of.setdefault(int(p), []).append(j)
m = AlignmentNetwork(views.shape[-1], ttxt.shape[-1], a.dim, a.hidden, a.drop)
if a.tdrop is not None: m.text.drop.p = a.tdrop
trc = np.concatenate([caps_of[int(p)] for p in tr])
m.image.set_stats(torch.from_numpy(views[0][tr])); m.text.set_stats(torch.from_numpy(ttxt[trc]))
opt = torch.optim.AdamW(m.parameters(), lr=a.lr, weight_decay=a.wd)
spe = len(tr) // a.bs
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs * spe)
hcp = np.concatenate([[k] * len(caps_of[int(p)]) for k, p in enumerate(hold)]); hcaps = np.concatenate([caps_of[int(p)] for p in hold])
def emb(x, head):
    m.eval()
    with torch.no_grad(): return head(torch.from_numpy(np.ascontiguousarray(x))).numpy()
best, bs_, be, bad = -1, None, 0, 0
t0 = time.time()
for ep in range(a.epochs):
    m.train(); order = rng.permutation(tr)
    for s in range(spe):
        b = order[s*a.bs:(s+1)*a.bs]
        v = rng.integers(0, views.shape[0], len(b)) if not a.batchview else int(rng.integers(0, views.shape[0]))
        x = torch.from_numpy(views[v, b])
        k = a.caps
        c = np.array([rng.choice(caps_of[int(p)], k, replace=len(caps_of[int(p)]) < k) for p in b])  # (B,k)
        t = torch.from_numpy(ttxt[c.reshape(-1)])
        ei, et = m.image(x), m.text(t)  # (B,D), (Bk,D)
        scale = m.logit_scale.exp().clamp(max=a.maxscale)
        lg = scale * et @ ei.T  # (Bk, B)
        tgt = torch.arange(len(b)).repeat_interleave(k)
        l_t2i = F.cross_entropy(lg, tgt, label_smoothing=a.ls)
        # i2t: each image vs all Bk captions, multi-positive: average CE over its k positives with other positives masked
        li = lg.T  # (B, Bk)
        if k == 1:
            l_i2t = F.cross_entropy(li, tgt, label_smoothing=a.ls)
        else:
            pos = (tgt[None, :] == torch.arange(len(b))[:, None])  # (B,Bk)
            # for each positive j: logsumexp over negatives + that positive
            neg = li.masked_fill(pos, float('-inf'))
            lse_neg = torch.logsumexp(neg, 1, keepdim=True)  # (B,1)
            pl = li[pos].view(len(b), k)
            l_i2t = (torch.logaddexp(pl, lse_neg) - pl).mean()
        loss = (l_t2i + l_i2t) / 2
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    hi, ht = emb(views[0][hold], m.image), emb(ttxt[hcaps], m.text)
    r = recall_at_k(hi, ht, hcp); score = r['i2t'][1] + r['t2i'][1] + 0.5 * (r['i2t'][5] + r['t2i'][5])
    if score > best: best, be, bad = score, ep, 0; bs_ = {kk: vv.clone() for kk, vv in m.state_dict().items()}
    else:
        bad += 1
        if bad >= a.patience: break
m.load_state_dict(bs_)
di, dt = emb(dv[0], m.image), emb(dtxt, m.text)
dflip = emb(dv[1], m.image)
if a.save: np.savez(a.save, di=di, dflip=dflip, dt=dt); torch.save(m.state_dict(), a.save + '.pt')
report(f"mp {vars(a)}", di, dt, {'s': round(time.time()-t0), 'epoch': be})
