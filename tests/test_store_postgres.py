"""The store on every database it supports: the embedded SQLite file and a real PostgreSQL server.

The PostgreSQL URL comes from ``$RETR_TEST_PG`` (e.g.
``postgresql+psycopg://retr:retr@127.0.0.1:5432/retr_test``; ``.ci/postgres.sh`` sets up such a
server). When it is unset or the server cannot be reached the PostgreSQL cases are skipped with
the reason, except under CI (``$CI`` set), where they fail. Each test starts from an empty
database: retr's tables are dropped before and after it (one database holds one index).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from conftest import ConstantEncoder, DEMO, DEMO_CAPTIONS, run_retr

PG_ENV = "RETR_TEST_PG"
_pg_state: dict = {}


def _pg_unavailable() -> str | None:
    """Why the PostgreSQL cases cannot run here (None: they can). Checked once per session."""
    if "reason" in _pg_state:
        return _pg_state["reason"]
    url = os.environ.get(PG_ENV)
    reason = None
    if not url:
        reason = (f"${PG_ENV} is not set: no PostgreSQL server to test against (e.g. "
                  f"{PG_ENV}=postgresql+psycopg://retr:retr@127.0.0.1:5432/retr_test; .ci/postgres.sh sets one up)")
    else:
        from retrieval.store.database import safe_url

        try:
            engine = create_engine(url, connect_args={"connect_timeout": 5})
            try:
                with engine.connect() as c:
                    c.execute(text("SELECT 1"))
            finally:
                engine.dispose()
        except Exception as e:  # noqa: BLE001 - any failure means: no server to test against
            msg = str(getattr(e, "orig", None) or e).strip().splitlines()
            reason = f"PostgreSQL at ${PG_ENV}={safe_url(url)} is unreachable ({msg[0] if msg else type(e).__name__})"
    _pg_state["reason"] = reason
    return reason


def _require_pg() -> str:
    reason = _pg_unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; $CI is set, so the PostgreSQL tests must run", pytrace=False)
        pytest.skip(reason)
    return os.environ[PG_ENV]


@dataclass
class Backend:
    name: str
    url: str | None  # what the API gets as db_url: None = the embedded SQLite file in the index folder
    cli_url: str  # an explicit --db URL for the CLI (for SQLite: a file outside the index folder)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    if request.param == "sqlite":
        yield Backend("sqlite", None, f"sqlite:///{tmp_path / 'elsewhere' / 'meta.sqlite'}")
        return
    url = _require_pg()
    from retrieval.store.database import drop_index_tables

    drop_index_tables(url)
    yield Backend("postgres", url, url)
    drop_index_tables(url)


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    for n in ("cat.jpg", "horses.jpg", "rocket.jpg"):
        shutil.copy(DEMO / n, d / n)
    return d


def _exec(backend, idx, sql: str) -> None:
    """Run SQL on the index's database directly (not through a Store, which may refuse to open it)."""
    engine = create_engine(backend.url or f"sqlite:///{idx / 'retr.sqlite'}")
    try:
        with engine.begin() as c:
            c.execute(text(sql))
    finally:
        engine.dispose()


