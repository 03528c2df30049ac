"""End-to-end: the real `retr` CLI on fixture folders named after their case."""
from __future__ import annotations

import json
import shutil

from PIL import Image

from conftest import DEMO, DEMO_CAPTIONS, run_retr


def test_demo_index_search_caption_roundtrip(tmp_path):
    idx = tmp_path / "idx"
    p = run_retr("index", DEMO, "--index", idx, "--captions", DEMO_CAPTIONS, check=0)
    assert "added 11" in p.stdout and "failed 0" in p.stdout
    p = run_retr("search", "an astronaut in an orange space suit", "--index", idx, "--json", check=0)
    hits = json.loads(p.stdout)
    assert hits[0]["path"].endswith("astronaut.jpg")
    assert hits[0]["score"] >= hits[-1]["score"]
    # plain output: score TAB path, best first
    p = run_retr("search", "a man with a camera on a tripod", "--index", idx, "-k", "3", check=0)
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].split("\t")[1].endswith("cameraman.jpg")
    # RETR_INDEX is honoured
    p = run_retr("search", "people flying kites on the beach", "-k", "1", env={"RETR_INDEX": str(idx)}, check=0)
    assert p.stdout.strip().endswith("kites_beach.jpg")


def test_image_query_and_texts(tmp_path):
    idx = tmp_path / "idx"
    run_retr("index", DEMO, "--index", idx, "--captions", DEMO_CAPTIONS, "--no-captions", check=0)
    # image -> image: the photo itself comes first, cosine ~1
    hits = json.loads(run_retr("search", DEMO / "horses.jpg", "--index", idx, "--json", "-k", "3", check=0).stdout)
    assert hits[0]["path"].endswith("horses.jpg") and hits[0]["score"] > 0.99
    # image -> text: one of the photo's own captions is among the top 3 texts
    hits = json.loads(run_retr("search", DEMO / "cat.jpg", "--texts", "--index", idx, "--json", "-k", "3",
                               check=0).stdout)
    assert all(h["kind"] == "text" for h in hits)
    assert any(h["path"].endswith("cat.jpg") for h in hits), hits


def test_incremental_add_modify_delete_move(photo_dir, tmp_path):
    idx = tmp_path / "idx"
    p = run_retr("index", photo_dir, "--index", idx, "--no-captions", check=0)
    assert "added 4" in p.stdout
    shutil.copy(DEMO / "rocket.jpg", photo_dir / "rocket.jpg")  # add
    Image.open(photo_dir / "cat.jpg").transpose(Image.FLIP_LEFT_RIGHT).save(photo_dir / "cat.jpg")  # modify
    (photo_dir / "coffee.jpg").unlink()  # delete
    (photo_dir / "sub").mkdir()
    (photo_dir / "horses.jpg").rename(photo_dir / "sub" / "horses renamed.jpg")  # move: no re-embedding
    p = run_retr("index", photo_dir, "--index", idx, "--no-captions", check=0)
    assert "added 1, updated 1, moved 1, removed 1, unchanged 1, failed 0" in p.stdout, p.stdout
    p = run_retr("index", photo_dir, "--index", idx, "--no-captions", check=0)
    assert "added 0, updated 0, moved 0, removed 0, unchanged 4, failed 0" in p.stdout, p.stdout
    hits = json.loads(run_retr("search", "a rocket on the launch pad", "--index", idx, "--json", check=0).stdout)
    assert len(hits) == 4 and hits[0]["path"].endswith("rocket.jpg")
    assert not any(h["path"].endswith("coffee.jpg") for h in hits)
    assert any(h["path"].endswith("sub/horses renamed.jpg") for h in hits)


