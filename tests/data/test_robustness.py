"""Hostile or damaged data: memory bombs, symlink loops, undecodable names, damaged files.

Each bad image is skipped, logged and counted like a corrupt one; each bad data file is one
``error: ...`` line. Nothing here may end in a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeres.data import SkippedImages, iter_batches, open_source
from edgeres.errors import EdgeresError
from edgeres.metadata import Preprocessing

REPO = Path(__file__).resolve().parents[2]
PRE = Preprocessing(input_size=(32, 32))


def _flat_with(root: Path, name: str, img: Image.Image) -> Path:
    root.mkdir()
    for i in range(2):
        Image.new("RGB", (32, 32), (10 * i, 20, 30)).save(root / f"ok{i}.png")
    img.save(root / name)
    return root


def test_a_thin_image_is_skipped_and_counted_without_a_huge_resize(tmp_path: Path) -> None:
    """1x100,000 pixels in a few KB: resized to 32 on its short side it would be 32x3,200,000."""
    root = _flat_with(tmp_path / "flat", "thin.png", Image.new("L", (1, 100_000), 7))
    assert (root / "thin.png").stat().st_size < 20_000
    script = textwrap.dedent(
        f"""
        import json, time
        from edgeres.data import SkippedImages, iter_batches, open_source
        from edgeres.metadata import Preprocessing
        def peak_mb():  # this process's own high-water mark (ru_maxrss can carry the parent's)
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
        skipped, start = SkippedImages(), time.monotonic()
        n = sum(len(x) for x, _ in iter_batches(open_source({str(root)!r}), None,
                Preprocessing(input_size=(32, 32)), skipped=skipped))
        print(json.dumps({{"images": n, "skipped": skipped.messages, "seconds": time.monotonic() - start,
                          "peak_mb": peak_mb()}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["images"] == 2 and len(out["skipped"]) == 1
    assert "thin.png" in out["skipped"][0] and "aspect ratio beyond 20:1" in out["skipped"][0]
    assert out["peak_mb"] < 200 and out["seconds"] < 10  # the resize alone would take 300 MB


@pytest.mark.parametrize("side", [9_500, 20_000])
def test_a_decompression_bomb_is_skipped_before_decoding(tmp_path: Path, side: int) -> None:
    """PNGs of a few hundred KB that claim 90 and 400 megapixels (Pillow refuses only the second)."""
    root = _flat_with(tmp_path / "flat", "bomb.png", Image.new("1", (side, side)))
    skipped = SkippedImages()
    n = sum(len(x) for x, _ in iter_batches(open_source(root), None, PRE, skipped=skipped))
    assert n == 2 and skipped.count == 1 and "bomb.png" in skipped.messages[0]
    assert "pixels" in skipped.messages[0]


def test_an_array_of_absurd_shape_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "thin.npz"
    np.savez(path, images=np.zeros((2, 1, 1000, 3), np.uint8))
    with pytest.raises(EdgeresError, match="aspect ratio beyond 20:1"):
        list(iter_batches(open_source(path), None, PRE))
