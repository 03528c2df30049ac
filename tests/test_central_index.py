"""One index by default, in retr's data folder: several photo folders added to it, searched from
any folder, listed by `retr status`; --index and RETR_INDEX still choose another."""
from __future__ import annotations

import json
import shutil

from conftest import DEMO, run_retr


def _two_folders(tmp_path):
    a, b = tmp_path / "pictures", tmp_path / "phone"
    a.mkdir()
    b.mkdir()
    for n in ("cat.jpg", "horses.jpg"):
        shutil.copy(DEMO / n, a / n)
    shutil.copy(DEMO / "rocket.jpg", b / "rocket.jpg")
    return a, b


def test_default_index_holds_several_folders_and_answers_from_anywhere(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"RETR_HOME": str(home)}
    a, b = _two_folders(tmp_path)
    run_retr("index", a, "--no-captions", env=env, cwd=a, check=0)
    p = run_retr("index", b, "--no-captions", env=env, cwd=b, check=0)
    assert str(home / "index") in p.stdout
    assert not (a / "index").exists() and not (b / "index").exists()
    hits = json.loads(run_retr("search", "a rocket", "--json", env=env, cwd=elsewhere, check=0).stdout)
    assert len(hits) == 3 and hits[0]["path"].endswith("rocket.jpg")  # both folders, one index
    st = json.loads(run_retr("status", "--json", env=env, cwd=elsewhere, check=0).stdout)
    assert st["photos"] == 3 and st["model"] and st["last_run"] and st["bytes"] > 0
    assert {f["path"]: f["photos"] for f in st["folders"]} == {str(a): 2, str(b): 1}
    text = run_retr("status", env=env, check=0).stdout
    assert str(a) in text and "photos    3" in text and "on disk" in text


def test_named_index_still_wins_and_old_local_index_is_pointed_at(tmp_path):
    env = {"RETR_HOME": str(tmp_path / "home")}
    a, _ = _two_folders(tmp_path)
    run_retr("index", a, "--index", tmp_path / "index", "--no-captions", env=env, check=0)
    assert not (tmp_path / "home" / "index").exists()
    p = run_retr("search", "horses", "-k", "1", env={**env, "RETR_INDEX": str(tmp_path / "index")}, check=0)
    assert p.stdout.strip().endswith("horses.jpg")
    p = run_retr("search", "horses", "-k", "1", "--index", "./index", env=env, cwd=tmp_path, check=0)
    assert p.stdout.strip().endswith("horses.jpg")
    p = run_retr("search", "horses", env=env, cwd=tmp_path)  # the default index is empty: say where one is
    assert p.returncode == 1 and "--index ./index" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_status_without_index_is_one_line(tmp_path):
    p = run_retr("status", env={"RETR_HOME": str(tmp_path / "nothing")})
    assert p.returncode == 1 and "no index" in p.stderr and len(p.stderr.strip().splitlines()) == 1