def test_index_incremental_and_search(backend, photos, tmp_path, encoder):
    from retrieval import Index, index_folder
    from retrieval.store.database import Store, head_revision
    from retrieval.store.layout import FORMAT_VERSION, SCHEMA_REVISION

    idx = tmp_path / "idx"
    errors = []
    rep = index_folder(photos, idx, encoder=encoder, captions_file=DEMO_CAPTIONS, db_url=backend.url,
                       on_error=lambda p, r: errors.append(r))
    assert (rep.added, rep.failed) == (3, 0) and rep.captions == 6, rep
    assert errors and "not in the index" in errors[0]  # the demo captions of photos not copied
    assert (idx / "photos.faiss").exists() and (idx / "texts.faiss").exists()
    assert (idx / "retr.sqlite").exists() == (backend.url is None)

    st = Store(idx, db_url=backend.url)
    try:
        assert st.engine.dialect.name == ("sqlite" if backend.name == "sqlite" else "postgresql")
        assert st.count("photos") == 3 and st.count("texts") == 6
        assert st.get_meta("format_version") == str(FORMAT_VERSION) and st.get_meta("encoder_id") == encoder.id
        ids, vecs = st.load_vectors("photos")  # LargeBinary round trip: float32, L2-normalised
        assert vecs.shape == (3, encoder.dim) and vecs.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
        with st.engine.connect() as c:
            assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_REVISION
        assert head_revision() == SCHEMA_REVISION
    finally:
        st.close()

    # incremental: nothing to do, then one new photo and one removed
    rep = index_folder(photos, idx, encoder=encoder, db_url=backend.url)
    assert (rep.added, rep.unchanged, rep.removed) == (0, 3, 0), rep
    shutil.copy(DEMO / "astronaut.jpg", photos / "astronaut.jpg")
    (photos / "rocket.jpg").unlink()
    rep = index_folder(photos, idx, encoder=encoder, db_url=backend.url)
    assert (rep.added, rep.unchanged, rep.removed) == (1, 2, 1), rep

    ix = Index(idx, encoder=encoder, db_url=backend.url)
    assert len(ix) == 3
    hits = ix.search("an astronaut in an orange space suit", k=3)
    assert hits[0].path.endswith("astronaut.jpg") and not ix.rebuilt
    hits = ix.search(str(photos / "horses.jpg"), k=2)  # image -> image
    assert hits[0].path.endswith("horses.jpg") and hits[0].score > 0.99
    texts = ix.search(str(photos / "cat.jpg"), k=3, texts=True)  # image -> text
    assert texts and all(h.kind == "text" and h.source == "captions" for h in texts)
    assert any(h.path.endswith("cat.jpg") for h in texts), texts
    ix.store.close()

    # FAISS files lost: the database still has every vector
    (idx / "photos.faiss").unlink()
    ix = Index(idx, encoder=encoder, db_url=backend.url)
    assert ix.search("a cat", k=1)[0].path.endswith("cat.jpg") and ix.rebuilt
    ix.store.close()


def test_encoder_mismatch_and_rebuild(backend, photos, tmp_path, encoder):
    from retrieval import Index, StoreError, index_folder

    idx = tmp_path / "idx"
    assert index_folder(photos, idx, encoder=ConstantEncoder(encoder.dim), db_url=backend.url).added == 3
    with pytest.raises(StoreError, match="--rebuild") as e:
        index_folder(photos, idx, encoder=encoder, db_url=backend.url)
    assert "other@1" in str(e.value)
    with pytest.raises(StoreError, match="--rebuild"):
        Index(idx, encoder=encoder, db_url=backend.url).encoder

    # --rebuild starts from nothing: the rows of other folders are gone too
    rep = index_folder(DEMO / "cat.jpg", idx, encoder=encoder, rebuild=True, db_url=backend.url)
    assert rep.added == 1
    ix = Index(idx, encoder=encoder, db_url=backend.url)
    assert len(ix) == 1 and ix.store.get_meta("encoder_id") == encoder.id
    assert ix.search("a cat", k=5)[0].path.endswith("cat.jpg")
    ix.store.close()


def test_format_version_error_says_how_to_rebuild(backend, photos, tmp_path, encoder):
    from retrieval import Index, StoreError, index_folder
    from retrieval.store.database import Store

    idx = tmp_path / "idx"
    index_folder(photos, idx, encoder=encoder, db_url=backend.url)
    _exec(backend, idx, "UPDATE meta SET value = '99' WHERE key = 'format_version'")
    for open_it in (lambda: Store(idx, db_url=backend.url), lambda: Index(idx, encoder=encoder, db_url=backend.url),
                    lambda: index_folder(photos, idx, encoder=encoder, db_url=backend.url)):
        with pytest.raises(StoreError) as e:
            open_it()
        msg = str(e.value)
        assert "index format 99" in msg and "retr index PHOTO_FOLDER --rebuild" in msg and "\n" not in msg
    if backend.url:
        assert "***" in msg and "retr:retr@" not in msg  # the URL, without its password
    rep = index_folder(photos, idx, encoder=encoder, rebuild=True, db_url=backend.url)
    assert rep.added == 3
    st = Store(idx, db_url=backend.url)
    assert st.get_meta("format_version") == "1"
    st.close()


def test_damaged_database_says_how_to_rebuild(backend, photos, tmp_path, encoder):
    from retrieval import StoreError, index_folder
    from retrieval.store.database import Store

    idx = tmp_path / "idx"
    index_folder(photos, idx, encoder=encoder, db_url=backend.url)
    _exec(backend, idx, "DROP TABLE texts")
    with pytest.raises(StoreError, match="incomplete.*--rebuild"):
        Store(idx, db_url=backend.url)
    _exec(backend, idx, "UPDATE meta SET value = 'garbage' WHERE key = 'format_version'")
    with pytest.raises(StoreError, match="index format garbage.*--rebuild"):
        Store(idx, db_url=backend.url)
    assert index_folder(photos, idx, encoder=encoder, rebuild=True, db_url=backend.url).added == 3


