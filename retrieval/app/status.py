"""``retr status``: what an index holds (its photo folders with counts, the model, the last run,
the size on disk), read without loading any model."""
from __future__ import annotations

import os
from pathlib import Path

from retrieval.store.folders import photos_under, recorded_folders


def disk_size(index_dir: Path) -> int:
    """Bytes of every file under ``index_dir`` (0 when it does not exist)."""
    total = 0
    for dirpath, _, names in os.walk(index_dir):
        for n in names:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_size
            except OSError:
                pass
    return total


def index_status(index_dir: Path, db: str | None = None) -> dict:
    """What the index at ``index_dir`` holds, as a dict: ``index`` (path), ``photos``, ``texts``,
    ``folders`` (list of ``{path, photos, last_run}``), ``model`` (encoder id), ``last_run``
    (ISO 8601 UTC), ``bytes`` (size on disk of the index folder), ``concepts`` (photos with their
    ImageNet concepts; the others get them on the next ``retr index`` of their folder), ``generated`` (photos
    with their generated caption; the others get one on the next ``retr index`` of their folder), ``ocr`` (how far
    reading the text in photos has got: ``considered``, ``skipped`` by the gate, ``read``, ``with_text``), ``objects`` (photos that have been through the COCO detector; the
    others get theirs on the next ``retr index`` of their folder).

    Raises:
        StoreError: no index there, or it cannot be read.
    """
    from retrieval.search import Index

    reader = Index(index_dir, db_url=db).reader
    try:
        folders = [{"path": p, "photos": photos_under(reader, p), "last_run": t}
                   for p, t in recorded_folders(reader).items()]
        return {"index": str(Path(index_dir).absolute()), "photos": reader.count("photos"),
                "texts": reader.count("texts"), "folders": folders, "model": reader.get_meta("encoder_id"),
                "last_run": reader.get_meta("updated_at"), "bytes": disk_size(Path(index_dir)),
                "concepts": reader.count_concepts(), "generated": reader.count_generated(), "ocr": reader.ocr_progress(),
                "objects": reader.count_objects()}
    finally:
        reader.close()


def human_bytes(n: int) -> str:
    """``n`` bytes as ``12.3 MB`` (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def ocr_line(ocr: dict, photos: int) -> str:
    """The ``text`` line of ``retr status``: how far reading the text in photos has got."""
    waiting = photos - ocr["considered"]
    return (f"text      {ocr['considered']} of {photos} photos considered: {ocr['read']} read "
            f"({ocr['with_text']} with text), {ocr['skipped']} skipped by the gate"
            + (f"; {waiting} not yet (`retr index` on their folders reads them)" if waiting else ""))


def status_lines(st: dict) -> list[str]:
    """The lines ``retr status`` prints for :func:`index_status`'s dict."""
    lines = [f"index     {st['index']}",
             f"photos    {st['photos']} ({st['texts']} captions)",
             f"model     {st['model'] or 'none yet'}",
             f"last run  {st['last_run'] or 'never finished'}",
             f"size      {human_bytes(st['bytes'])} on disk",
             f"concepts  {st['concepts']} of {st['photos']} photos"
             + (" (`retr index` on their folders adds the rest)" if st["concepts"] < st["photos"] else ""),
             f"captions  generated for {st.get('generated', 0)} of {st['photos']} photos"
             + (" (`retr index` on their folders writes the rest)" if st.get("generated", 0) < st["photos"] else ""),
             ocr_line(st["ocr"], st["photos"]),
             f"objects   detected in {st.get('objects', 0)} of {st['photos']} photos"
             + (" (`retr index` on their folders detects the rest)" if st.get("objects", 0) < st["photos"] else ""),
             "folders" + ("" if st["folders"] else "   none recorded (indexed before folders were recorded)")]
    for f in st["folders"]:
        lines.append(f"  {f['photos']:>8}  {f['path']}  (last run {f['last_run']})")
    counted = sum(f["photos"] for f in st["folders"])
    if st["folders"] and counted < st["photos"]:
        lines.append(f"  {st['photos'] - counted:>8}  elsewhere (folders indexed before they were recorded)")
    return lines
