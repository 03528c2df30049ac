#!/usr/bin/env bash
# Rebuild data/photos/ from the two redistributable sources it was made from.
#
# NOT needed at run time: the photos are committed. This script only documents
# (and can repeat) how they were obtained.
#
# Needs: pip (PyPI reachable), apt-get + dpkg-deb (Debian archive reachable,
#        darknet is in Debian main, e.g. bookworm), and a Python with Pillow
#        (set PYTHON=/path/to/python if plain python3 has no Pillow).
# Usage: data/make_demo_corpus.sh            (from anywhere)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$HERE/photos"
PYTHON="${PYTHON:-python3}"
SKIMAGE_VERSION="${SKIMAGE_VERSION:-0.26.0}"   # version the committed photos came from
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# 1. scikit-image wheel: sample photos shipped inside it (skimage/data/).
#    Licences are stated in the docstrings of skimage/data/_fetchers.py.
pip download --no-deps --only-binary=:all: -d "$WORK/skw" "scikit-image==$SKIMAGE_VERSION"
mkdir -p "$WORK/skimage"
"$PYTHON" -m zipfile -e "$WORK"/skw/scikit_image-*.whl "$WORK/skimage"
SK="$WORK/skimage/skimage/data"

# 2. Debian package darknet (0.0.0+git20180914.61c9d02e): example photos in
#    /usr/share/darknet/data/. Licence: /usr/share/doc/darknet/copyright.
#    (apt-get update needs root; the download itself does not install anything.)
if [ "$(id -u)" = 0 ]; then apt-get update -qq; fi
(cd "$WORK" && apt-get download darknet)
dpkg-deb -x "$WORK"/darknet_*.deb "$WORK/darknet"
DK="$WORK/darknet/usr/share/darknet/data"
cp "$WORK/darknet/usr/share/doc/darknet/copyright" "$WORK/darknet-copyright.txt"

# 3. Convert: RGB JPEG, quality 90, longer side <= 1024 px, no metadata.
mkdir -p "$OUT"
"$PYTHON" - "$SK" "$DK" "$OUT" <<'EOF'
import sys
from pathlib import Path
from PIL import Image

sk, dk, out = map(Path, sys.argv[1:4])
PHOTOS = [  # (source file, saved name)
    (sk / "astronaut.png", "astronaut.jpg"),
    (sk / "chelsea.png", "cat.jpg"),
    (sk / "coffee.png", "coffee.jpg"),
    (sk / "rocket.jpg", "rocket.jpg"),
    (sk / "camera.png", "cameraman.jpg"),
    (dk / "dog.jpg", "dog_bicycle_truck.jpg"),
    (dk / "eagle.jpg", "eagle.jpg"),
    (dk / "giraffe.jpg", "giraffe_zebra.jpg"),
    (dk / "horses.jpg", "horses.jpg"),
    (dk / "kite.jpg", "kites_beach.jpg"),
    (dk / "person.jpg", "person_dog_horse.jpg"),
]
for src, name in PHOTOS:
    with Image.open(src) as im:
        im = im.convert("RGB")
        im.thumbnail((1024, 1024), Image.LANCZOS)  # only ever shrinks
        im.save(out / name, "JPEG", quality=90, optimize=True)
        print(f"{name:24s} {im.width}x{im.height}  {(out / name).stat().st_size // 1024} KB  <- {src.name}")
EOF

# 4. Check captions.json still matches the saved files (sizes are hand-copied).
if [ -f "$HERE/captions.json" ]; then
"$PYTHON" - "$HERE" <<'EOF'
import json, sys
from pathlib import Path
from PIL import Image
here = Path(sys.argv[1])
coco = json.loads((here / "captions.json").read_text())
bad = 0
for img in coco["images"]:
    with Image.open(here / "photos" / img["file_name"]) as im:
        if im.size != (img["width"], img["height"]):
            print("size mismatch:", img["file_name"], im.size); bad += 1
print("captions.json:", len(coco["images"]), "images,", len(coco["annotations"]), "captions,", "OK" if not bad else f"{bad} mismatches")
sys.exit(1 if bad else 0)
EOF
fi
