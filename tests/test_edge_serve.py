"""Stopping ``retr serve`` with Ctrl-C: one line, never a traceback (uvicorn's CancelledError included)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, ConstantEncoder


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory):
    from retrieval import index_folder

    root = tmp_path_factory.mktemp("served_index")
    lib = root / "library"
    lib.mkdir()
    from PIL import Image

    Image.new("RGB", (16, 16), (200, 30, 30)).save(lib / "red.png")
    index_folder(lib, root / "idx", encoder=ConstantEncoder(8), export_query_path=False)
    return root / "idx"


def _serve(idx, env=None, port=0):
    e = dict(os.environ, **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "retrieval", "serve", "--index", str(idx), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)


@pytest.mark.parametrize("delay", [0.0, 0.001, 0.01, 0.05, 0.3, 1.5])
def test_ctrl_c_stops_serve_in_one_line(tiny_index, delay):
    """SIGINT at start-up or while serving: exit 0, no traceback."""
    p = _serve(tiny_index)
    first = p.stderr.readline()
    assert "serving" in first
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    err = first + err
    assert "Traceback" not in err and "CancelledError" not in err, err
    assert p.returncode == 0 and err.strip().splitlines()[1:] == ["retr: stopped"], (p.returncode, err)


def test_a_cancelled_error_from_uvicorn_is_no_traceback(tiny_index, tmp_path):
    """The race seen in about 2 of 20 stops: uvicorn ends with asyncio.CancelledError (a BaseException)
    instead of KeyboardInterrupt; simulated here by a uvicorn.run that raises it."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import asyncio, uvicorn\n"
        "def _run(*a, **k):\n    raise asyncio.CancelledError()\n"
        "uvicorn.run = _run\n"
        "uvicorn.Server.run = lambda self, *a, **k: _run()\n")
    p = _serve(tiny_index, env={"PYTHONPATH": f"{hook}:{ROOT}"})
    out, err = p.communicate(timeout=60)
    assert "Traceback" not in err and "CancelledError" not in err, err
    assert p.returncode == 0 and err.strip().splitlines()[-1] == "retr: stopped", (p.returncode, err)


def test_a_swallowed_ctrl_c_still_stops_serve(tiny_index, tmp_path):
    """A KeyboardInterrupt raised where start-up code swallows it (seen once in about 100 stops: the
    server then ran on) is delivered again until retr serve stops; simulated by a uvicorn.run that
    swallows the first one and serves on."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import time, uvicorn\n"
        "def _run(*a, **k):\n"
        "    try:\n        time.sleep(60)\n    except KeyboardInterrupt:\n        pass\n"
        "    time.sleep(60)\n"
        "uvicorn.run = _run\n")
    p = _serve(tiny_index, env={"PYTHONPATH": f"{hook}:{ROOT}"})
    assert "serving" in p.stderr.readline()
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert "Traceback" not in err and p.returncode == 0 and err.strip().splitlines() == ["retr: stopped"], err
