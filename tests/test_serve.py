"""`retr serve`: the JSON API (FastAPI TestClient), a real server process, and the page in headless Chromium."""
from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import DEMO, DEMO_CAPTIONS, ROOT, run_retr

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

KITES_QUERY = "people flying kites on the beach"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _demo_listing() -> dict[str, tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in DEMO.rglob("*")}


@pytest.fixture(scope="module")
def served_index(tmp_path_factory, encoder):
    """The demo photos indexed once for this module (captions file + generated captions)."""
    from retrieval import index_folder
    from retrieval.captioning.model import load_captioner

    d = tmp_path_factory.mktemp("serve_index")
    rep = index_folder(DEMO, d, encoder=encoder, captions_file=DEMO_CAPTIONS,
                       captioner=load_captioner(None, encoder.id))
    assert rep.failed == 0 and rep.indexed == 11
    return d


@pytest.fixture(scope="module")
def client(served_index, encoder):
    from fastapi.testclient import TestClient

    from retrieval.app.server.app import create_app

    with TestClient(create_app(served_index, encoder=encoder)) as c:
        yield c


@pytest.fixture(scope="module")
def ids(client) -> dict[str, int]:
    """Photo file name -> photo id, through the API."""
    hits = client.get("/api/search", params={"q": "a photo", "k": 100}).json()["hits"]
    return {h["name"]: h["photo_id"] for h in hits}


def _is_json_error(r, *codes):
    assert r.status_code in codes, (r.status_code, r.text[:300])
    body = r.json()
    assert isinstance(body["error"], str) and body["error"] and "Traceback" not in r.text
    return body


def _jpeg(name: str) -> bytes:
    return (DEMO / name).read_bytes()


# -- API -----------------------------------------------------------------------------------------
def test_status_page_and_openapi(client, served_index, encoder):
    s = client.get("/api/status").json()
    assert s["photos"] == 11 and s["texts"] >= 22
    assert s["encoder"] == encoder.id and s["index"] == str(served_index.resolve())
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="q"' in page.text and "http://" not in page.text and "https://" not in page.text  # offline: no CDN
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/search", "/api/search/image", "/api/photos/{photo_id}", "/api/photos/{photo_id}/similar",
              "/api/photos/{photo_id}/thumb", "/api/photos/{photo_id}/file", "/api/caption", "/api/status"):
        assert p in paths


def test_api_docs_pages_load_nothing_from_elsewhere(client):
    """/docs (Swagger UI) and /redoc name only this server's own assets, and those assets are served."""
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200 and "text/html" in html.headers["content-type"], page
        assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), (page, assets)
        for a in assets:
            r = client.get(a)
            assert r.status_code == 200 and len(r.content) > 1000, (a, r.status_code)


def test_text_search_finds_the_kites(client):
    r = client.get("/api/search", params={"q": KITES_QUERY, "k": 3})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert len(hits) == 3 and hits[0]["name"] == "kites_beach.jpg" and hits[0]["kind"] == "photo"
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert Path(hits[0]["path"]) == DEMO / "kites_beach.jpg"
    texts = client.get("/api/search", params={"q": KITES_QUERY, "k": 5, "texts": "true"}).json()["hits"]
    assert texts and all(h["kind"] == "text" and h["text"] and h["photo_id"] is not None for h in texts)
    assert texts[0]["name"] == "kites_beach.jpg"


def test_query_that_names_a_file_is_words_not_a_file(client):
    r = client.get("/api/search", params={"q": str(DEMO / "cat.jpg"), "k": 1})
    assert r.status_code == 200  # searched as words; the file is not read as an image query
    r = client.get("/api/search", params={"q": "/etc/passwd"})
    assert r.status_code == 200 and "root:" not in r.text


def test_bad_queries_are_400_json(client):
    _is_json_error(client.get("/api/search", params={"q": "   "}), 400)
    _is_json_error(client.get("/api/search"), 400)
    _is_json_error(client.get("/api/search", params={"q": "dog", "k": 0}), 400)
    _is_json_error(client.get("/api/search", params={"q": "dog", "k": "many"}), 400)


