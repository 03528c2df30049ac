"""A full disk: `retr index` into an index on a small tmpfs that fills up during the run.

For each tmpfs size: mount a tmpfs of that size, index the demo photos into it (the previous
index), then index a larger library into the same index until the filesystem is full. Checks:
the run exits non-zero with one clear ``retr:`` line naming the full disk and no traceback; the
database passes ``PRAGMA integrity_check``; every photo of the previous index is still there with
the same vector and captions; search answers; and once space is freed (remount larger) the same
command finishes. Needs root (mount); prints a skip line where mounting is not allowed.

Usage::

    sudo python scripts/reliability/full_disk.py [--sizes 400k,600k,1m,2m,3m] [--photos 300]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import relib  # scripts/reliability/relib.py, beside this script

DISK_FULL_WORDS = ("no space left", "disk is full", "disk full", "database or disk is full")


def mount_tmpfs(where: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` at ``where``; None on success, else why not."""
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       capture_output=True, text=True)
    return None if r.returncode == 0 else (r.stderr.strip() or f"mount exit {r.returncode}")


def umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount(where: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True, capture_output=True)


def one_size(size: str, demo: Path, big: Path, mnt: Path) -> dict:
    """One fill at tmpfs ``size``; returns the checks' results."""
    why = mount_tmpfs(mnt, size)
    if why:
        return {"size": size, "skipped": f"cannot mount a tmpfs ({why})"}
    try:
        ix = mnt / "index"
        r0 = relib.retr("index", demo, "--index", ix)
        if r0.returncode != 0:
            return {"size": size, "skipped": f"the previous index does not fit: {r0.stderr.strip()[-200:]}"}
        before = relib.snapshot(ix)
        r = relib.retr("index", big, "--index", ix, "--batch-size", "16")
        err = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("retr: embedded ")]
        full_lines = [ln for ln in err if ln.startswith("retr: ") and any(w in ln.lower() for w in DISK_FULL_WORDS)
                      and "RETR_DEBUG" not in ln and "sqlalche.me" not in ln]
        res = {"size": size, "exit": r.returncode, "stderr_lines": err[-3:],
               "traceback": "Traceback" in r.stderr, "disk_full_line": bool(full_lines)}
        if r.returncode == 0:
            res["note"] = "the run did not fill the disk"
        res["integrity"] = relib.integrity(ix)
        after = relib.snapshot(ix)
        res["previous_kept"] = not relib.compare({p: after[p] for p in before if p in after}, before)
        res["search_ok"] = relib.search_ok(ix)[0]
        remount(mnt, "200m")
        r2 = relib.retr("index", big, "--index", ix, "--batch-size", "16")
        res["rerun_after_freeing"] = r2.returncode
        res["all_indexed_after"] = r2.returncode == 0 and len(relib.snapshot(ix)) == len(before) + len(
            list(big.iterdir()))
        res["leftover_files"] = sorted(p.name for p in ix.iterdir() if p.name.endswith(".tmp"))
        res["ok"] = (r.returncode != 0 and not res["traceback"] and bool(full_lines) and res["integrity"] == "ok"
                     and res["previous_kept"] and res["search_ok"] and r2.returncode == 0)
        return res
    finally:
        umount(mnt)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="400k,600k,800k,1m,1500k,2m,3m")
    ap.add_argument("--photos", type=int, default=300)
    ap.add_argument("--work", type=Path, default=Path("/tmp/retr-full-disk"))
    a = ap.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    demo = relib.demo_library(a.work / "demo")
    big = relib.flickr_library(a.work / "library", a.photos)
    results = [one_size(s, demo, big, a.work / "mnt") for s in a.sizes.split(",")]
    print("tmpfs | exit | one clear line | traceback | integrity | previous index kept | search | rerun after freeing | ok")
    print("---|---|---|---|---|---|---|---|---")
    for r in results:
        if "skipped" in r:
            print(f"{r['size']} | skipped: {r['skipped']}")
            continue
        print(f"{r['size']} | {r['exit']} | {r['disk_full_line']} | {r['traceback']} | {r['integrity']} | "
              f"{r['previous_kept']} | {r['search_ok']} | exit {r['rerun_after_freeing']} | {r['ok']}")
    for r in results:
        if "stderr_lines" in r:
            print(f"{r['size']}: " + " / ".join(r["stderr_lines"]) + (f"  [{r['note']}]" if "note" in r else "")
                  + (f"  leftover {r['leftover_files']}" if r.get("leftover_files") else ""))
    done = [r for r in results if "skipped" not in r]
    print(f"filled disks handled: {sum(r['ok'] for r in done)} / {len(done)}")
    return 0 if all(r["ok"] for r in done) else 1


if __name__ == "__main__":
    sys.exit(main())
