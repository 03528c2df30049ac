"""Start-up of ``retr index``: once a checkpoint has been read, a new process loads the encoder without
torch (its config and dim come from the user cache), with the same id; a damaged cache record only
costs the torch load again."""
from __future__ import annotations

import json
import os
import subprocess
import sys

LOAD = ("import sys, json; from retrieval.encoders.base import load_encoder; e = load_encoder(); "
        "print(json.dumps([e.id, e.dim, 'torch' in sys.modules]))")


def _load(cache) -> list:
    env = dict(os.environ, RETR_CACHE=str(cache))
    p = subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_the_encoder_without_torch_and_a_damaged_record_costs_only_time(tmp_path,
                                                                                              monkeypatch):
    from retrieval.encoders.base import checkpoint_facts_file

    first = _load(tmp_path)
    assert first[2] is True  # the first load reads the checkpoint with torch
    second = _load(tmp_path)
    assert second == [first[0], first[1], False]
    monkeypatch.setenv("RETR_CACHE", str(tmp_path))
    record = checkpoint_facts_file(first[0].split("@")[1])
    assert record.is_file()
    record.write_text("{not json")
    assert _load(tmp_path) == [first[0], first[1], True]  # read again with torch, and cached again
    assert _load(tmp_path) == [first[0], first[1], False]