def test_similar_returns_the_photo_itself_first(client, ids):
    pid = ids["horses.jpg"]
    hits = client.get(f"/api/photos/{pid}/similar", params={"k": 4}).json()["hits"]
    assert len(hits) == 4 and hits[0]["photo_id"] == pid and hits[0]["score"] > 0.99


def test_photo_details_have_indexed_and_generated_captions(client, ids):
    pid = ids["kites_beach.jpg"]
    p = client.get(f"/api/photos/{pid}").json()
    assert p["id"] == pid and p["name"] == "kites_beach.jpg" and p["width"] > 0 and p["height"] > 0
    sources = {c["source"] for c in p["captions"]}
    assert sources == {"captions", "generated"}
    assert any("kite" in c["text"].lower() for c in p["captions"] if c["source"] == "captions")


def test_thumbnail_is_a_cached_jpeg_outside_the_photo_folder(client, ids, served_index):
    from PIL import Image

    before = _demo_listing()
    pid = ids["astronaut.jpg"]
    r = client.get(f"/api/photos/{pid}/thumb")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:3] == b"\xff\xd8\xff"
    im = Image.open(io.BytesIO(r.content))
    assert im.format == "JPEG" and max(im.size) == 256
    cached = list((served_index / "thumbs").glob(f"{pid}-*.jpg"))
    assert len(cached) == 1 and cached[0].read_bytes() == r.content
    mtime = cached[0].stat().st_mtime_ns
    assert client.get(f"/api/photos/{pid}/thumb").content == r.content
    assert cached[0].stat().st_mtime_ns == mtime  # served from the cache, not made again
    assert _demo_listing() == before  # nothing written into the photo folder


def test_file_is_the_indexed_photo(client, ids):
    r = client.get(f"/api/photos/{ids['cat.jpg']}/file")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content == _jpeg("cat.jpg")


def test_unknown_ids_are_404_json(client):
    for suffix in ("", "/thumb", "/file", "/similar"):
        body = _is_json_error(client.get(f"/api/photos/999999{suffix}"), 404)
        assert "999999" in body["error"]
        _is_json_error(client.get(f"/api/photos/abc{suffix}"), 404)
        _is_json_error(client.get(f"/api/photos/-1{suffix}"), 404)
    _is_json_error(client.get("/api/nothing-here"), 404)


TRAVERSALS = [
    "/api/photos/../../etc/passwd/file",
    "/api/photos/%2e%2e/file",
    "/api/photos/%2e%2e%2f%2e%2e%2fetc%2fpasswd/file",
    "/api/photos/..%2F..%2F..%2Fetc%2Fpasswd/thumb",
    "/api/photos//etc/passwd/file",
    "/api/photos/%2Fetc%2Fpasswd/file",
    "/api/photos/1/file/../../../../etc/passwd",
    "/etc/passwd",
    "/static/../../../../etc/passwd",
    "/api/photos/file?path=/etc/passwd",
    "/api/search/image?path=/etc/passwd",
    "/?path=/etc/passwd",
]


def test_path_traversal_never_serves_outside_the_index(client, ids):
    allowed = {_jpeg(n) for n in ids}
    for url in TRAVERSALS:
        r = client.get(url)
        assert b"root:" not in r.content, url
        if r.status_code == 200:
            assert r.content in allowed or r.headers["content-type"].startswith("text/html"), url
        else:
            _is_json_error(r, 400, 404, 405)
    # a ?path= parameter is ignored: the id alone picks the file
    pid = ids["coffee.jpg"]
    for q in ("/etc/passwd", str(DEMO / "cat.jpg"), "../../../../etc/passwd"):
        r = client.get(f"/api/photos/{pid}/file", params={"path": q})
        assert r.status_code == 200 and r.content == _jpeg("coffee.jpg")
        assert client.get(f"/api/photos/{pid}", params={"path": q}).json()["path"] == str(DEMO / "coffee.jpg")


def test_search_by_uploaded_photo(client):
    r = client.post("/api/search/image", params={"k": 3},
                    files={"file": ("upload.jpg", _jpeg("kites_beach.jpg"), "image/jpeg")})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert hits[0]["name"] == "kites_beach.jpg" and hits[0]["score"] > 0.99


