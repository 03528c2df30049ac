"""Near-duplicate photos in an index (``retr duplicates``): the same photo resized, recompressed,
lightly cropped or edited.

Two photos are near-duplicates when their stored embeddings are almost the same direction
(cosine similarity at least ``threshold``) and their perceptual hashes
(:mod:`retrieval.io.phash`) are not far apart (Hamming distance at most
:data:`MAX_HASH_DISTANCE`), or when their hashes alone are very close (at most
:data:`SURE_HASH_DISTANCE`). Groups are the connected components of that pair relation
(single linkage). Nothing is read from the photo files, and nothing is ever deleted or moved.

The thresholds were chosen on Flickr8k dev photos with edited copies (``scripts/eval/duplicates.py``,
table in ``docs/duplicates.md``). Perceptual hashing: Zauner 2010; grouping by connected components
of a similarity graph as in near-duplicate image detection (Chum, Philbin, Zisserman, BMVC 2008).
"""
from __future__ import annotations

import re

from dataclasses import dataclass, field

import numpy as np

from retrieval.io.phash import HASH_BITS

#: default cosine similarity of the embeddings from which two photos may be near-duplicates
DEFAULT_THRESHOLD = 0.92
#: largest perceptual-hash distance (bits of 64) of a near-duplicate pair found by its embeddings
MAX_HASH_DISTANCE = 20
#: hash distance at or below which two photos are near-duplicates whatever their embeddings say
SURE_HASH_DISTANCE = 12
#: embeddings compared at once (rows of the similarity block: memory is CHUNK x N float32)
CHUNK = 1024
#: most candidate pairs a photo starts (its most similar later photos): the pair list stays O(N), not
#: O(N^2), in a library of look-alikes (screenshots, scans) or at a low threshold; a bigger group is
#: still one group, chained through its members' pairs
MAX_NEIGHBOURS = 32
#: photos from one camera taken at most this many seconds apart (EXIF) form a burst
BURST_SECONDS = 2.0


@dataclass
class Member:
    """One photo of a group: its id and path, and how close it is to the group's first photo
    (cosine similarity of the embeddings, perceptual-hash distance in bits; None when unknown)."""

    photo_id: int
    path: str
    similarity: float
    hash_distance: int | None


@dataclass
class Group:
    """Photos that are near-duplicates of each other, the first one the group's reference
    (the largest file, the one with the most pixels kept)."""

    kind: str
    photos: list[Member] = field(default_factory=list)


