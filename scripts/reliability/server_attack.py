"""The server as an attack surface: `retr serve` on 127.0.0.1 given hostile requests.

Sends: uploads over the size limit, decompression bombs (a PNG declaring 900 megapixels, and one
just under the decoder's ceiling), uploads that are not images, path and id fuzzing of every route
that returns a file or a photo (traversal, encodings, huge and odd numbers), and requests whose Host
header is not the bound one. Every answer must be a clear 4xx (JSON ``error`` message) where the
request is bad, no answer may carry the bytes of a file outside the index, and the server's memory
stays bounded (peak RSS reported). Bound to 0.0.0.0 the server takes any Host (the user chose to
expose it; README); this script binds 127.0.0.1 only.

Usage::

    python scripts/reliability/server_attack.py [--ids 300] [--seed 0]
"""
from __future__ import annotations

import argparse
import random
import re
import shutil
import struct
import sys
import zlib
from pathlib import Path

import relib  # scripts/reliability/relib.py, beside this script

MAX_UPLOAD = 64 * 1024 * 1024
SECRET = b"retr-campaign-secret-3f9a"  # written next to the index: must never be served


def png_bomb(width: int, height: int) -> bytes:
    """A greyscale PNG of ``width`` x ``height`` zero pixels, compressed (a few hundred KB to a MB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    parts = [comp.compress(row * 64) for _ in range(height // 64)]
    parts.append(comp.compress(row * (height % 64)))
    parts.append(comp.flush())
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


def is_int(pid: str) -> bool:
    from urllib.parse import unquote

    try:
        int(unquote(pid))
    except ValueError:
        return False
    return True


def id_fuzz(rng: random.Random, n: int) -> list[str]:
    fixed = ["-1", "0", "1.5", "1e3", "0x10", "+1", " 1", "1 ", "%201", "１", "٣", "NaN", "inf", "true", "",
             "9" * 30, str(2 ** 63), str(2 ** 63 - 1), str(2 ** 64), str(-(2 ** 63)), "1%00", "1%0a", "..",
             "%2e%2e", "..%2f..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "1;rm", "1'--",
             "1%27%20OR%201=1", "$(id)", "%ff%fe", "%c0%ae%c0%ae", "..\\..\\etc\\passwd"]
    alphabet = "0123456789-+.%/\\ ab_~:;'\"<>"
    rnd = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(n)]
    return fixed + rnd


def main(argv=None) -> int:
    import httpx

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=int, default=300, help="random ids and path pieces per route")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/retr-server-attack"))
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    a.work.mkdir(parents=True, exist_ok=True)
    demo = relib.demo_library(a.work / "demo")
    ix = a.work / "index"
    shutil.rmtree(ix, ignore_errors=True)
    r0 = relib.retr("index", demo, "--index", ix)
    assert r0.returncode == 0, r0.stderr
    (a.work / "secret.txt").write_bytes(SECRET)
    (ix / "secret.txt").write_bytes(SECRET)
    allowed = {p.read_bytes() for p in demo.iterdir()}
    rows: list[tuple[str, str, bool, str]] = []  # (group, what, ok, answer)
    leaks: list[str] = []

    def check(group, what, r, want=(400, 404, 413, 415, 422), body_ok=None):
        clear = r.status_code in want and r.url.host == "127.0.0.1"
        if clear and 400 <= r.status_code < 500:
            try:
                clear = bool(r.json().get("error"))
            except ValueError:
                clear = False
        if SECRET in r.content or b"root:x:0:0" in r.content:
            leaks.append(f"{what}: {r.status_code}")
            clear = False
        if body_ok is not None and r.status_code == 200 and not body_ok(r.content):
            leaks.append(f"{what}: 200 with a body that is not an indexed photo")
            clear = False
        rows.append((group, what, clear, f"{r.status_code} {r.text[:90]!r}"))

    # redirects are followed (Starlette sends "/x/" to "/x" with 307): the final answer is what counts,
    # and it must come from this server
    with relib.Server(ix) as srv, httpx.Client(base_url=srv.url, timeout=300, follow_redirects=True) as c:
        rss0 = srv.rss_mb()
        # uploads
        big = b"\xff\xd8\xff\xe0" + b"\x00" * (MAX_UPLOAD + 1024)
        for route in ("/api/search/image", "/api/caption"):
            check("upload", f"{route}: {len(big) >> 20} MiB", c.post(route, files={"file": ("big.jpg", big, "image/jpeg")}),
                  want=(413,))
            for name, data, ctype in (("notes.txt", b"hello world\n" * 100, "text/plain"),
                                      ("fake.jpg", b"this is not a jpeg\n" * 100, "image/jpeg"),
                                      ("empty.jpg", b"", "image/jpeg"),
                                      ("page.html", b"<html><script>alert(1)</script></html>", "text/html"),
                                      ("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
                                      ("a.zip", b"PK\x03\x04" + b"\x00" * 100, "application/octet-stream")):
                check("not an image", f"{route}: {name} as {ctype}",
                      c.post(route, files={"file": (name, data, ctype)}), want=(415,))
            check("upload", f"{route}: no file field", c.post(route, data={"x": "1"}), want=(400, 422))
        bomb = png_bomb(30000, 30000)
        check("bomb", f"PNG 30000x30000 (900 MP) in {len(bomb) >> 10} KiB",
              c.post("/api/search/image", files={"file": ("bomb.png", bomb, "image/png")}), want=(413, 415))
        rss_before_near = srv.rss_peak_mb()
        for side in (14000, 7000):  # 196 MP: over the server's upload ceiling; 49 MP: just under it
            near = png_bomb(side, side)
            r = c.post("/api/search/image", files={"file": ("near.png", near, "image/png")})
            near_rss = srv.rss_peak_mb()
            rows.append(("bomb", f"PNG {side}x{side} ({side * side / 1e6:.0f} MP) in {len(near) >> 10} KiB",
                         r.status_code in (200, 413), f"{r.status_code}; server peak RSS {rss_before_near:.0f} -> "
                         f"{near_rss:.0f} MiB"))
        # ids and paths
        for pid in id_fuzz(rng, a.ids):
            for route in PHOTO_ROUTES:
                url = route.format(pid)
                try:
                    r = c.get(url)
                except httpx.HTTPError as e:  # a URL httpx itself refuses to send
                    rows.append(("ids", url, True, f"not sent ({e.__class__.__name__})"))
                    continue
                # an id Python reads as a whole number (" 1", "+1", "１") names that photo, as does a path
                # redirected to a photo route ("7/" -> "7"): 200 is right
                named = is_int(pid) or re.fullmatch(r"/api/photos/[0-9]+(/file|/thumb|/similar)?", r.url.path)
                check("ids", url, r, want=(200, 400, 404, 422) if named else (400, 404, 422),
                      body_ok=(lambda b: b in allowed) if route.endswith("/file") else None)
        for path in TRAVERSAL:
            r = c.get(path)
            # httpx resolves dot segments as browsers do: "/api/photos/1/thumb/.." asks for /api/photos/1
            routed = r.url.path.rstrip("/") in ("/api/photos/1", "") or r.url.path == "/"
            check("paths", f"{path} (sent as {r.url.path})", r, want=(200, 400, 404, 405, 422) if routed
                  else (400, 404, 405, 422))
        # Host header
        for host, want in (("evil.example", (400,)), ("127.0.0.1.evil.example", (400,)), ("localhost.", (400,)),
                           ("evil.example:" + str(srv.port), (400,)), ("", (400,)),
                           (f"127.0.0.1:{srv.port}", (200,)), ("localhost", (200,)), ("[::1]:80", (200,))):
            r = c.get("/api/status", headers={"Host": host})
            check("host", f"Host: {host!r}", r, want=want)
        rss_peak = srv.rss_peak_mb()
    groups = {}
    for g, what, ok, ans in rows:
        t = groups.setdefault(g, [0, 0, []])
        t[0] += 1
        t[1] += ok
        if not ok:
            t[2].append(f"{what} -> {ans}")
    print("attack | requests | clear answers | examples of others")
    print("---|---|---|---")
    for g, (n, ok, bad) in groups.items():
        print(f"{g} | {n} | {ok} | {'; '.join(x[:160] for x in bad[:3])}")
    print(f"files outside the index served: {len(leaks)}" + (f" {leaks[:5]}" if leaks else ""))
    print(f"server RSS: {rss0:.0f} MiB at start, peak {rss_peak:.0f} MiB")
    for g, what, ok, ans in rows:
        if g == "bomb":
            print(f"  {what}: {ans}")
    total_ok = all(ok for _, _, ok, _ in rows) and not leaks
    return 0 if total_ok else 1


PHOTO_ROUTES = ("/api/photos/{}", "/api/photos/{}/file", "/api/photos/{}/thumb", "/api/photos/{}/similar")
TRAVERSAL = ("/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/static/../../etc/passwd",
             "/api/photos/1/file/../../../../etc/passwd", "/api/photos/1/../../../secret.txt",
             "//etc/passwd", "/secret.txt", "/index/secret.txt", "/thumbs/../secret.txt", "/retr.sqlite",
             "/api/photos/1/file%2f..%2f..%2fsecret.txt", "/api/..%2f..%2fsecret.txt", "/%00", "/\\..\\secret.txt",
             "/api/photos//file", "/api/photos/1/thumb/..", "/docs/../../secret.txt", "/openapi.json/../secret.txt")


if __name__ == "__main__":
    sys.exit(main())