def test_empty_database_is_no_index(backend, tmp_path):
    from retrieval import Index, StoreError

    with pytest.raises(StoreError, match="no index"):
        Index(tmp_path / "idx", db_url=backend.url)


def test_retr_db_environment_variable(backend, photos, tmp_path, encoder, monkeypatch):
    from retrieval import Index, index_folder

    monkeypatch.setenv("RETR_DB", backend.cli_url)
    idx = tmp_path / "idx"
    assert index_folder(photos, idx, encoder=encoder).added == 3
    assert not (idx / "retr.sqlite").exists()
    ix = Index(idx, encoder=encoder)
    assert len(ix) == 3
    ix.store.close()


def test_cli_with_db(backend, photos, tmp_path):
    idx = tmp_path / "idx"
    db = backend.cli_url
    p = run_retr("index", photos, "--index", idx, "--db", db, "--no-captions", check=0)
    assert "added 3" in p.stdout and "failed 0" in p.stdout
    assert not (idx / "retr.sqlite").exists() and (idx / "photos.faiss").exists()
    hits = json.loads(run_retr("search", "a rocket on the launch pad", "--index", idx, "--db", db, "--json",
                               check=0).stdout)
    assert len(hits) == 3 and hits[0]["path"].endswith("rocket.jpg")
    # without --db this is another (absent) index
    p = run_retr("search", "a rocket", "--index", idx)
    assert p.returncode == 1 and "no index" in p.stderr and "Traceback" not in p.stderr
    p = run_retr("index", DEMO / "cat.jpg", "--index", idx, "--db", db, "--no-captions", "--rebuild", check=0)
    assert "added 1" in p.stdout
    hits = json.loads(run_retr("search", "a rocket", "--index", idx, "--json", env={"RETR_DB": db}, check=0).stdout)
    assert [h["path"].rsplit("/", 1)[-1] for h in hits] == ["cat.jpg"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_with_db(backend, photos, tmp_path):
    """`retr serve --db URL` serves the index whose tables are in that database (and RETR_DB does too)."""
    pytest.importorskip("fastapi")
    idx = tmp_path / "idx"
    db = backend.cli_url
    run_retr("index", photos, "--index", idx, "--db", db, "--no-captions", check=0)
    # without --db (and without RETR_DB) there is no index in that folder
    env = {k: v for k, v in os.environ.items() if k not in ("RETR_DB", "RETR_INDEX")}
    p = run_retr("serve", "--index", idx, "--port", _free_port(), env={"RETR_DB": ""})
    assert p.returncode == 1 and "no index" in p.stderr and "Traceback" not in p.stderr
    port = _free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "retrieval", "serve", "--index", str(idx), "--db", db,
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            assert proc.poll() is None, f"retr serve exited with {proc.returncode}:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(url + "/api/status", timeout=5) as r:
                    status = json.load(r)
                break
            except OSError:
                assert time.time() < deadline, f"retr serve did not answer within 90 s:\n{log.read_text()}"
                time.sleep(0.3)
        assert status["photos"] == 3
        with urllib.request.urlopen(url + "/api/search?q=a+rocket+on+the+launch+pad&k=3", timeout=60) as r:
            hits = json.load(r)["hits"]
        assert len(hits) == 3 and hits[0]["name"] == "rocket.jpg"
    finally:
        proc.terminate()
        proc.wait(10)
    assert "Traceback" not in log.read_text()


def test_connection_failure_is_one_line_without_password(tmp_path):
    pytest.importorskip("psycopg")
    from retrieval import Index, StoreError, index_folder

    url = "postgresql+psycopg://retr:s3cret-pw@127.0.0.1:1/retr_test"
    with pytest.raises(StoreError) as e:
        Index(tmp_path / "idx", db_url=url)
    msg = str(e.value)
    assert msg.startswith("cannot connect to database postgresql+psycopg://retr:***@127.0.0.1:1/retr_test")
    assert "s3cret" not in msg and "\n" not in msg
    with pytest.raises(StoreError, match="cannot connect") as e:
        index_folder(DEMO / "cat.jpg", tmp_path / "idx", encoder=object(), db_url=url)
    assert "s3cret" not in str(e.value)
    p = run_retr("search", "a cat", "--index", tmp_path / "idx", "--db", url)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "s3cret" not in p.stderr
    assert p.stderr.startswith("retr: cannot connect to database")


def test_index_made_before_alembic_is_stamped(tmp_path):
    """An SQLite index of retr before Alembic (meta with format_version 1, no alembic_version)
    opens as before: stamped at the first revision, then migrated to this retr's head."""
    from alembic import command
    from alembic.config import Config

    from retrieval.store.database import BASE_REVISION, MIGRATIONS_DIR, Store
    from retrieval.store.layout import SCHEMA_REVISION

    idx = tmp_path / "idx"
    idx.mkdir()
    engine = create_engine(f"sqlite:///{idx / 'retr.sqlite'}")
    with engine.begin() as c:  # the schema retr made before Alembic: the first revision's, unstamped
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = c
        command.upgrade(cfg, BASE_REVISION)
        c.execute(text("DROP TABLE alembic_version"))
    with engine.begin() as c:
        c.execute(text("INSERT INTO meta (key, value) VALUES ('format_version', '1'), ('dim', '512')"))
    engine.dispose()
    st = Store(idx)
    with st.engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_REVISION
    assert st.count("photos") == 0 and st.dim() == 512
    st.close()


def test_migrations_match_the_models(backend, tmp_path):
    """The schema the migrations create is the one the models describe (no autogenerate diff)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from retrieval.store.database import Base, Store

    st = Store(tmp_path / "idx", create=True, db_url=backend.url)
    try:
        with st.engine.connect() as c:
            # the FTS5 index of recognised text (SQLite only) is a virtual table that no model describes
            opts = {"compare_type": True, "include_object": lambda obj, name, type_, reflected, other:
                    not (type_ == "table" and name.startswith("ocr_fts"))}
            diff = compare_metadata(MigrationContext.configure(c, opts=opts), Base.metadata)
        assert diff == []
    finally:
        st.close()


def test_a_non_utf8_path_round_trips(backend, tmp_path, encoder):
    """A photo whose name is not valid UTF-8 (bytes \\xff\\xfe) is indexed, its path read back exactly
    (the same bytes), found again unchanged by the next run, and found by search."""
    from retrieval import Index, index_folder

    lib = tmp_path / "non_utf8_names"
    lib.mkdir()
    raw = os.path.join(os.fsencode(lib), b"caf\xff\xfe.jpg")
    shutil.copy(DEMO / "cat.jpg", raw)
    idx = tmp_path / "idx"
    rep = index_folder(lib, idx, encoder=encoder, db_url=backend.url, export_query_path=False)
    assert (rep.added, rep.failed) == (1, 0), rep.failures
    rep = index_folder(lib, idx, encoder=encoder, db_url=backend.url, export_query_path=False)
    assert (rep.unchanged, rep.removed, rep.added) == (1, 0, 0), rep
    ix = Index(idx, encoder=encoder, db_url=backend.url)
    hit = ix.search("a cat", k=1)[0]
    assert os.fsencode(hit.path) == raw
    assert os.fsencode(ix.store.photo_rows([hit.id])[hit.id][0]) == raw  # the SQLAlchemy reader too


def test_an_emptied_folder_is_refused_and_tombstones_restore(backend, photos, tmp_path):
    """On every database: a run that would remove every photo of its folder stops (nothing removed);
    with prune they are removed and kept as tombstones, and come back without embedding."""
    from retrieval import index_folder
    from retrieval.errors import IndexingError
    from retrieval.store.database import Store

    idx = tmp_path / "idx"
    enc = ConstantEncoder(8)
    index_folder(photos, idx, encoder=enc, db_url=backend.url, export_query_path=False)
    away = tmp_path / "away"
    shutil.move(photos, away)
    photos.mkdir()
    with pytest.raises(IndexingError, match="--prune"):
        index_folder(photos, idx, encoder=enc, db_url=backend.url, export_query_path=False)
    assert index_folder(photos, idx, encoder=enc, db_url=backend.url, export_query_path=False, prune=True).removed == 3
    photos.rmdir()
    shutil.move(away, photos)
    enc.encode_images = None  # restoring must not embed
    rep = index_folder(photos, idx, encoder=enc, db_url=backend.url, export_query_path=False)
    assert (rep.restored, rep.added, rep.failed) == (3, 0, 0), rep
    st = Store(idx, db_url=backend.url)
    try:
        assert st.count("photos") == 3
    finally:
        st.close()
