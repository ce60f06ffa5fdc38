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


# -- data folders: skipped and counted, never a traceback --------------------------------------


def _class_folder(root: Path) -> Path:
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (32, 32), (i, 9, 9)).save(root / name / f"{i}.png")
    return root


def test_symlink_loops_are_skipped_and_counted(tmp_path: Path) -> None:
    root = _class_folder(tmp_path / "data")
    (root / "cat" / "again").symlink_to(root / "cat", target_is_directory=True)  # cat/again/again/...
    (root / "dog" / "up").symlink_to(root, target_is_directory=True)  # back to the top
    (root / "dog" / "self.png").symlink_to(root / "dog" / "self.png")  # a link to itself
    source = open_source(root)
    assert len(source) == 4 and source.class_names == ("cat", "dog")
    assert len(source.skipped_entries) == 3 and "3 entries skipped" in source.describe()
    assert any("symbolic link loop" in m and "again" in m for m in source.skipped_entries)


def test_undecodable_file_names_are_skipped_and_counted(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    root = _class_folder(tmp_path / "data")
    bad = os.path.join(os.fsencode(root / "cat"), b"caf\xe9.png")  # Latin-1, not UTF-8
    Image.new("RGB", (32, 32)).save(open(bad, "wb"), format="PNG")  # noqa: SIM115
    os.mkdir(os.path.join(os.fsencode(root), b"\xff\xfeclass"))
    source = open_source(root)
    assert len(source) == 4 and source.class_names == ("cat", "dog")
    assert len(source.skipped_entries) == 2
    assert all("not valid UTF-8" in m for m in source.skipped_entries)
    manifest = tmp_path / "calib.txt"
    r = run_cli("calib-set", str(root), "--size", "4", "-o", str(manifest))
    assert r.code == 0, r.err
    assert "Traceback" not in r.err and r.err.count("not valid UTF-8") == 2
    assert len(open_source(manifest)) == 4


def test_a_class_names_file_that_is_not_utf8_is_one_line(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    names = tmp_path / "classes.txt"
    names.write_bytes(b"caf\xe9\nth\xe9\n")
    r = run_cli("eval", str(tmp_path / "m.onnx"), "--data", str(tmp_path), "--classes", str(names))
    lines = r.err.strip().splitlines()
    assert r.code == 2 and len(lines) == 1 and "Traceback" not in r.err
    assert lines[0].startswith("error: cannot read the class names file") and str(names) in lines[0]


def test_a_manifest_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_bytes(b"# edgeres image manifest, format 1\n# root: /x\xff\n")
    with pytest.raises(EdgeresError, match="cannot read manifest") as err:
        open_source(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_truncated_npz_is_one_line(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    whole = tmp_path / "whole.npz"
    rng = np.random.default_rng(0)
    np.savez_compressed(
        whole, images=rng.integers(0, 255, (50, 32, 32, 3), dtype=np.uint8), labels=np.zeros(50)
    )
    data = whole.read_bytes()
    for cut in (len(data) // 2, len(data) - 30):
        part = tmp_path / f"cut{cut}.npz"
        part.write_bytes(data[:cut])
        with pytest.raises(EdgeresError, match=r"cannot read .* as a \.npz of images"):
            open_source(part)
    from tests.data.colour_model import colour_checkpoint

    r = run_cli("eval", str(colour_checkpoint(tmp_path / "m.pt")), "--data", str(part), "--no-progress")
    assert r.code == 1 and r.err.startswith("error: cannot read") and len(r.err.strip().splitlines()) == 1


def test_a_damaged_cifar_batch_is_one_line(tmp_path: Path) -> None:
    import pickle

    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    labels = [0, 1] * 5
    batch = {b"data": np.zeros((10, 3072), np.uint8), b"labels": labels}
    good = pickle.dumps(batch, protocol=2)
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}, protocol=2))
    for i in range(1, 6):
        (root / f"data_batch_{i}").write_bytes(good)
    (root / "data_batch_3").write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(EdgeresError, match="data_batch_3 is not a readable CIFAR batch") as err:
        open_source(tmp_path)
    assert "\n" not in str(err.value)
    (root / "data_batch_3").write_bytes(pickle.dumps({**batch, b"labels": labels[:3]}, protocol=2))
    with pytest.raises(EdgeresError, match="labels for") as err:
        open_source(tmp_path)
