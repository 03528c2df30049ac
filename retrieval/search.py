"""Query an index: text -> image, image -> image, and either -> text (captions)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from retrieval.io import paths
from retrieval.store import ann
from retrieval.io.exif import camera_name
from retrieval.io.files import is_image_name
from retrieval.store.faiss_file import check_encoder, read_faiss
from retrieval.store.queries import open_sqlite_reader
from retrieval.store.subset import search_filtered
from retrieval.query.operators import combine, split_weight
from retrieval.errors import QueryError


def looks_like_a_path(query: str) -> bool:
    """True when a query reads as a file path rather than words: it holds a folder separator
    (``/``, or the system's own) or ends with an image extension (``beach.jpg``)."""
    q = query.strip()
    return "/" in q or os.sep in q or is_image_name(q)


@dataclass
class Hit:
    """One search result.

    Attributes:
        score: cosine similarity in [-1, 1] (inner product of L2-normalised vectors).
        id: row id in the index (photo id, or text id for text results).
        path: the photo's absolute path (for a text result: the photo it belongs to, or None).
        text: the caption, for text results; for photo results, the photo's generated caption if any.
        kind: ``"photo"`` or ``"text"``.
        source: for text results, ``"captions"`` or ``"generated"``.
        photo_id: the photo's id (for a text result: the photo it belongs to, or None).
        taken: when the photo was taken, local ``YYYY-MM-DDTHH:MM:SS`` (EXIF, else the file's time), or None.
        place: where (``Oslo, Norway``), from the photo's GPS position, or None.
        camera: the camera's make and model, or None.
        match: for fused word -> photo results: the calibrated probability in [0, 1] that the photo
            shows what the query asks for (:mod:`retrieval.concepts.calibration`); else None.
        concepts: for fused results: the photo's ImageNet concepts, ``[{"label", "synset", "p"}]``.
        objects: for fused results: the COCO objects detected in the photo, ``[{"label", "score", "count"}]``
            (None: not through the detector yet).
        missing: the photo's file is no longer on disk (deleted or moved since the last ``retr index``).
    """

    score: float
    id: int
    path: str | None
    text: str | None = None
    kind: str = "photo"
    source: str | None = None
    photo_id: int | None = None
    taken: str | None = None
    place: str | None = None
    camera: str | None = None
    match: float | None = None
    concepts: list | None = None
    objects: list | None = None
    missing: bool = False

    def to_dict(self) -> dict:
        """The hit as JSON-ready values: ``path`` readable (bytes of the name that are not UTF-8
        replaced by U+FFFD) and ``path_b64``, the path's raw bytes in base64 (lossless; see
        :mod:`retrieval.io.paths`)."""
        d = asdict(self)
        d["path"], d["path_b64"] = paths.readable(self.path), paths.to_b64(self.path)
        return d


class Index:
    """A read-only handle on an index folder.

    The encoder that built the index is loaded lazily, only when a query needs
    embedding, and must be the same (name and version) as the index records.
    An SQLite index is read for queries with the standard library's ``sqlite3``
    (no SQLAlchemy import: a faster cold start); :attr:`store`, the full
    SQLAlchemy :class:`retrieval.store.database.Store`, is opened on first use.

    Args:
        path: index folder.
        encoder: an encoder to use instead of the recorded one (must have the same id).
        db_url: SQLAlchemy URL of the database holding the index's tables; None:
            ``$RETR_DB`` if set, else ``path/retr.sqlite``. FAISS files are read from ``path``.

    Raises:
        StoreError: no index there, or it is corrupt or of another format.
    """

    def __init__(self, path: str | Path, encoder=None, db_url: str | None = None):
        self.path = Path(path)
        self._db_url = db_url
        self._store = None
        #: read-only queries: a stdlib-sqlite3 reader for the default SQLite file, else the Store
        self.reader = None
        if db_url is None and not os.environ.get("RETR_DB"):
            self.reader = open_sqlite_reader(self.path)
        if self.reader is None:
            self.reader = self.store  # opens (and checks, migrates) the database; raises StoreError
        self._encoder = encoder
        self._faiss = {}
        self._text_encoder = None
        self.rebuilt = False
        #: photos the last search's filters kept (None: that search had no filters)
        self.matched: int | None = None
        self._ranker = None
        self._written: tuple | None = None  # what the index's meta said when the FAISS indexes were loaded
        #: one-line notes for the user from the last search (e.g. how to add the concept channel)
        self.notes: list[str] = []
        #: the last word search's "no good match" verdict (see :mod:`retrieval.concepts.calibration`)
        self.no_match = False
        #: the match at or above which the last word search's results are good matches (None: no calibrated match)
        self.match_threshold: float | None = None

    @property
    def store(self):
        """The index's :class:`retrieval.store.database.Store` (SQLAlchemy; opened on first use)."""
        if self._store is None:
            from retrieval.store.database import Store

            self._store = Store(self.path, db_url=self._db_url)
        return self._store

    @property
    def encoder(self):
        if self._encoder is None:
            from retrieval.encoders.base import load_encoder

            spec = self.reader.get_meta("encoder_spec")
            self._encoder = load_encoder(spec or None)
        check_encoder(self.reader.get_meta("encoder_id"), self._encoder.id, self.path)
        return self._encoder

    @property
    def text_encoder(self):
        """The encoder for text queries: the ONNX export of the index's encoder when
        there is one (no torch import), else the encoder itself."""
        if self._text_encoder is None:
            from retrieval.encoders import onnx_runtime

            want = self.reader.get_meta("encoder_id")
            if self._encoder is None and want and onnx_runtime.has_export(want):
                try:
                    self._text_encoder = onnx_runtime.OnnxTextEncoder(onnx_runtime.export_dir(want), prepack=False)
                except Exception:  # noqa: BLE001 - a damaged export: fall back to torch
                    self._text_encoder = self.encoder
            else:
                self._text_encoder = self.encoder
        return self._text_encoder

    def __len__(self) -> int:
        return self.reader.count("photos")

    def _drop_if_changed(self) -> None:
        """Forget the loaded FAISS indexes and the ranker when another process has written the index since
        they were loaded (a ``retr index`` or a watcher finished an update): a long-lived ``Index`` (``retr
        serve``) then sees new photos. Costs four small ``meta`` reads."""
        key = tuple(self.reader.get_meta(k) for k in ("faiss_photos", "faiss_texts", "dirty", "updated_at"))
        if key != self._written:
            self._faiss, self._ranker, self._written = {}, None, key

    def _index(self, table: str):
        self._drop_if_changed()
        if table not in self._faiss:
            idx, rebuilt = read_faiss(self.reader, table)
            self.rebuilt |= rebuilt
            self._faiss[table] = idx
        return self._faiss[table]

    def embed_query(self, query, max_megapixels: float = 200.0, as_text: bool = False) -> tuple[np.ndarray, str]:
        """Turn a query into a (D,) float32 L2-normalised vector.

        A ``str``/``Path`` naming an existing file is an image query, and so is ``b64:BASE64``
        naming a file by its path's raw bytes (a hit's ``path_b64``); a string that
        :func:`looks_like_a_path` but names no file is refused (a mistyped photo path must not
        silently become a word search); other strings, and any string with ``as_text``, are
        text queries; a PIL image or a vector is used as is.

        Returns:
            (vector, kind) where kind is ``"text"`` or ``"image"``.

        Raises:
            QueryError: empty text, a path-like query naming no file, or a file that is not a
                readable image.
        """
        if isinstance(query, str) and not as_text and query.startswith(paths.QUERY_B64_PREFIX):
            query = b64_query_path(query)
        if isinstance(query, np.ndarray):
            v = np.asarray(query, np.float32).reshape(-1)
            return v / max(float(np.linalg.norm(v)), 1e-12), "vector"
        if hasattr(query, "convert") and hasattr(query, "size"):
            return self.encoder.encode_images([query.convert("RGB")])[0], "image"
        could_be_file = isinstance(query, str) and not as_text and len(query) < 4096 and "\0" not in query
        if could_be_file and os.path.isdir(query):
            raise QueryError(f"{paths.display(query)}: is a folder; give words, or the path of one photo")
        if isinstance(query, Path) or (could_be_file and os.path.isfile(query)):  # any name, newlines too
            from retrieval.errors import DecodeError
            from retrieval.io.decode import load_image

            try:
                im = load_image(query, max_megapixels=max_megapixels)
            except DecodeError as e:
                raise QueryError(f"{paths.display(e.path)}: query file is not a readable image ({e.reason})") from None
            return self.encoder.encode_images([im])[0], "image"
        text = str(query)
        if not text.strip():
            raise QueryError("empty query: give some words, or the path of a photo")
        if not as_text and looks_like_a_path(text):
            raise QueryError(f"{paths.display(text.strip())}: no such image file (a query with a folder separator or "
                             f"an image extension is read as a photo path; add --as-text to search these words)")
        return self.text_encoder.encode_texts([text])[0], "text"

    def search(self, query, k: int = 10, texts: bool = False, as_text: bool = False, filters=None,
               sort: str = "score", add=(), subtract=(), text_only: bool = False,
               channels: tuple[str, ...] | None = None, max_megapixels: float = 200.0) -> list[Hit]:
        """Find the ``k`` photos (or texts, with ``texts=True``) closest to ``query``.

        Words searching photos are ranked by fused channels (:mod:`retrieval.concepts.ranking`: the
        aligned embedding and the photos' ImageNet concepts by default), with a calibrated ``match``
        per hit and :attr:`no_match` set; photo queries, vectors, ``texts``, filters, ``sort="date"`` and
        ``add``/``subtract`` use the embedding alone.

        Args:
            query: words, a path to a photo, a PIL image, or a (D,) vector.
            k: number of results (>= 1); more than the gallery returns the whole gallery.
            texts: search indexed captions instead of photos.
            as_text: a string query is words even if a file has that name.
            filters: a :class:`retrieval.query.filters.Filters`: only photos that pass are searched
                (:attr:`matched` then says how many passed).
            sort: ``"score"`` (best first) or ``"date"`` (the ``k`` best, newest first; undated last).
            add, subtract: words or photo paths (``W:TERM`` weighs a term) added to or subtracted from
                the query's embedding (:mod:`retrieval.query.operators`).
            text_only: search only the text read in photos (OCR), lexically.
            max_megapixels: a query photo larger than this is refused (QueryError).

        A words query for photos also counts the query's words found in each photo's recognised
        text (:mod:`retrieval.ocr.fusion`); such hits have ``source == "ocr"``.
            channels: for words: the channels to fuse (default
                :data:`retrieval.concepts.fusion.DEFAULT_CHANNELS`; any of ``CHANNELS``);
                ``("embedding",)`` gives raw cosines.

        Plain words (no filters, date sort or operators) are ranked by the concept fusion, and photos whose
        recognised text holds the query's words are raised on top of it (:func:`retrieval.ocr.fusion.boosted`).

        Returns:
            list of :class:`Hit`, best first.

        Raises:
            QueryError: bad query, k < 1, an unknown sort, or filters with ``texts``.
            StoreError: the index cannot be used.
        """
        if k < 1:
            raise QueryError(f"k must be at least 1 (got {k})")
        self.notes, self.no_match, self.matched, self.match_threshold = [], False, None, None
        from retrieval.concepts.fusion import CHANNELS, DEFAULT_CHANNELS

        channels = tuple(channels or DEFAULT_CHANNELS)
        unknown = [c for c in channels if c not in CHANNELS]
        if unknown:
            raise QueryError(f"unknown channel {unknown[0]!r}; choose from {', '.join(CHANNELS)}")
        if text_only:
            return self.search_photo_text(str(query), k)
        if isinstance(query, str) and not as_text and query.startswith(paths.QUERY_B64_PREFIX):
            query = b64_query_path(query)  # a photo named by its path's bytes: an image query
        plain_words = not (texts or channels == ("embedding",) or not isinstance(query, str)
                           or self._names_a_file(query, as_text) or filters or sort != "score" or add or subtract)
        if plain_words and query.strip():
            if not as_text and looks_like_a_path(query):
                raise QueryError(f"{paths.display(query.strip())}: no such image file (a query with a folder separator "
                                 f"or an image extension is read as a photo path; add --as-text to search these words)")
            return mark_missing(self._search_fused(query, k, channels))
        vec, kind = self.embed_query(query, as_text=as_text, max_megapixels=max_megapixels)
        if add or subtract:
            vec = self.steer(vec, add, subtract, as_text)
        if texts or kind != "text" or filters is not None or sort != "score" or channels == ("embedding",):
            return self.search_vector(vec, k, texts, filters=filters, sort=sort)
        return mark_missing(self.search_fused(str(query), vec, k))

    def search_photo_text(self, query: str, k: int = 10) -> list[Hit]:
        """Photos whose recognised text (OCR) holds the query's words, most words first (score: the share
        of the query's words found, 0..1); no embedding involved.

        Raises:
            QueryError: the query has no word to look for."""
        from retrieval.ocr.fusion import coverage, query_words

        words = query_words(query)
        if not words:
            raise QueryError(f"{query!r}: no word to look for in the text of photos")
        matches = self.reader.ocr_matching(words, max(200, k))
        ranked = sorted(((coverage(words, t), -n, pid, t) for n, (pid, t) in enumerate(matches)), reverse=True)[:k]
        rows = self.reader.photo_rows([pid for _, _, pid, _ in ranked])
        return with_metadata([Hit(round(c, 4), pid, rows[pid][0], t, "photo", "ocr", pid)
                              for c, _, pid, t in ranked if pid in rows], self.reader.photo_metadata(rows))

    def search_fused(self, query: str, vec: np.ndarray, k: int = 10) -> list[Hit]:
        """:meth:`search_vector` over photos, fused with the query's words found in their recognised text."""
        from retrieval.ocr.fusion import fused_scores, query_words

        words = query_words(query)
        matches = self.reader.ocr_matching(words, 200) if words else []
        if not matches:
            return self.search_vector(vec, k)
        pool = self.search_vector(vec, max(k, 50))
        semantic = {h.id: h.score for h in pool}
        extra = [pid for pid, _ in matches if pid not in semantic]
        if extra:
            ids, vecs = self.reader.vectors_for("photos", extra)
            semantic.update({int(i): float(v @ vec) for i, v in zip(ids, vecs)})
        fused = fused_scores(semantic, matches, words)
        best = sorted(fused, key=lambda pid: -fused[pid][0])[:k]
        rows = self.reader.photo_rows(best)
        return with_metadata([Hit(fused[pid][0], pid, rows[pid][0], rows[pid][1], "photo",
                                  "ocr" if fused[pid][1] else None, pid) for pid in best if pid in rows],
                             self.reader.photo_metadata(rows))
    @staticmethod
    def _names_a_file(query: str, as_text: bool) -> bool:
        return (not as_text and "\0" not in query and len(query) < 4096  # any name, newlines too
                and (os.path.isfile(query) or os.path.isdir(query)))

    @property
    def ranker(self):
        """The index's :class:`retrieval.concepts.ranking.FusedRanker` (loaded on first use, and again after
        another process wrote the index)."""
        self._drop_if_changed()
        if self._ranker is None:
            from retrieval.concepts.ranking import FusedRanker
            from retrieval.concepts.scoring import ConceptMatcher
            from retrieval.encoders import onnx_runtime

            want = self.reader.get_meta("encoder_id")
            names = onnx_runtime.export_dir(want) / onnx_runtime.CONCEPT_NAMES_FILE if want else None
            matcher = None
            if names is not None and names.is_file():
                try:
                    matcher = ConceptMatcher.load(names)
                except (OSError, KeyError, ValueError):  # a damaged export: the embedding alone
                    matcher = None
            self._ranker = FusedRanker(self.reader, matcher, objects=self._object_channel(want))
        return self._ranker

    def _object_channel(self, encoder_id: str | None):
        """The detector channel of this index (:class:`retrieval.detection.channel.ObjectChannel`), or None
        when no photo has been through the detector or the encoder has no sentence output."""
        from retrieval.detection.channel import ObjectChannel
        from retrieval.detection.scoring import load_object_matcher
        from retrieval.encoders import onnx_runtime

        if not encoder_id or self.reader.count_objects() == 0:
            return None
        folder = onnx_runtime.export_dir(encoder_id)
        if not (folder / onnx_runtime.CONCEPT_NAMES_FILE).is_file():  # no sentence output to match names with
            return None
        from retrieval.concepts.fusion import FusionWeights

        w = FusionWeights.load()
        try:
            te = self.text_encoder if hasattr(self.text_encoder, "encode_texts_and_sentences") else None
            matcher = load_object_matcher(folder, te, threshold=w.object_threshold)
        except (OSError, KeyError, ValueError):
            return None
        return ObjectChannel(self.reader.object_rows(), matcher)

    def _search_fused(self, text: str, k: int, channels: tuple[str, ...]) -> list[Hit]:
        from retrieval.concepts.ranking import NO_CONCEPTS_HINT

        te = self.text_encoder
        if hasattr(te, "encode_texts_and_sentences"):
            q, s = te.encode_texts_and_sentences([text])
            vec, sentence = q[0], s[0]
        else:  # an encoder without a sentence encoder (hf:): no concept channel
            vec, sentence = te.encode_texts([text])[0], None
        ranker = self.ranker
        if "concepts" in channels and not ranker.has_concepts and len(self) and sentence is not None:
            self.notes.append(NO_CONCEPTS_HINT)
        in_text = self._text_coverage(text)
        ranked = ranker.rank(self._index("photos"), vec, sentence, k, channels, text=text, extra_ids=list(in_text))
        if in_text:
            ranked = self._boost_by_text(ranked, in_text, k)
        self.no_match = ranker.no_match(ranked)
        if ranked and ranked[0].match is not None:
            self.match_threshold = ranker.calibration.no_match
        ids = [r.id for r in ranked]
        rows = self.reader.photo_rows(ids)
        concepts = ranker.concepts_of(ids) if ranker.has_concepts else {}
        objects = ranker.objects_of(ids)
        hits = [Hit(r.score, r.id, rows[r.id][0], rows[r.id][1], source="ocr" if r.id in in_text else None,
                    photo_id=r.id, match=r.match,
                    concepts=concepts.get(r.id), objects=objects.get(r.id)) for r in ranked if r.id in rows]
        return with_metadata(hits, self.reader.photo_metadata(rows))

    def _text_coverage(self, text: str) -> dict[int, float]:
        """{photo id: share of the query's words its recognised text (OCR) holds}, for photos holding any."""
        from retrieval.ocr.fusion import coverage, query_words

        words = query_words(text)
        found = {pid: coverage(words, t) for pid, t in self.reader.ocr_matching(words, 200)} if words else {}
        return {pid: c for pid, c in found.items() if c > 0}

    @staticmethod
    def _boost_by_text(ranked: list, in_text: dict[int, float], k: int) -> list:
        """``ranked`` (every candidate) with the photos whose text holds the query's words raised
        (:func:`retrieval.ocr.fusion.boosted`), best first, the ``k`` best."""
        from dataclasses import replace

        from retrieval.ocr.fusion import boosted

        out = [replace(r, **dict(zip(("score", "match"), boosted(r.score, r.match, in_text.get(r.id, 0.0)))))
               for r in ranked]
        out.sort(key=lambda r: -(r.match if r.match is not None else r.score))
        return out[:k]

    def steer(self, vec: np.ndarray, add=(), subtract=(), as_text: bool = False) -> np.ndarray:
        """``vec`` ((D,) float32) plus the embeddings of the ``add`` terms minus those of ``subtract``
        (words or photo paths, ``W:TERM`` weighted), normalised (:func:`retrieval.query.operators.combine`).

        Raises:
            QueryError: an empty term, a term that is not a readable photo or words, or parts that cancel out.
        """
        try:
            parts = [[(w, self.embed_query(t, as_text=as_text)[0]) for w, t in map(split_weight, terms)]
                     for terms in (add, subtract)]
            return combine(vec, parts[0], parts[1])
        except ValueError as e:
            raise QueryError(str(e)) from None

    def search_vector(self, vec: np.ndarray, k: int = 10, texts: bool = False, filters=None,
                      sort: str = "score") -> list[Hit]:
        """Nearest neighbours of a (D,) float32 L2-normalised vector; see :meth:`search`.

        Flat indexes are exact; HNSW and IVF indexes give ``max(100, 10*k)`` candidates that
        are re-scored exactly with their float32 vectors read from the database
        (:func:`retrieval.store.ann.candidates`, :func:`retrieval.store.ann.rerank`): scores are exact cosines.
        """
        if sort not in ("score", "date"):
            raise QueryError(f"sort must be score or date, not {sort!r}")
        if filters and texts:
            raise QueryError("filters (dates, places, folders, cameras) apply to photos, not to --texts")
        table = "texts" if texts else "photos"
        idx = self._index(table)
        q = np.ascontiguousarray(np.asarray(vec, np.float32).reshape(-1))
        self.matched = None
        if filters:
            scores, ids, self.matched = search_filtered(self.reader, idx, q, k, *filters.sql(),
                                                        with_paths=bool(filters.folder))
        else:
            scores, ids, exact = ann.candidates(idx, q, k)
            if not exact:
                cid, cvec = self.reader.vectors_for(table, ids)
                scores, ids = ann.rerank(q, cid, cvec, k)
        pairs = [(float(sc), int(i)) for sc, i in zip(scores, ids)]
        if texts:
            rows = self.reader.text_rows([i for _, i in pairs])
            hits = [Hit(sc, i, rows[i][2], rows[i][0], "text", rows[i][1], rows[i][3]) for sc, i in pairs if i in rows]
        else:
            rows = self.reader.photo_rows([i for _, i in pairs])
            hits = with_metadata([Hit(sc, i, rows[i][0], rows[i][1], photo_id=i) for sc, i in pairs if i in rows],
                                 self.reader.photo_metadata(rows))
            if sort == "date":
                hits = sorted(hits, key=lambda h: h.taken or "", reverse=True)
        for h in hits:  # one stat a hit: mark the photos deleted or moved since the last index run
            h.missing = h.path is not None and not os.path.exists(paths.path_bytes(h.path))  # any locale
        return hits


def b64_query_path(query: str) -> Path:
    """The photo a ``b64:BASE64`` query names (its path's raw bytes, a hit's ``path_b64``).

    Raises:
        QueryError: not base64, or no such file.
    """
    try:
        path = paths.from_query(query)
    except ValueError as e:
        raise QueryError(str(e)) from None
    if not os.path.isfile(path):
        raise QueryError(f"{paths.display(path)}: no such image file (named by its path's bytes in base64)")
    return Path(path)


def mark_missing(hits: list[Hit]) -> list[Hit]:
    """Set ``missing`` on hits whose file is no longer on disk (one stat a hit, by the path's bytes: any locale)."""
    for h in hits:
        h.missing = h.path is not None and not os.path.exists(paths.path_bytes(h.path))
    return hits


def with_metadata(hits: list[Hit], meta: dict[int, dict]) -> list[Hit]:
    """``hits`` with ``taken``, ``place`` and ``camera`` set from ``meta`` ({photo id: metadata row})."""
    for h in hits:
        m = meta.get(h.photo_id)
        if m:
            h.taken, h.place, h.camera = m.get("taken"), m.get("place"), camera_name(m.get("camera_make"),
                                                                                     m.get("camera_model"))
    return hits
