"""retr serve's duplicates view: /api/duplicates groups resized and recompressed copies and keeps different
photos apart (deleting nothing), and the page shows the groups with thumbnails in headless Chromium."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
from PIL import Image

from conftest import DEMO
from test_serve import _free_port, browser  # noqa: F401 - browser is a fixture

pytest.importorskip("fastapi")
pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def dup_index(tmp_path_factory, encoder):
    """Four demo photos, a half-size copy of cat.jpg and a quality-30 copy of coffee.jpg, indexed."""
    from retrieval.indexing.indexer import index_folder

    d = tmp_path_factory.mktemp("dups")
    lib = d / "photos"
    lib.mkdir()
    for n in ("cat.jpg", "coffee.jpg", "horses.jpg", "astronaut.jpg"):
        shutil.copy(DEMO / n, lib / n)
    cat = Image.open(lib / "cat.jpg")
    cat.resize((cat.width // 2, cat.height // 2), Image.LANCZOS).save(lib / "cat small.jpg", quality=85)
    Image.open(lib / "coffee.jpg").save(lib / "coffee recompressed.jpg", quality=30)
    index_folder(lib, d / "idx", encoder=encoder)
    return d / "idx", lib


def _listing(lib):
    return {p.name: p.stat().st_size for p in lib.iterdir()}


def test_api_groups_copies_and_deletes_nothing(dup_index, encoder):
    from fastapi.testclient import TestClient

    from retrieval.app.server.app import create_app

    idx, lib = dup_index
    before = _listing(lib)
    with TestClient(create_app(idx, encoder=encoder)) as c:
        body = c.get("/api/duplicates").json()
        groups = sorted(sorted(m["name"] for m in g["photos"]) for g in body["groups"])
        assert groups == [["cat small.jpg", "cat.jpg"], ["coffee recompressed.jpg", "coffee.jpg"]]
        first = body["groups"][0]["photos"]
        assert first[0]["similarity"] == 1.0 and first[0]["hash_distance"] == 0 and first[1]["similarity"] > 0.9
        assert body["unhashed"] == 0 and body["threshold"] == 0.92
        assert c.get("/api/duplicates", params={"threshold": 2}).status_code == 400  # one JSON error line
    assert _listing(lib) == before


@pytest.fixture(scope="module")
def dup_server(dup_index):
    port = _free_port()
    env = dict(os.environ)
    env.pop("RETR_INDEX", None)
    proc = subprocess.Popen([sys.executable, "-m", "retrieval", "serve", "--index", str(dup_index[0]), "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(url + "/api/status", timeout=5) as r:
                    assert json.load(r)["photos"] == 6
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail("retr serve did not answer within 90 s")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_page_shows_duplicate_groups_in_headless_chromium(dup_server, dup_index, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(dup_server + "/")
    wait.until(lambda d: "photos" in d.find_element(By.ID, "status").text)
    browser.find_element(By.ID, "dups").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid .dup-group")) == 2)
    groups = browser.find_elements(By.CSS_SELECTOR, "#grid .dup-group")
    shown = sorted(sorted(c.text.split("\n")[0] for c in g.find_elements(By.CSS_SELECTOR, ".card")) for g in groups)
    assert shown == [["cat small.jpg", "cat.jpg"], ["coffee recompressed.jpg", "coffee.jpg"]]
    assert "Group 1: 2 photos (near-duplicate)" in groups[0].text and "reference" in groups[0].text
    assert "2 groups of near-duplicates, 4 photos" in browser.find_element(By.ID, "info").text
    wait.until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)"))
    groups[1].find_element(By.CSS_SELECTOR, ".card").click()  # a card opens the photo's large view
    wait.until(lambda d: d.find_element(By.ID, "title").text.endswith(".jpg"))
    browser.get(dup_server + "/?view=duplicates")  # a link straight to the view
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid .dup-group")) == 2)
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    assert len(list(dup_index[1].iterdir())) == 6  # nothing deleted