def test_corrupt_files_are_skipped_with_a_message(photo_dir, tmp_path):
    data = (DEMO / "eagle.jpg").read_bytes()
    (photo_dir / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (photo_dir / "notes.png").write_text("this is not a picture\n")
    (photo_dir / "empty.jpg").write_bytes(b"")
    idx = tmp_path / "idx"
    p = run_retr("index", photo_dir, "--index", idx, "--no-captions", check=0)
    assert "added 4" in p.stdout and "failed 3" in p.stdout
    for name in ("truncated.jpg", "notes.png", "empty.jpg"):
        lines = [l for l in p.stderr.splitlines() if name in l]
        assert len(lines) == 1 and lines[0].startswith("retr: skipped "), p.stderr
    assert "Traceback" not in p.stderr


def test_nothing_indexable_exits_nonzero(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "a.jpg").write_bytes(b"\xff\xd8\xff garbage")
    p = run_retr("index", d, "--index", tmp_path / "idx", "--no-captions")
    assert p.returncode == 1 and "a.jpg" in p.stderr


def test_caption_cli():
    p = run_retr("caption", DEMO / "horses.jpg", check=0)
    cap = p.stdout.strip()
    assert cap and cap[0].isupper() and cap.endswith(".") and " ." not in cap
    assert run_retr("caption", DEMO / "horses.jpg", check=0).stdout.strip() == cap  # beam is deterministic
    p = run_retr("caption", DEMO / "horses.jpg", "--samples", "5", "--json", check=0)
    caps = json.loads(p.stdout)["captions"]
    assert len(caps) == 5 and len(set(caps)) > 1


def test_caption_rejects_non_image(tmp_path):
    f = tmp_path / "notes.jpg"
    f.write_text("hello")
    p = run_retr("caption", f)
    assert p.returncode == 1 and "notes.jpg" in p.stderr and "Traceback" not in p.stderr


def test_query_errors(tmp_path):
    p = run_retr("search", "a dog", "--index", tmp_path / "nothing-here")
    assert p.returncode != 0 and "no index" in p.stderr and "Traceback" not in p.stderr
    idx = tmp_path / "idx"
    run_retr("index", DEMO / "cat.jpg", "--index", idx, "--no-captions", check=0)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    for args in (["   "], ["a cat", "-k", "0"], [str(tmp_path / "missing.jpg")], [str(notes)]):
        p = run_retr("search", *args, "--index", idx)
        assert p.returncode != 0 and p.stderr.startswith("retr: ") and "Traceback" not in p.stderr, args
    # k larger than the gallery: the whole gallery
    hits = json.loads(run_retr("search", "a cat", "-k", "50", "--index", idx, "--json", check=0).stdout)
    assert len(hits) == 1


def test_corrupt_database_says_how_to_rebuild(photo_dir, tmp_path):
    idx = tmp_path / "idx"
    run_retr("index", photo_dir, "--index", idx, "--no-captions", check=0)
    (idx / "retr.sqlite").write_bytes(b"not a database" * 100)
    for f in idx.glob("retr.sqlite-*"):
        f.unlink()
    p = run_retr("search", "a cat", "--index", idx)
    assert p.returncode != 0 and "--rebuild" in p.stderr and "Traceback" not in p.stderr
    p = run_retr("index", photo_dir, "--index", idx, "--no-captions", "--rebuild", check=0)
    assert "added 4" in p.stdout


def test_captions_are_generated_later_for_photos_indexed_without(photo_dir, tmp_path):
    idx = tmp_path / "idx"
    run_retr("index", photo_dir, "--index", idx, "--no-captions", check=0)
    p = run_retr("search", "a cat", "--texts", "--index", idx, check=0)
    assert p.stdout == "" and "no captions in this index" in p.stderr
    run_retr("index", photo_dir, "--index", idx, check=0)  # same photos, now with the captioner
    hits = json.loads(run_retr("search", "a cat", "--texts", "--index", idx, "--json", check=0).stdout)
    assert len(hits) == 4 and {h["source"] for h in hits} == {"generated"}


def test_plain_output_keeps_one_line_per_result_and_as_text(tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    shutil.copy(DEMO / "cat.jpg", d / "new\nline.jpg")
    shutil.copy(DEMO / "horses.jpg", d / "horses")  # no image extension: not indexed
    shutil.copy(DEMO / "horses.jpg", d / "h.jpg")
    idx = tmp_path / "idx"
    run_retr("index", d, "--index", idx, "--no-captions", check=0)
    lines = run_retr("search", "a cat", "--index", idx, check=0).stdout.splitlines()
    assert len(lines) == 2 and any(l.endswith("new\\nline.jpg") for l in lines)
    # a word that is also a file name in the current folder: a photo query unless --as-text
    p = run_retr("search", "horses", "--index", idx, "-k", "1", cwd=d, check=0)
    assert p.stdout.strip().endswith("h.jpg")  # the file `horses` is a photo of horses
    p = run_retr("search", "horses", "--index", idx, "-k", "1", "--as-text", "--json", cwd=d, check=0)
    assert len(json.loads(p.stdout)) == 1
    # --as-text also takes a word that looks like an image name (existing or not) as words
    for q in ("h.jpg", "dog.png"):
        p = run_retr("search", q, "--index", idx, "-k", "1", "--as-text", "--json", cwd=d, check=0)
        assert len(json.loads(p.stdout)) == 1
    p = run_retr("search", "dog.png", "--index", idx, cwd=d)
    assert p.returncode == 1 and "no such image file" in p.stderr
    p = run_retr("search", str(d), "--index", idx)
    assert p.returncode == 1 and "is a folder" in p.stderr


def test_bad_inputs_fail_fast_in_one_line(tmp_path, photo_dir):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    idx = tmp_path / "idx"
    p = run_retr("index", photo_dir, "--index", idx, "--captions", bad)
    assert p.returncode == 1 and "bad.json" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (idx / "retr.sqlite").exists()  # refused before any work
    p = run_retr("caption", DEMO / "cat.jpg", "--captioner", DEMO_CAPTIONS)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "captioner" in p.stderr
    afile = tmp_path / "afile"
    afile.write_text("x")
    p = run_retr("index", photo_dir, "--index", afile)
    assert p.returncode == 1 and "must be a folder" in p.stderr


def test_usage_errors_are_one_line_naming_the_command(tmp_path):
    """A missing argument, an unknown option or a bad value: one line on stderr that names the
    command and points at its --help (not Typer's multi-line box), exit status 2."""
    cases = [(["index"], "Missing argument"), (["index", str(tmp_path), "--bogus"], "No such option: --bogus"),
             (["search", "a cat", "-k", "many"], "'-k'"), (["caption"], "Missing argument")]
    for args, want in cases:
        p = run_retr(*args)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1, (args, p.stderr)
        assert lines[0].startswith(f"retr {args[0]}: ") and want in lines[0] and "--help" in lines[0], lines
    assert "--captions" in run_retr("index", "--help", check=0).stdout


def test_unwritable_output_and_damaged_export_are_one_line(demo_index, encoder, tmp_path):
    """stdout on a full disk, stdout closed, and a damaged ONNX export in the cache: one line
    each on stderr, never a traceback."""
    import os
    import subprocess
    import sys

    from retrieval.encoders import onnx_runtime

    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "retrieval", "caption", str(DEMO / "cat.jpg")],
                           stdout=full, stderr=subprocess.PIPE, text=True, timeout=600)
    assert p.returncode == 1 and p.stderr.strip() == "retr: cannot write output (No space left on device)", p.stderr
    p = subprocess.run(f"{sys.executable} -m retrieval search 'a cat' --index {demo_index} >&-", shell=True,
                       stderr=subprocess.PIPE, text=True, timeout=600)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    cache = tmp_path / "cache"
    src = onnx_runtime.export_dir(encoder.id)
    dst = cache / src.relative_to(onnx_runtime.cache_root())
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).symlink_to(f)
    (dst / "tokenizer.json").unlink()
    (dst / "tokenizer.json").write_text('{"version": "1.0", "trunc')
    p = run_retr("search", "a cat", "--index", demo_index, env={"RETR_CACHE": str(cache)})
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1 and "ONNX export may be damaged" in lines[0], p.stderr
    assert os.fspath(cache) in lines[0]


