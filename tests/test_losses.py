"""The alignment objectives: each loss responds to what it claims to measure."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from retrieval.training.losses.adversarial import ModalityDiscriminator, grad_reverse
from retrieval.training.losses.hardest_negative import hardest_negative_hinge
from retrieval.training.losses.infonce import multi_positive_infonce, symmetric_infonce


def _pairs(n=8, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(n, d, generator=g), dim=-1)
    return x, x.clone()


def test_hinge_is_zero_when_every_positive_beats_its_hardest_negative_by_the_margin():
    img, txt = _pairs()
    sim = img @ txt.t()
    hardest = sim.masked_fill(torch.eye(len(img), dtype=torch.bool), -1).max().item()
    assert hardest < 0.8  # positives are 1.0, so a margin of 0.1 is met everywhere
    assert hardest_negative_hinge(img, txt, margin=0.1).item() == 0.0


def test_hinge_counts_only_the_hardest_negative():
    img, txt = _pairs()
    base = hardest_negative_hinge(img, txt, margin=2.0).item()
    # moving one caption onto another photo makes it the hardest negative of that photo
    txt2 = txt.clone()
    txt2[1] = img[0]
    assert hardest_negative_hinge(img, txt2, margin=2.0).item() > base


def test_infonce_prefers_aligned_pairs():
    img, txt = _pairs()
    scale = torch.tensor(np.log(20.0), dtype=torch.float32)
    shuffled = txt[torch.randperm(len(txt), generator=torch.Generator().manual_seed(1))]
    assert symmetric_infonce(img, txt, scale) < symmetric_infonce(img, shuffled, scale)


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.ones(3, requires_grad=True)
    (grad_reverse(x, 0.5) * 2).sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), -1.0))


@pytest.mark.parametrize("mode", ["confusion", "reversal"])
def test_discriminator_learns_and_the_heads_learn_to_fool_it(mode):
    """Two point clouds far apart: the discriminator learns to tell them apart; then
    steps on the heads alone (discriminator frozen) raise its loss and mix the clouds."""
    torch.manual_seed(0)
    img_in, txt_in = torch.randn(256, 8) + 1.0, torch.randn(256, 8) - 1.0
    proj_i, proj_t = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
    disc = ModalityDiscriminator(8, 32)

    def embed():
        return F.normalize(proj_i(img_in), dim=-1), F.normalize(proj_t(txt_in), dim=-1)

    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-2)
    for _ in range(200):
        i, t = embed()
        loss, acc = disc(i.detach(), t.detach(), 1.0, mode)
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
    assert acc > 0.95

    def disc_bce():
        with torch.no_grad():
            i, t = embed()
            x = torch.cat([i, t])
            y = torch.cat([torch.ones(len(i)), torch.zeros(len(t))])
            return F.binary_cross_entropy_with_logits(disc.net(x).squeeze(-1), y).item()

    before = disc_bce()
    opt_h = torch.optim.SGD([*proj_i.parameters(), *proj_t.parameters()], lr=0.5)
    for _ in range(30):
        loss, _ = disc(*embed(), 1.0, mode)
        opt_h.zero_grad()
        loss.backward()
        opt_h.step()
    assert disc_bce() > 2 * before


def test_unknown_loss_name_is_refused():
    from retrieval.training.align import AlignConfig

    with pytest.raises(ValueError, match="unknown loss"):
        AlignConfig(loss="triplet")


def test_multi_positive_infonce_is_symmetric_infonce_with_one_caption_a_photo():
    img, txt = _pairs()
    txt = F.normalize(txt + 0.3 * torch.randn(txt.shape, generator=torch.Generator().manual_seed(2)), dim=-1)
    scale = torch.tensor(np.log(20.0), dtype=torch.float32)
    assert torch.allclose(multi_positive_infonce(img, txt, scale), symmetric_infonce(img, txt, scale), atol=1e-6)


def test_multi_positive_infonce_does_not_count_a_photos_other_captions_as_negatives():
    """Two identical captions a photo: with co-captions masked the i2t term is as low as
    with one caption; a naive (B, B*k) cross-entropy would pay log(2) for the twin."""
    img, txt = _pairs()
    scale = torch.tensor(np.log(50.0), dtype=torch.float32)
    twice = txt.repeat_interleave(2, dim=0)
    one, two = multi_positive_infonce(img, txt, scale), multi_positive_infonce(img, twice, scale)
    assert abs(one.item() - two.item()) < 0.05
    logits = img @ twice.t() * 50.0
    naive = F.cross_entropy(logits, torch.arange(0, 16, 2))
    assert naive.item() > two.item() + 0.2


def test_multi_positive_infonce_prefers_each_photos_own_captions_and_checks_shapes():
    img, txt = _pairs()
    scale = torch.tensor(np.log(20.0), dtype=torch.float32)
    caps = F.normalize(txt.repeat_interleave(3, dim=0) + 0.2 * torch.randn(24, 16, generator=torch.Generator().manual_seed(3)), dim=-1)
    wrong = caps.view(8, 3, 16)[torch.randperm(8, generator=torch.Generator().manual_seed(4))].reshape(24, 16)
    assert multi_positive_infonce(img, caps, scale) < multi_positive_infonce(img, wrong, scale)
    with pytest.raises(ValueError, match="captions per photo"):
        multi_positive_infonce(img, caps[:23], scale)
    with pytest.raises(ValueError, match="captions per photo"):
        multi_positive_infonce(img, caps[:0], scale)
