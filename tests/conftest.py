"""Shared fixtures: the demo photos, a real `retr` CLI runner, one loaded encoder per session."""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "photos"
DEMO_CAPTIONS = ROOT / "data" / "captions.json"
SHARED = ROOT.parent / "shared" / "data"

# Keep the tests' ONNX exports out of the user's cache (one export per test session).
os.environ["RETR_CACHE"] = tempfile.mkdtemp(prefix="retr-test-cache-")
atexit.register(shutil.rmtree, os.environ["RETR_CACHE"], True)
# ... and the default index out of the user's data folder: RETR_HOME is retr's data folder.
os.environ["RETR_HOME"] = tempfile.mkdtemp(prefix="retr-test-home-")
atexit.register(shutil.rmtree, os.environ["RETR_HOME"], True)


class ConstantEncoder:
    """An encoder of another name that maps everything to one unit vector: for encoder-mismatch tests."""

    name, version, id = "other", "1", "other@1"

    def __init__(self, dim: int):
        self.dim = dim

    def encode_images(self, ims):
        import numpy as np

        return np.ones((len(ims), self.dim), np.float32) / np.sqrt(self.dim)

    def encode_texts(self, texts):
        return self.encode_images(texts)


def run_retr(*args, cwd=None, env=None, check=None) -> subprocess.CompletedProcess:
    """Run the real CLI in a new process; returns the CompletedProcess (text mode)."""
    e = dict(os.environ)
    e.pop("RETR_INDEX", None)
    if env:
        e.update(env)
    p = subprocess.run([sys.executable, "-m", "retrieval", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd, env=e, timeout=600)
    if check is not None:
        assert p.returncode == check, f"exit {p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}"
    return p


@pytest.fixture(scope="session")
def encoder():
    from retrieval.encoders.base import load_encoder

    return load_encoder()


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory, encoder):
    """The demo photos indexed once (with their captions and generated captions) through the API."""
    from retrieval.captioning.model import load_captioner
    from retrieval.indexing.indexer import index_folder

    d = tmp_path_factory.mktemp("demo_index")
    rep = index_folder(DEMO, d, encoder=encoder, captions_file=DEMO_CAPTIONS,
                       captioner=load_captioner(None, encoder.id))
    assert rep.failed == 0
    return d


@pytest.fixture
def photo_dir(tmp_path):
    """A fresh copy of four demo photos in a folder of its own."""
    d = tmp_path / "photos"
    d.mkdir()
    for n in ("astronaut.jpg", "cat.jpg", "coffee.jpg", "horses.jpg"):
        shutil.copy(DEMO / n, d / n)
    return d