def test_uploads_that_are_not_images_are_4xx_json(client):
    for url in ("/api/search/image", "/api/caption"):
        _is_json_error(client.post(url, files={"file": ("notes.txt", b"hello, not a photo\n", "text/plain")}), 415)
        _is_json_error(client.post(url, files={"file": ("fake.jpg", b"hello, not a photo\n", "image/jpeg")}), 415)
        _is_json_error(client.post(url, files={"file": ("blob", b"", "application/octet-stream")}), 415)
        _is_json_error(client.post(url, data={"nofile": "x"}), 400)


def test_caption_an_uploaded_photo(client):
    r = client.post("/api/caption", files={"file": ("h.jpg", _jpeg("horses.jpg"), "image/jpeg")})
    assert r.status_code == 200
    caps = r.json()["captions"]
    assert len(caps) == 1 and caps[0].endswith(".") and len(caps[0].split()) >= 3
    r = client.post("/api/caption", files={"file": ("c.jpg", _jpeg("cat.jpg"), "image/jpeg")})
    assert "cat" in r.json()["captions"][0].lower(), r.json()  # the attention captioner: maps, concepts, objects
    r = client.post("/api/caption", params={"samples": 2, "seed": 1},
                    files={"file": ("h.jpg", _jpeg("horses.jpg"), "image/jpeg")})
    assert len(r.json()["captions"]) == 2