def test_caption_samples_with_beam_is_a_usage_error():
    """--samples draws captions without a beam: --beam with it is refused in one line (exit 2),
    before any model is loaded, instead of being silently ignored."""
    for n in ("--samples", "-n"):
        p = run_retr("caption", DEMO / "horses.jpg", n, "3", "--beam", "4")
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and p.stdout == "", (p.returncode, p.stdout, p.stderr)
        assert lines[0].startswith("retr: ") and "--beam" in lines[0] and "--samples" in lines[0], lines


def test_progress_counts_a_corrupt_photo_as_skipped_not_embedded(photo_dir, tmp_path):
    """The last progress line of `retr index` (stderr, not a terminal) says how many photos were
    embedded and how many skipped, agreeing with the summary on stdout."""
    data = (DEMO / "eagle.jpg").read_bytes()
    (photo_dir / "truncated.jpg").write_bytes(data[: len(data) // 3])
    p = run_retr("index", photo_dir, "--index", tmp_path / "idx", "--no-captions", check=0)
    assert "added 4, updated 0, moved 0, removed 0, unchanged 0, failed 1" in p.stdout, p.stdout
    progress = [line for line in p.stderr.splitlines() if line.startswith("retr: embedded ")]
    assert progress and progress[-1] == "retr: embedded 4/5, skipped 1", p.stderr
