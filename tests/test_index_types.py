"""`retr index --index-type auto|flat|hnsw|ivf`: same answers as flat, recorded, rebuilt on change;
the database stays the source of truth; a damaged FAISS file is rebuilt."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import DEMO, run_retr


def _synthetic_index(path, n=3000, dim=64, seed=0):
    """An index folder whose photos table holds ``n`` random unit vectors (no encoder needed)."""
    from retrieval.store.database import Photo, Store, now_iso

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim)).astype(np.float32)
    v = centres[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    st = Store(path, create=True)
    with st.session() as s:
        st.set_meta(s, "encoder_id", "synthetic@1")
        st.set_meta(s, "dim", str(dim))
        s.add_all(Photo(path=f"/p/{i}.jpg", size=1, mtime=0.0, hash=str(i), width=1, height=1, indexed_at=now_iso(),
                        vector=v[i].tobytes()) for i in range(n))
        st.set_meta(s, "dirty", "0")
        s.commit()
    return st, v


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_types_match_flat(tmp_path, kind):
    from retrieval.store import ann
    from retrieval.search import Index

    st, v = _synthetic_index(tmp_path)
    with st.session() as s:
        st.set_meta(s, "index_type", kind)
        s.commit()
    st.write_faiss("photos")
    st.write_faiss("texts")
    ix = Index(tmp_path)
    assert ann.kind_of(ix._index("photos")) == kind and not ix.rebuilt
    rng = np.random.default_rng(1)
    queries = v[rng.choice(len(v), 50, replace=False)] + 0.1 * rng.standard_normal((50, v.shape[1])).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact_top = np.argsort(-(queries @ v.T), axis=1)[:, :10] + 1  # row ids start at 1
    hits = [ix.search_vector(q, 10) for q in queries]
    assert all(h[0].id == e[0] for h, e in zip(hits, exact_top))
    rec = np.mean([len({x.id for x in h} & set(e)) / 10 for h, e in zip(hits, exact_top)])
    assert rec >= 0.95
    # re-ranked scores are exact cosines from the stored float32 vectors
    h = hits[0][0]
    assert abs(h.score - float(queries[0] @ v[h.id - 1])) < 1e-5


def test_auto_is_flat_for_small_indexes_and_resolves_by_size():
    from retrieval.store import ann

    assert ann.resolve(None, 10) == "flat" and ann.resolve("auto", ann.AUTO_FLAT_MAX) == "hnsw"
    assert ann.resolve("ivf", 10) == "ivf"
    with pytest.raises(ann.IndexTypeError):
        ann.resolve("lsh", 10)


def test_database_is_source_of_truth_and_damaged_file_rebuilt(tmp_path):
    from retrieval.store import ann
    from retrieval.search import Index

    st, v = _synthetic_index(tmp_path, n=500)
    with st.session() as s:
        st.set_meta(s, "index_type", "hnsw")
        s.commit()
    st.write_faiss("photos")
    st.write_faiss("texts")
    (tmp_path / "photos.faiss").write_bytes(b"not a faiss file")
    ix = Index(tmp_path)
    top = ix.search_vector(v[7], 3)
    assert ix.rebuilt and top[0].id == 8 and ann.kind_of(ix._index("photos")) == "hnsw"
    # a FAISS file of the wrong type (another run's, or a flat file after --index-type hnsw) is not trusted
    with st.session() as s:
        st.set_meta(s, "index_type", "flat")
        s.commit()
    st.write_faiss("photos")
    with st.session() as s:
        st.set_meta(s, "index_type", "ivf")
        s.commit()
    ix = Index(tmp_path)
    assert ix.search_vector(v[9], 1)[0].id == 10 and ix.rebuilt and ann.kind_of(ix._index("photos")) == "ivf"


def test_cli_index_type_recorded_switch_rebuilds(tmp_path, photo_dir):
    from retrieval.store import ann
    from retrieval.search import Index

    idx = tmp_path / "idx"
    p = run_retr("index", photo_dir, "--index", idx, "--no-captions", "--index-type", "hnsw", check=0)
    assert "added 4" in p.stdout
    flat_top = run_retr("search", "a cat", "--index", idx, "-k", "4", check=0).stdout.split("\n")[0]
    ix = Index(idx)
    assert ix.reader.get_meta("index_type") == "hnsw" and ann.kind_of(ix._index("photos")) == "hnsw"
    assert not ix.rebuilt
    mtime = (idx / "photos.faiss").stat().st_mtime_ns
    run_retr("index", photo_dir, "--index", idx, "--no-captions", check=0)  # no change: type kept, file kept
    assert (idx / "photos.faiss").stat().st_mtime_ns == mtime
    assert Index(idx).reader.get_meta("index_type") == "hnsw"
    run_retr("index", photo_dir, "--index", idx, "--no-captions", "--index-type", "flat", check=0)
    ix = Index(idx)
    assert ann.kind_of(ix._index("photos")) == "flat" and not ix.rebuilt
    assert run_retr("search", "a cat", "--index", idx, "-k", "4", check=0).stdout.split("\n")[0] == flat_top
    p = run_retr("index", photo_dir, "--index", idx, "--index-type", "annoy", check=2)
    assert "--index-type must be one of" in p.stderr


def test_index_folder_rejects_unknown_type(tmp_path, encoder):
    from retrieval.store import ann
    from retrieval.indexing.indexer import index_folder

    with pytest.raises(ann.IndexTypeError):
        index_folder(DEMO / "cat.jpg", tmp_path, encoder=encoder, index_type="kd-tree")