def hash_bits(hashes: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """The hashes as (N,) uint64 and a (N,) bool mask of those that are known (not None or "")."""
    known = np.array([bool(h) for h in hashes], bool)
    bits = np.array([int(h, 16) if h else 0 for h in hashes], np.uint64)
    return bits, known


def popcount(x: np.ndarray) -> np.ndarray:
    """Bits set in each element of a uint64 array (same shape, int64)."""
    x = np.asarray(x, np.uint64)
    by = np.ascontiguousarray(x.reshape(-1)).view(np.uint8).reshape(-1, 8)
    return np.unpackbits(by, axis=-1).sum(-1).astype(np.int64).reshape(x.shape)


def candidate_pairs(vectors: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i < j) of rows of ``vectors`` ((N, D) float32, L2-normalised) whose cosine similarity is
    at least ``floor``, at most :data:`MAX_NEIGHBOURS` a row i (its most similar rows j > i):
    (i (M,) int64, j (M,) int64, similarity (M,) float32). Exact, in blocks of :data:`CHUNK` rows:
    O(N^2 D) time, O(CHUNK N + N MAX_NEIGHBOURS) memory."""
    v = np.ascontiguousarray(vectors, np.float32)
    out_i, out_j, out_s = [], [], []
    for a in range(0, len(v), CHUNK):
        sims = v[a : a + CHUNK] @ v.T
        sims[np.arange(len(sims))[:, None] + a >= np.arange(len(v))[None, :]] = -np.inf  # pairs i < j only
        ii, jj = np.nonzero(sims >= floor)
        many = np.bincount(ii, minlength=len(sims)) > MAX_NEIGHBOURS
        if many.any():  # those rows keep their most similar later rows only
            ii, jj = _most_similar(sims, ii, jj, many)
        out_i.append(ii + a)
        out_j.append(jj)
        out_s.append(sims[ii, jj])
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return (np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64),
            np.concatenate(out_s).astype(np.float32))


def _most_similar(sims: np.ndarray, ii: np.ndarray, jj: np.ndarray, many: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (ii, jj) of a block, the rows flagged in ``many`` cut to their :data:`MAX_NEIGHBOURS` best."""
    rows = np.flatnonzero(many)
    top = np.argpartition(-sims[rows], MAX_NEIGHBOURS - 1, axis=1)[:, :MAX_NEIGHBOURS]
    keep = ~many[ii]
    return (np.concatenate([ii[keep], np.repeat(rows, MAX_NEIGHBOURS)]),
            np.concatenate([jj[keep], top.reshape(-1)]))


def duplicate_pairs(vectors: np.ndarray, hashes: list[str | None], threshold: float = DEFAULT_THRESHOLD,
                    max_hash_distance: int = MAX_HASH_DISTANCE, sure_hash_distance: int = SURE_HASH_DISTANCE,
                    floor: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The near-duplicate pairs among N photos (rule in the module docstring).

    Args:
        vectors: (N, D) float32 L2-normalised embeddings.
        hashes: N perceptual hashes (16 hex digits; None or "" when unknown: then the embedding alone decides).
        threshold: cosine similarity from which a pair may be near-duplicates.
        max_hash_distance, sure_hash_distance: see the module docstring.
        floor: pairs below this cosine similarity are never compared by hash (default ``min(threshold, 0.7)``).

    Returns:
        (i, j, similarity, hash distance) arrays of the pairs, i < j; distance -1 where a hash is unknown.
    """
    floor = min(threshold, 0.7) if floor is None else floor
    i, j, s = candidate_pairs(vectors, floor)
    bits, known = hash_bits(hashes)
    both = known[i] & known[j]
    dist = np.where(both, popcount(bits[i] ^ bits[j]), -1)
    keep = ((s >= threshold) & (~both | (dist <= max_hash_distance))) | (both & (dist <= sure_hash_distance))
    return i[keep], j[keep], s[keep], dist[keep]


def components(n: int, i: np.ndarray, j: np.ndarray) -> list[list[int]]:
    """Connected components (of two or more nodes) of the graph on ``n`` nodes with edges (i, j),
    each sorted, largest first."""
    parent = list(range(n))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(i.tolist(), j.tolist()):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for a in range(n):
        groups.setdefault(root(a), []).append(a)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


def burst_runs(taken: dict[int, tuple[str, str]], seconds: float = BURST_SECONDS) -> list[list[int]]:
    """Bursts: runs of two or more photos from one camera, each taken at most ``seconds`` after the previous.

    Args:
        taken: {photo id: (camera, local time ``YYYY-MM-DDTHH:MM:SS``)} of the photos with an EXIF date and camera.

    Returns:
        lists of photo ids, in time order; runs in the order of their first photo's time.
    """
    import datetime as dt

    by_camera: dict[str, list[tuple[dt.datetime, int]]] = {}
    for pid, (camera, when) in taken.items():
        try:
            by_camera.setdefault(camera, []).append((dt.datetime.fromisoformat(when), pid))
        except ValueError:
            continue
    runs = []
    for shots in by_camera.values():
        shots.sort()
        run = [shots[0]]
        for prev, cur in zip(shots, shots[1:]):
            if (cur[0] - prev[0]).total_seconds() <= seconds:
                run.append(cur)
            else:
                runs.append(run)
                run = [cur]
        runs.append(run)
    return [[pid for _, pid in r] for r in sorted(r for r in runs if len(r) > 1)]


def find_duplicates(reader, threshold: float = DEFAULT_THRESHOLD) -> tuple[list[Group], int]:
    """Groups of near-duplicate photos in an index.

    Args:
        reader: the index's read queries (:class:`retrieval.store.queries.Queries`: a Store or the
            stdlib reader of :class:`retrieval.search.Index`).
        threshold: cosine similarity of the embeddings from which photos may be near-duplicates.

    Returns:
        (groups, photos without a perceptual hash yet): near-duplicate groups largest first (in each, the
        photo with the most pixels, then the largest file, first, the others by decreasing similarity to it),
        then bursts (kind ``"burst"``: one camera, at most :data:`BURST_SECONDS` apart by EXIF; in time
        order), when the index has EXIF metadata.
    """
    ids, vecs = _all_vectors(reader)
    info = reader.photo_fingerprints()
    hashes = [info[int(k)][3] if int(k) in info else None for k in ids]
    i, j, _, _ = duplicate_pairs(vecs, hashes, threshold)
    bits, known = hash_bits(hashes)
    groups = []
    for comp in _reference_groups(reader, ids, components(len(ids), i, j), info, bits, known):
        ref = comp[0]
        members = []
        for a in comp:
            sim = float(vecs[a] @ vecs[ref])
            d = int(popcount(bits[a] ^ bits[ref])) if known[a] and known[ref] else None
            members.append(Member(int(ids[a]), info[int(ids[a])][0], round(sim, 4), d))
        members[1:] = sorted(members[1:], key=lambda m: -m.similarity)
        groups.append(Group("near-duplicate", members))
    groups += _bursts(reader, ids, vecs, info, bits, known)
    return groups, int(sum(1 for h in hashes if h is None))


def _reference_groups(reader, ids, comps, info, bits, known) -> list[list[int]]:
    """Split chained components so that every member is close to its group's reference (the photo with the
    most pixels, then the largest file): a perceptual-hash distance of at most :data:`MAX_HASH_DISTANCE`
    where both hashes are known, and the same words where both photos have recognised text (different
    screenshots or signs have near-identical embeddings and hashes, but not the same text)."""
    text_of = getattr(reader, "ocr_text", None)
    out = []
    for comp in comps:
        rest = sorted(comp, key=lambda a: (-info[int(ids[a])][1], -info[int(ids[a])][2], info[int(ids[a])][0]))
        texts = {a: text_of(int(ids[a])) or "" for a in rest} if text_of else {}
        while len(rest) > 1:
            ref = rest[0]
            near = [a for a in rest if a == ref or ((not (known[a] and known[ref]) or int(popcount(
                bits[a] ^ bits[ref])) <= MAX_HASH_DISTANCE) and same_text(texts.get(a, ""), texts.get(ref, "")))]
            if len(near) > 1:
                out.append(near)
            rest = [a for a in rest if a not in near]
    return sorted(out, key=len, reverse=True)


def same_text(a: str, b: str, min_overlap: float = 0.5) -> bool:
    """Whether two photos' recognised texts could be one photo's: True when either has fewer than 3 words
    (of 3 letters or more), else when at least ``min_overlap`` of the smaller set of words is shared."""
    wa, wb = (set(w for w in re.findall(r"\w{3,}", t.lower())) for t in (a, b))
    if min(len(wa), len(wb)) < 3:
        return True
    return len(wa & wb) / min(len(wa), len(wb)) >= min_overlap


def _bursts(reader, ids, vecs, info, bits, known) -> list[Group]:
    if not hasattr(reader, "photo_metadata") or not len(ids):
        return []
    meta = reader.photo_metadata(ids.tolist())
    taken = {pid: (f"{m.get('camera_make') or ''}|{m.get('camera_model') or ''}", m["taken"]) for pid, m in meta.items()
             if m.get("taken_source") == "exif" and m.get("taken") and (m.get("camera_make") or m.get("camera_model"))}
    row = {int(k): a for a, k in enumerate(ids)}
    out = []
    for run in burst_runs(taken):
        ref = row[run[0]]
        members = []
        for pid in run:
            a = row[pid]
            d = int(popcount(bits[a] ^ bits[ref])) if known[a] and known[ref] else None
            members.append(Member(pid, info[pid][0], round(float(vecs[a] @ vecs[ref]), 4), d))
        out.append(Group("burst", members))
    return out


def _all_vectors(reader) -> tuple[np.ndarray, np.ndarray]:
    chunks = list(reader.iter_vectors("photos"))
    if not chunks:
        return np.zeros(0, np.int64), np.zeros((0, reader.dim() or 0), np.float32)
    return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])


__all__ = ["same_text", "BURST_SECONDS", "CHUNK", "burst_runs", "DEFAULT_THRESHOLD", "Group", "HASH_BITS", "MAX_HASH_DISTANCE", "Member", "SURE_HASH_DISTANCE",
           "candidate_pairs", "components", "duplicate_pairs", "find_duplicates", "hash_bits", "popcount"]