def test_host_header_guard(served_index, encoder):
    from fastapi.testclient import TestClient

    from retrieval.app.server.app import LOOPBACK_HOSTS, create_app

    with TestClient(create_app(served_index, encoder=encoder, allowed_hosts=LOOPBACK_HOSTS),
                    base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/status").status_code == 200
        assert c.get("/api/status", headers={"Host": "localhost:8000"}).status_code == 200
        _is_json_error(c.get("/api/status", headers={"Host": "evil.example:8000"}), 400)


def test_no_index_is_a_store_error(tmp_path):
    from retrieval.app.server.app import create_app
    from retrieval.errors import StoreError

    with pytest.raises(StoreError):
        create_app(tmp_path / "nothing")


# -- a real `retr serve` process -------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(served_index, tmp_path_factory):
    """`retr serve --index ... --port P` in a subprocess; yields its base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve_log") / "serve.log"
    env = dict(os.environ)
    env.pop("RETR_INDEX", None)
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "retrieval", "serve", "--index", str(served_index),
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"retr serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url + "/api/status", timeout=5) as r:
                    assert json.load(r)["photos"] == 11
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail(f"retr serve did not answer within 90 s:\n{log.read_text()}")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text()


def _raw_get(port: int, target: str) -> tuple[int, bytes]:
    """Send a request line exactly as given (no client-side normalisation of ``..``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_live_server_refuses_raw_traversal_and_foreign_hosts(live_server):
    port = int(live_server.rsplit(":", 1)[1])
    for target in TRAVERSALS + ["/api/photos/../../../../../../etc/passwd", "/../../../../etc/passwd",
                                "/api/photos/1/../../../../etc/passwd"]:
        status, body = _raw_get(port, target)
        assert b"root:" not in body, target
        assert status in (200, 400, 404, 405), target
    req = urllib.request.Request(live_server + "/api/status", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400


def test_serve_without_index_fails_cleanly(tmp_path):
    p = run_retr("serve", "--index", tmp_path / "none", "--port", _free_port())
    assert p.returncode == 1 and "no index at" in p.stderr and "Traceback" not in p.stderr


# -- the page in headless Chromium ----------------------------------------------------------------
def _browser_or_skip():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium Python package (pip install selenium)")
    if missing:
        msg = (f"browser test needs {', '.join(missing)}: "
               f"apt-get install -y chromium chromium-driver && pip install selenium")
        if os.environ.get("CI"):
            pytest.fail("CI is set, so the browser test may not skip: " + msg)
        pytest.skip(msg)


#: Chromium flag that makes every host but the test server's unresolvable: the pages must work offline.
NO_NETWORK = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


@pytest.fixture
def browser(monkeypatch):
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # never let Selenium Manager download anything
    profile = tempfile.mkdtemp(prefix="retr-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", NO_NETWORK, f"--user-data-dir={profile}", "--window-size=1280,900"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_page_in_headless_chromium(live_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    with urllib.request.urlopen(live_server + "/api/search?k=1&q=" + urllib.parse.quote(KITES_QUERY)) as r:
        kites_id = json.load(r)["hits"][0]["photo_id"]
    wait = WebDriverWait(browser, 60)
    browser.get(live_server + "/")
    wait.until(lambda d: "photos" in d.find_element(By.ID, "status").text)
    box = browser.find_element(By.ID, "q")
    box.send_keys(KITES_QUERY + Keys.ENTER)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#grid .card")))
    cards = browser.find_elements(By.CSS_SELECTOR, "#grid .card")
    assert len(cards) == 11 and int(cards[0].get_attribute("data-id")) == kites_id
    assert "kites_beach.jpg" in cards[0].text
    wait.until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)"))
    shot = ROOT / "docs" / "serve.png"
    shot.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    cards[0].click()  # the large view: captions, then "more like this"
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#caps li"))
    assert "kite" in browser.find_element(By.ID, "caps").text.lower()
    assert browser.execute_script("return document.getElementById('big').naturalWidth") > 256
    browser.find_element(By.ID, "more").click()
    wait.until(lambda d: d.find_element(By.ID, "info").text.startswith("More like"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#grid .card"))
    first = browser.find_elements(By.CSS_SELECTOR, "#grid .card")[0]
    assert int(first.get_attribute("data-id")) == kites_id

    browser.find_element(By.ID, "f-after").send_keys("2100" + Keys.ENTER)  # the filter bar
    wait.until(lambda d: "no photo matches the filters" in d.find_element(By.ID, "info").text)
    assert "from 2100-01-01" in browser.find_element(By.ID, "info").text
    browser.find_element(By.ID, "f-after").clear()
    year = dt.date.today().year  # the demo photos have no EXIF date: their file time
    browser.find_element(By.ID, "q").send_keys(f" {year}" + Keys.ENTER)  # a parsed date, shown above the grid
    wait.until(lambda d: f"from {year}-01-01 to {year}-12-31" in d.find_element(By.ID, "info").text)
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_api_docs_page_renders_offline_in_headless_chromium(live_server, browser):
    """/docs in a browser that can reach no other host: Swagger UI lists every operation, and
    every resource the page fetched came from the server itself."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(live_server + "/docs")
    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")) >= 8)
    shown = {e.get_attribute("data-path") or e.text.replace("\u200b", "")
             for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/api/search", "/api/status", "/api/caption", "/api/photos/{photo_id}"} <= shown, shown
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert fetched and all(u.startswith(live_server + "/") for u in fetched), fetched
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_page_divides_good_matches_from_the_rest(live_server, browser):
    """Good matches (match >= the calibrated threshold) above a divider; no good match: one line above the grid."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    with urllib.request.urlopen(live_server + "/api/search?k=11&q=a%20cat") as r:
        body = json.load(r)
    t = body["match_threshold"]
    assert t is not None and not body["no_match"] and body["hits"][0]["match"] >= t > body["hits"][-1]["match"]
    good = sum(h["match"] >= t for h in body["hits"])
    wait = WebDriverWait(browser, 60)
    browser.get(live_server + "/")
    wait.until(lambda d: "photos" in d.find_element(By.ID, "status").text)
    browser.find_element(By.ID, "q").send_keys("a cat" + Keys.ENTER)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#grid .card"))
    kids = browser.find_elements(By.CSS_SELECTOR, "#grid > *")
    names = [k.get_attribute("id") or k.get_attribute("class") for k in kids]
    assert names.index("match-divider") == good and "no-match" not in names, names
    assert "cat.jpg" in kids[0].text and browser.find_element(By.ID, "match-divider").is_displayed()

    box = browser.find_element(By.ID, "q")
    box.clear()
    box.send_keys("a birthday cake" + Keys.ENTER)
    wait.until(lambda d: d.find_elements(By.ID, "no-match"))
    kids = browser.find_elements(By.CSS_SELECTOR, "#grid > *")
    assert kids[0].get_attribute("id") == "no-match" and "No good match" in kids[0].text
    assert not browser.find_elements(By.ID, "match-divider") and len(kids) == 12
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
