"""Makes the README's screenshots of the HTML report: three real recordings, in headless Chromium.

Run from the repository root: python docs/screenshots/make.py
Needs chromium (apt-get install chromium) and, to trim the page's empty tail and shrink the PNGs to a
256-colour palette, Pillow (pip install --target /tmp/pil pillow; PYTHONPATH=/tmp/pil python ...).

- gpu-bound-h200.png: tests/fixtures/gpu-h200-4b-8api-open (vLLM 0.26, H200, 4B shape, 8 API servers,
  open-loop load, client 0's stress report added as stress.json);
- cpu-bound-h200.png: tests/fixtures/gpu-h200-0.6b-1api-closed (vLLM 0.26, H200, 0.6B shape, one API
  server pinned at a core);
- healthy-cpu-lab.png: tests/fixtures/vllm-0.32-cpu-lab (real vLLM 0.32 on the CPU lab, light load, no
  GPU and no host samples: the absent charts are listed with their reasons).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from browser_support import screenshot  # noqa: E402

from diagnose.cli import main  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
OUT = Path(__file__).resolve().parent
WIDTH = 1280


def bundles(tmp: Path) -> dict[str, Path]:
    """Paths relative to the folder the report runs in (the page shows them as its source)."""
    gpu = tmp / "gpu-h200-4b-8api-open-with-stress"
    shutil.copytree(FIXTURES / "gpu-h200-4b-8api-open" / "bundle", gpu)
    shutil.copy(FIXTURES / "gpu-h200-4b-8api-open" / "stress-0.json", gpu / "stress.json")
    return {
        "gpu-bound-h200": gpu,
        "cpu-bound-h200": FIXTURES / "gpu-h200-0.6b-1api-closed" / "bundle",
        "healthy-cpu-lab": FIXTURES / "vllm-0.32-cpu-lab",
    }


def shrink(png: Path) -> None:
    """Trims the page's empty tail and re-saves with a 256-colour palette, when Pillow is there."""
    try:
        from PIL import Image, ImageChops
    except ImportError:
        print("Pillow not importable: PNGs kept as Chromium wrote them")
        return
    image = Image.open(png).convert("RGB")
    background = Image.new("RGB", image.size, image.getpixel((image.width - 1, image.height - 1)))
    box = ImageChops.difference(image, background).getbbox()
    if box is not None:
        image = image.crop((0, 0, image.width, min(image.height, box[3] + 16)))
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)


def main_() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name, bundle in bundles(tmp).items():
            page = tmp / f"{name}.html"
            os.chdir(REPO if bundle.is_relative_to(REPO) else tmp)
            where = bundle.relative_to(Path.cwd())
            if main(["report", str(where), "--html", str(page)]) != 0:
                sys.exit(f"report failed for {bundle}")
            png = screenshot(page, OUT / f"{name}.png", width=WIDTH, height=4000)
            shrink(png)
            print(f"{png.relative_to(REPO)}: {png.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main_()
