"""Conditional VAE captioner: describe a photo from its aligned embedding.

Model (Kingma & Welling 2014; Sohn et al. 2015; in the line of Wang, Schwing &
Lazebnik 2017): a prior network p(z | c) and a recognition network
q(z | caption, c) over a Gaussian latent z, and a GRU decoder
p(caption | z, c), where c is the photo's L2-normalised aligned embedding
(the output of the encoder's image head). The recognition network sees the
caption through its aligned text embedding. Sampling z from the prior gives
different captions of one photo; the prior mean with beam search gives the
single best one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from retrieval.encoders.base import WEIGHTS_DIR
from retrieval.captioning.attend_captioner import KIND as ATTEND_KIND, AttendCaptioner
from retrieval.captioning.bank import CAPTION_NEIGHBOURS, DEFAULT_BANK, CaptionBank
from retrieval.captioning.concept_words import CONCEPT_THRESHOLD, add_novel_words, concept_bias, word_groups
from retrieval.captioning.decoding import beam_hypotheses, length_normalise, nucleus_sample
from retrieval.captioning.first_backbone import first_backbone_view
from retrieval.captioning.rerank import cider_against, consensus_cider
from retrieval.captioning.vocab import BOS, EOS, PAD, UNK, detokenize, tokenize
from retrieval.errors import CaptionerError

#: The shipped captioner checkpoint.
DEFAULT_CAPTIONER = WEIGHTS_DIR / "captioner-default.pt"
#: Default decodings, chosen on Flickr8k dev (docs/captioner_decoding.md): with a caption bank,
#: beam ``RERANK_BEAM`` re-ranked by CIDEr-D against the captions of the ``CAPTION_NEIGHBOURS``
#: nearest bank photos; without one, beam ``CAPTION_BEAM`` (length penalty power 0.7).
RERANK_BEAM, CAPTION_BEAM = 8, 5
#: The caption ``retr index`` stores for every photo stays the cheap one: beam 3, no re-ranking
#: (24 ms a photo on one core, already more than the rest of indexing; the re-ranked default costs ~65 ms).
INDEX_BEAM = 3
def _mlp(d_in: int, d_out: int, hidden: int = 256) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class CaptionCVAE(nn.Module):
    """The network: prior, recognition network and GRU decoder.

    Args:
        vocab_size: number of tokens (including the 4 specials).
        cond_dim: dim of the aligned embedding c.
        z_dim: latent dim.
        emb: word embedding dim.
        hidden: GRU hidden size.
        dropout: dropout on word embeddings and GRU outputs.
    """

    def __init__(self, vocab_size: int, cond_dim: int = 512, z_dim: int = 32, emb: int = 256, hidden: int = 512,
                 dropout: float = 0.3):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, cond_dim=cond_dim, z_dim=z_dim, emb=emb, hidden=hidden,
                           dropout=dropout)
        self.prior = _mlp(cond_dim, 2 * z_dim)
        self.recognition = _mlp(2 * cond_dim, 2 * z_dim)
        self.embed = nn.Embedding(vocab_size, emb, padding_idx=PAD)
        self.init_h = nn.Linear(cond_dim + z_dim, hidden)
        self.gru = nn.GRU(emb + cond_dim + z_dim, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab_size)

    def prior_params(self, c: torch.Tensor):
        """(B, cond_dim) -> mean, log-variance, each (B, z_dim)."""
        mu, lv = self.prior(c).chunk(2, dim=-1)
        return mu, lv.clamp(-8, 4)

    def recognition_params(self, c: torch.Tensor, t: torch.Tensor):
        """c, t: (B, cond_dim) photo and caption embeddings -> mean, log-variance (B, z_dim)."""
        mu, lv = self.recognition(torch.cat([c, t], -1)).chunk(2, dim=-1)
        return mu, lv.clamp(-8, 4)

    def step(self, tokens: torch.Tensor, cz: torch.Tensor, h: torch.Tensor | None):
        """Run the decoder over ``tokens`` (B, T) given cz = [c, z] (B, cond+z).

        Returns:
            logits (B, T, V) and the last hidden state (1, B, hidden).
        """
        if h is None:
            h = torch.tanh(self.init_h(cz)).unsqueeze(0)
        x = self.drop(self.embed(tokens))
        x = torch.cat([x, cz.unsqueeze(1).expand(-1, x.shape[1], -1)], -1)
        o, h = self.gru(x, h)
        return self.out(self.drop(o)), h

    def loss(self, tokens: torch.Tensor, c: torch.Tensor, t: torch.Tensor, label_smoothing: float = 0.0):
        """Negative ELBO terms for a batch.

        Args:
            tokens: (B, T) int64, ``<bos> w1 .. wn <eos> <pad>..``.
            c: (B, cond_dim) condition: photo embeddings, or in text-only pre-training
                the captions' own embeddings with Gaussian noise (CapDec, Nukrai et al. 2022).
            t: (B, cond_dim) caption embeddings (seen by the recognition network only).
            label_smoothing: mass spread over the vocabulary in the cross-entropy
                (Szegedy et al. 2016); 0 = the exact likelihood.

        Returns:
            (summed token cross-entropy / B, KL(q || p) averaged over the batch, number of tokens).
        """
        mu_q, lv_q = self.recognition_params(c, t)
        mu_p, lv_p = self.prior_params(c)
        z = mu_q + torch.randn_like(mu_q) * (0.5 * lv_q).exp()
        logits, _ = self.step(tokens[:, :-1], torch.cat([c, z], -1), None)
        tgt = tokens[:, 1:]
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=PAD,
                             reduction="sum", label_smoothing=label_smoothing)
        kl = 0.5 * (lv_p - lv_q + ((lv_q.exp() + (mu_q - mu_p) ** 2) / lv_p.exp()) - 1).sum(-1)
        b = tokens.shape[0]
        return ce / b, kl.mean(), int((tgt != PAD).sum())


class Captioner:
    """Load a trained captioner and describe photos from their aligned embeddings.

    Args:
        weights: checkpoint path (default: the shipped ``captioner-default.pt``).
        novel_words: add the concept words the network never learned (:func:`add_novel_words`).

    Attributes:
        encoder_id: id of the encoder whose image embeddings it was trained on;
            embeddings from any other encoder give meaningless captions.

    Raises:
        CaptionerError: missing or invalid checkpoint.
    """

    def __init__(self, weights: str | Path | None = None, novel_words: bool = True):
        path = Path(weights) if weights else DEFAULT_CAPTIONER
        if not path.is_file():
            raise CaptionerError(f"{path}: captioner weights not found")
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
            self.vocab: list[str] = list(ck["vocab"])
            self.net = CaptionCVAE(**ck["config"]["network"])
            self.net.load_state_dict({k: v.float() for k, v in ck["state_dict"].items()})
            self.encoder_id: str = ck["config"]["encoder_id"]
            self.max_len: int = int(ck["config"].get("max_len", 20))
            self.card: dict = ck["config"].get("card", {})
        except Exception as e:  # noqa: BLE001
            raise CaptionerError(f"{path}: not a retr captioner checkpoint ({e.__class__.__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''})") from None
        self.net.eval()
        self.path = path
        #: the pooled captioner reads the aligned embedding only (the attention captioner also reads regions)
        self.needs_regions = False
        #: :class:`CaptionBank` for neighbour re-ranking (:meth:`caption`); set by :func:`load_captioner`.
        self.bank: CaptionBank | None = None
        #: the concept-word prior applied where a decoding is given ImageNet posteriors
        #: (:mod:`retrieval.captioning.concept_words`); weight 0 (the default) turns it off,
        #: ``CONCEPT_WEIGHT`` turns it on (`retr caption --concepts`)
        self.concept_weight, self.concept_threshold = 0.0, CONCEPT_THRESHOLD
        #: words the network never learned, said only where the concepts name them (:func:`add_novel_words`)
        self.vocab, self.novel = (add_novel_words(self.net, self.vocab) if novel_words
                                  else (self.vocab, np.zeros(len(self.vocab), bool)))

    def _bias(self, concepts: np.ndarray | None, n: int):
        """(bias (n, V), groups) for ``concepts`` (n, 1000) posteriors; without concepts (or with the
        prior off) only the novel words' ban, or (None, None) when there are none."""
        if concepts is None or self.concept_weight <= 0:
            if not self.novel.any():
                return None, None
            return np.where(self.novel, -1e9, 0.0).astype(np.float32)[None].repeat(n, 0), word_groups(self.vocab)
        post = np.asarray(concepts, np.float32).reshape(-1, 1000)
        if len(post) != n:
            raise ValueError(f"{len(post)} rows of concepts for {n} photos")
        return (concept_bias(post, self.vocab, self.concept_weight, self.concept_threshold, self.novel),
                word_groups(self.vocab))

    def _words(self, ids) -> list[str]:
        return [self.vocab[i] for i in ids if i not in (PAD, BOS, EOS)]

    @torch.no_grad()
    def beam_hypotheses_batch(self, embs: np.ndarray, beam: int = 3,
                              concepts: np.ndarray | None = None) -> list[list[tuple[list[int], float]]]:
        """Beam search (width ``beam``) from the prior mean of z for many photos at once: the
        finished hypotheses of each, raw. The one beam search of this class: the one-photo methods
        (:meth:`beam_hypotheses`, :meth:`beam_candidates`, :meth:`beam_search`) call it with one
        row, ``retr index`` with up to ``retrieval.indexing.indexer.CAPTION_BATCH`` rows (:meth:`beam_search_batch`).

        Per photo, the search keeps the ``beam`` best partial hypotheses by summed log-probability
        (a stable sort of the candidates, listed beam by beam, each beam's ``beam`` most likely
        next words in ``torch.topk`` order) and stops once ``beam`` hypotheses have ended with
        ``<eos>``, no partial hypothesis is left, or after ``max_len`` words. Pruning uses the raw
        sum, so any length normalisation only re-orders this list (see :func:`length_normalise`).
        Each decoder step runs the GRU once over the live beams of every photo still searching:
        4.4 ms CPU a photo in batches of 256 against 28.8 one photo at a time (2 cores,
        docs/bench_index_output.txt). Photos do not interact: a photo's hypotheses are those of a
        one-row call up to float rounding of the batched matrix products (tests/test_api.py).

        Args:
            embs: (N, D) float32 aligned image embeddings, L2-normalised, D = the captioner's
                ``cond_dim``; N may be 0.
            beam: beam width (1 = greedy).
            concepts: optional (N, 1000) ImageNet posteriors of the photos: the concept-word prior
                (:mod:`retrieval.captioning.concept_words`) biases the search; ``None``: no prior.

        Returns:
            N lists, in the order of ``embs``, each of (token ids without ``<bos>``/``<eos>``,
            summed log-probability including ``<eos>``) pairs in the order they finished (a photo
            with none finished after ``max_len`` words: its live hypotheses, scored without ``<eos>``).
            Deterministic for a given input.

        Raises:
            ValueError: ``embs`` is not (N, D), or ``concepts`` has another number of rows.
        """
        bias, groups = self._bias(concepts, len(np.asarray(embs).reshape(-1, self.net.config["cond_dim"])))
        return beam_hypotheses(self.net, embs, beam, self.max_len, bias, groups)

    def beam_hypotheses(self, c: np.ndarray, beam: int = 3) -> list[tuple[list[int], float]]:
        """Beam search (width ``beam``) from the prior mean of z: the finished hypotheses of one
        photo, raw (:meth:`beam_hypotheses_batch` with one row).

        Args:
            c: (D,) float32 aligned image embedding, L2-normalised.
            beam: beam width (1 = greedy).

        Returns:
            (token ids without ``<bos>``/``<eos>``, summed log-probability including ``<eos>``)
            pairs, in the order they finished. Deterministic for a given input.

        Raises:
            ValueError: ``c`` does not hold D values.
        """
        return self.beam_hypotheses_batch(np.asarray(c, np.float32).reshape(1, -1), beam)[0]

    def beam_candidates_batch(self, embs: np.ndarray, beam: int = 3, length_penalty: float = 0.7,
                              lp_form: str = "power", concepts: np.ndarray | None = None) -> list[list[tuple[str, float]]]:
        """:meth:`beam_candidates` of every row of ``embs``, searched together (:meth:`beam_hypotheses_batch`).

        Args:
            embs: (N, D) float32 aligned image embeddings, L2-normalised.
            beam: beam width (1 = greedy).
            length_penalty, lp_form: length normalisation of the summed log-probability
                (:func:`length_normalise`; ``length_penalty=0``: none).
            concepts: optional (N, 1000) ImageNet posteriors (:meth:`beam_hypotheses_batch`).

        Returns:
            N ``n``-best lists, in the order of ``embs``: each of (sentence, length-normalised
            log-probability) pairs, best first (ties: the order they finished), distinct sentences
            (usually ``beam`` of them, sometimes one or two more). Deterministic for a given input.

        Raises:
            ValueError: ``embs`` is not (N, D); unknown ``lp_form``.
        """
        out = []
        for fin in self.beam_hypotheses_batch(embs, beam, concepts):
            hyps = [(seq, length_normalise(score, len(seq) + 1, length_penalty, lp_form)) for seq, score in fin]
            cands, seen = [], set()
            for seq, score in sorted(hyps, key=lambda x: -x[1]):
                s = detokenize(self._words(seq))
                if s not in seen:
                    seen.add(s)
                    cands.append((s, float(score)))
            out.append(cands)
        return out

    def beam_candidates(self, c: np.ndarray, beam: int = 3, length_penalty: float = 0.7,
                        lp_form: str = "power", concepts: np.ndarray | None = None) -> list[tuple[str, float]]:
        """Beam search (width ``beam``) from the prior mean of z: the finished hypotheses of one
        photo, best first (:meth:`beam_candidates_batch` with one row).

        Args:
            c: (D,) float32 aligned image embedding, L2-normalised.
            beam: beam width (1 = greedy).
            length_penalty, lp_form: length normalisation of the summed log-probability
                (:func:`length_normalise`; ``length_penalty=0``: none).
            concepts: optional (1000,) ImageNet posteriors of the photo (the concept-word prior).

        Returns:
            the ``n``-best list: (sentence, length-normalised log-probability) pairs, best first,
            distinct sentences (usually ``beam`` of them, sometimes one or two more).
            Deterministic for a given input.

        Raises:
            ValueError: ``c`` does not hold D values; unknown ``lp_form``.
        """
        return self.beam_candidates_batch(np.asarray(c, np.float32).reshape(1, -1), beam, length_penalty, lp_form,
                                          concepts)[0]

    def beam_search_batch(self, embs: np.ndarray, beam: int = 3, length_penalty: float = 0.7,
                          lp_form: str = "power", concepts: np.ndarray | None = None) -> list[str]:
        """:meth:`beam_search` of every row of ``embs``, searched together: the captions ``retr index``
        stores (with beam ``INDEX_BEAM``, in batches of ``retrieval.indexing.indexer.CAPTION_BATCH``).

        Args:
            embs: (N, D) float32 aligned image embeddings, L2-normalised.
            beam: beam width (1 = greedy).
            length_penalty, lp_form: see :func:`length_normalise`.
            concepts: optional (N, 1000) ImageNet posteriors (the concept-word prior).

        Returns:
            N clean sentences, in the order of ``embs``; each equals ``beam_search(embs[i], ...)``
            up to float rounding of the batched matrix products. Deterministic for a given input.

        Raises:
            ValueError: ``embs`` is not (N, D); unknown ``lp_form``.
        """
        return [cands[0][0] for cands in self.beam_candidates_batch(embs, beam, length_penalty, lp_form, concepts)]

    def beam_search(self, c: np.ndarray, beam: int = 3, length_penalty: float = 0.7, lp_form: str = "power",
                    concepts: np.ndarray | None = None) -> str:
        """The most likely caption for one photo: the best of :meth:`beam_candidates`.

        Args:
            c: (D,) float32 aligned image embedding, L2-normalised.
            beam: beam width (1 = greedy).
            length_penalty, lp_form: see :func:`length_normalise`.
            concepts: optional (1000,) ImageNet posteriors of the photo (the concept-word prior).

        Returns:
            a clean sentence. Deterministic for a given input.
        """
        return self.beam_candidates(c, beam, length_penalty, lp_form, concepts)[0][0]

    @torch.no_grad()
    def log_likelihood(self, c: np.ndarray, captions: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Score given captions of one photo under the decoder with z at the prior mean.

        The same model as :meth:`beam_hypotheses` (teacher forcing, no dropout): a beam
        hypothesis gets back its beam score. Out-of-vocabulary words count as ``<unk>``.

        Args:
            c: (D,) float32 aligned image embedding. captions: N sentences.

        Returns:
            (N,) float64 summed log p(words, <eos> | c, z = mean of p(z | c)) and
            (N,) int64 number of scored tokens (words + ``<eos>``).
        """
        if not captions:
            return np.zeros(0), np.zeros(0, np.int64)
        idx = {w: i for i, w in enumerate(self.vocab)}
        seqs = [[idx.get(w, UNK) for w in tokenize(s)][: self.max_len] for s in captions]
        T = max(len(q) for q in seqs) + 2
        toks = torch.full((len(seqs), T), PAD, dtype=torch.long)
        for j, q in enumerate(seqs):
            toks[j, : len(q) + 2] = torch.tensor([BOS] + q + [EOS])
        ct = torch.from_numpy(np.asarray(c, np.float32)).reshape(1, -1).expand(len(seqs), -1)
        mu, _ = self.net.prior_params(ct)
        logits, _ = self.net.step(toks[:, :-1], torch.cat([ct, mu], -1), None)
        logits[..., torch.from_numpy(self.novel)] = -1e9  # novel words only come with concepts
        lp = F.log_softmax(logits, -1).gather(2, toks[:, 1:, None])[..., 0]
        mask = toks[:, 1:] != PAD
        return (lp * mask).sum(1).double().numpy(), mask.sum(1).numpy().astype(np.int64)

    @torch.no_grad()
    def sample(self, c: np.ndarray, n: int = 5, top_p: float = 0.9, temperature: float = 1.0,
               seed: int | None = None, concepts: np.ndarray | None = None) -> list[str]:
        """``n`` captions of one photo: z drawn from the prior p(z | c), words by
        nucleus sampling (Holtzman et al. 2020).

        Args:
            c: (D,) float32 aligned image embedding.
            n: number of samples.
            top_p: nucleus probability mass.
            temperature: softmax temperature.
            seed: make the draw reproducible.
            concepts: optional (1000,) ImageNet posteriors of the photo (the concept-word prior).

        Returns:
            list of ``n`` sentences (duplicates possible but unlikely).
        """
        if concepts is None or self.concept_weight <= 0:  # the learnt words only: the draws of before
            out = nucleus_sample(self.net, c, n, top_p, temperature, seed, self.max_len,
                                 n_words=len(self.vocab) - int(self.novel.sum()))
        else:
            bias, groups = self._bias(concepts, 1)
            out = nucleus_sample(self.net, c, n, top_p, temperature, seed, self.max_len, bias, groups)
        return [detokenize(self._words(o)) for o in out]

    def caption(self, c: np.ndarray, beam: int | None = None, rerank: str | None = "auto",
                neighbours: int = CAPTION_NEIGHBOURS, length_penalty: float = 0.7, lp_form: str = "power",
                text_encoder=None, concepts: np.ndarray | None = None) -> str:
        """The single best caption of one photo: beam search, then re-ranking of its n-best list.

        Args:
            c: (D,) float32 aligned image embedding, L2-normalised.
            beam: beam width (``None``: ``RERANK_BEAM`` when re-ranking, else ``CAPTION_BEAM``);
                length_penalty, lp_form: the beam's length normalisation (:func:`length_normalise`).
            rerank: ``"neighbours"``: the candidate with the highest CIDEr-D against the captions of
                the ``neighbours`` nearest photos of :attr:`bank` (consensus re-ranking, Devlin et
                al. 2015); ``"mbr"``: the candidate with the highest mean CIDEr-D against the other
                candidates (minimum Bayes risk, Kumar & Byrne 2004); ``"alignment"``: the candidate
                whose aligned text embedding is closest to ``c`` (needs ``text_encoder``, an
                encoder with ``encode_texts``); ``None`` / ``"none"``: the beam's best;
                ``"auto"``: ``"neighbours"`` when a bank is loaded, else ``None``.
            concepts: optional (1000,) ImageNet posteriors of the photo: the concept-word prior
                biases the beam (:mod:`retrieval.captioning.concept_words`).

        Returns:
            a clean sentence. Deterministic for a given input.

        Raises:
            ValueError: unknown ``rerank``, ``neighbours`` without a bank, ``alignment`` without an encoder.
        """
        if rerank == "auto":
            rerank = "neighbours" if self.bank is not None else None
        if beam is None:
            beam = CAPTION_BEAM if rerank in (None, "none") else RERANK_BEAM
        cands = [s for s, _ in self.beam_candidates(c, beam, length_penalty, lp_form, concepts)]
        if rerank in (None, "none") or len(cands) == 1:
            if rerank not in (None, "none", "neighbours", "mbr", "alignment"):
                raise ValueError(f"unknown re-ranking {rerank!r}")
            return cands[0]
        if rerank == "neighbours":
            if self.bank is None:
                raise ValueError("neighbour re-ranking needs a caption bank made with this captioner's encoder "
                                 "(python scripts/train/build_caption_bank.py)")
            score = cider_against(cands, self.bank.neighbour_captions(c, neighbours), *self.bank.document_frequencies())
        elif rerank == "mbr":
            score = consensus_cider(cands)
        elif rerank == "alignment":
            if text_encoder is None:
                raise ValueError("alignment re-ranking needs the encoder")
            score = np.asarray(text_encoder.encode_texts(cands), np.float32) @ np.asarray(c, np.float32)
        else:
            raise ValueError(f"unknown re-ranking {rerank!r}: use neighbours, mbr, alignment or none")
        return cands[int(np.argmax(score))]  # ties: the beam's order

    def caption_embeddings(self, embs: np.ndarray, beam: int = INDEX_BEAM, rerank: str | None = None,
                           concepts: np.ndarray | None = None) -> list[str]:
        """The caption ``retr index`` stores for each row of (N, D) float32 aligned image embeddings:
        :meth:`caption` with beam ``INDEX_BEAM`` and no re-ranking by default (the cheap decoding);
        ``concepts``: optional (N, 1000) ImageNet posteriors (the concept-word prior)."""
        embs = np.asarray(embs, np.float32)
        post = [None] * len(embs) if concepts is None else np.asarray(concepts, np.float32).reshape(len(embs), 1000)
        return [self.caption(e, beam, rerank, concepts=p) for e, p in zip(embs, post)]


def open_captioner(weights: str | Path | None = None) -> "Captioner | AttendCaptioner":
    """Load a captioner checkpoint of either kind: an attention captioner
    (:class:`~retrieval.captioning.attend_captioner.AttendCaptioner`, ``config["kind"] == "attend"``)
    or a pooled one (:class:`Captioner`, the checkpoints of before).

    Raises:
        CaptionerError: missing or invalid checkpoint (one line naming the file).
    """
    path = Path(weights) if weights else DEFAULT_CAPTIONER
    if not path.is_file():
        raise CaptionerError(f"{path}: captioner weights not found")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        kind = ck["config"].get("kind")
    except Exception as e:  # noqa: BLE001
        raise CaptionerError(f"{path}: not a retr captioner checkpoint ({e.__class__.__name__})") from None
    return AttendCaptioner(ck, path) if kind == ATTEND_KIND else Captioner(path)


def shipped_captioners(pooled: bool = False):
    """The shipped captioner checkpoints that load, one at a time: the attention captioners
    (``captioner-attend-*.pt``) first; ``pooled``: those left out."""
    attend = lambda f: f.name.startswith("captioner-attend-")  # noqa: E731
    for cand in sorted(WEIGHTS_DIR.glob("captioner-*.pt"), key=lambda f: (not attend(f), f.name)):
        if pooled and attend(cand):
            continue
        try:
            yield open_captioner(cand)
        except CaptionerError:
            continue


def _made_for(cap, encoder_id: str, encoder=None):
    """``cap`` when it reads ``encoder_id``'s embeddings, else its view through ``encoder``'s first backbone
    (:func:`~retrieval.captioning.first_backbone.first_backbone_view`), else None."""
    if cap.encoder_id == encoder_id:
        return cap
    return first_backbone_view(cap, encoder) if encoder is not None else None


def load_captioner(weights: str | Path | None = None, encoder_id: str | None = None,
                   bank: str | Path | None = None, encoder=None, pooled: bool = False):
    """Load a captioner and check it was trained on ``encoder_id``'s embeddings.

    Args:
        weights: a checkpoint; ``None``: the shipped captioner made for ``encoder_id``, the attention
            captioner first (``captioner-attend-fast.pt``, for the default encoder, and for the ``best``
            preset through its first backbone when ``encoder`` is given,
            :mod:`retrieval.captioning.first_backbone`), then the pooled ones (``captioner-default.pt``,
            ``captioner-best.pt``); with no ``encoder_id`` either, the pooled ``captioner-default.pt``,
            which decodes a stored embedding alone (the attention captioner also reads the photo's spatial
            maps, which only the CLI's and the indexer's paths give it).
        encoder_id: the encoder whose image embeddings it will decode.
        encoder: that encoder (lets the ``best`` preset use the attention captioner); optional.
        pooled: only the pooled shipped captioners (the index-free paths that decode a stored
            embedding alone: evaluation scripts, caption banks).
        bank: a :class:`CaptionBank` file (default: the shipped one); attached as ``cap.bank``
            only when made with the captioner's encoder, so :meth:`Captioner.caption`
            re-ranks by neighbours' captions only where that is meaningful.

    Raises:
        CaptionerError: missing/invalid weights or bank, or trained for another encoder.
    """
    cap = None
    if weights is None and encoder_id is not None:
        cap = next((m for c in shipped_captioners(pooled) if (m := _made_for(c, encoder_id, encoder))), None)
    if cap is None:
        cap = open_captioner(weights)
        if encoder_id is not None:
            cap = _made_for(cap, encoder_id, encoder) or cap
    if encoder_id is not None and cap.encoder_id != encoder_id:
        raise CaptionerError(f"{cap.path}: captioner was trained on encoder {cap.encoder_id}, not {encoder_id}; "
                             f"train one with `retr train-captioner`")
    if bank is None and DEFAULT_BANK.is_file():
        bank = DEFAULT_BANK
    if bank and isinstance(cap, Captioner):  # the attention captioner does not re-rank
        b = CaptionBank(bank)
        if b.encoder_id == cap.encoder_id:  # the bank's photo embeddings live in the captioner's encoder space
            cap.bank = b
    return cap
