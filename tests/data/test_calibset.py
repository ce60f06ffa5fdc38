"""`edgeres calib-set`: a stratified, reproducible, hash-checked calibration manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from edgeres.data import open_source, read_manifest
from edgeres.errors import EdgeresError


def _folder(root: Path, per_class: dict[str, int]) -> Path:
    for name, n in per_class.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i * 10 % 256, len(name), 7)).save(root / name / f"{i}.png")
    return root


def test_calib_set_is_stratified_reproducible_and_readable(run_cli, tmp_path: Path) -> None:
    data = _folder(tmp_path / "data", {"a": 30, "b": 10})
    out1, out2 = tmp_path / "c1.txt", tmp_path / "c2.txt"
    r = run_cli("calib-set", str(data), "--size", "8", "-o", str(out1))
    assert r.code == 0, r.err
    assert "8 images (a 6, b 2)" in r.out
    assert run_cli("calib-set", str(data), "--size", "8", "-o", str(out2)).code == 0
    lines = lambda p: [x for x in p.read_text().splitlines() if not x.startswith("#")]  # noqa: E731
    assert lines(out1) == lines(out2)
    source = open_source(out1)
    assert len(source) == 8 and source.class_names == ("a", "b")
    assert sorted(source.labels.tolist()) == [0] * 6 + [1] * 2


def test_calib_set_detects_a_changed_image(run_cli, tmp_path: Path) -> None:
    data = _folder(tmp_path / "data", {"a": 3, "b": 3})
    out = tmp_path / "c.txt"
    assert run_cli("calib-set", str(data), "--size", "6", "-o", str(out)).code == 0
    Image.new("RGB", (8, 8), (255, 255, 255)).save(data / "a" / "0.png")
    with pytest.raises(EdgeresError, match=r"a/0\.png.*calib-set"):
        read_manifest(out)


def test_calib_set_refuses_non_folders(run_cli, tmp_path: Path) -> None:
    r = run_cli("calib-set", str(tmp_path / "missing"), "-o", str(tmp_path / "c.txt"))
    assert r.code == 2
    assert not (tmp_path / "c.txt").exists()


def test_calib_set_writes_its_manifest_with_the_usual_mode(run_cli, tmp_path: Path) -> None:
    import os
    import stat

    data = _folder(tmp_path / "data", {"a": 3, "b": 3})
    old = os.umask(0o022)
    try:
        assert run_cli("calib-set", str(data), "--size", "4", "-o", str(tmp_path / "c.txt")).code == 0
        (tmp_path / "other.txt").write_text("x")  # what open() gives under the same umask
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "c.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "other.txt").stat().st_mode) == 0o644
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_calib_set_leaves_out_empty_images_with_a_warning(run_cli, tmp_path: Path) -> None:
    data = _folder(tmp_path / "data", {"a": 3, "b": 3})
    for name in ("a/e1.png", "a/e2.png", "b/e3.jpg"):
        (data / name).write_bytes(b"")
    (data / "b" / "bad.png").write_bytes(b"not a png at all")
    out = tmp_path / "c.txt"
    r = run_cli("calib-set", str(data), "--size", "20", "-o", str(out))
    assert r.code == 0, r.err
    assert "skipping 3 empty (0-byte) image file(s)" in r.err and "bad.png" in r.err
    source = open_source(out)
    assert len(source) == 6 and "6 images (a 3, b 3)" in r.out
    assert all(p.stat().st_size > 0 and p.name != "bad.png" for p in source.paths)


def test_calib_set_of_only_empty_images_is_an_error(run_cli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    for i in range(4):
        (data / "a" / f"{i}.png").write_bytes(b"")
    out = tmp_path / "c.txt"
    r = run_cli("calib-set", str(data), "--size", "4", "-o", str(out))
    lines = r.err.strip().splitlines()
    assert r.code == 1 and lines[-1].startswith("error: every image file of") and "0 bytes" in lines[-1]
    assert "Traceback" not in r.err and not out.exists()
    (data / "a" / "0.png").write_bytes(b"garbage")  # one non-empty file that does not decode
    r = run_cli("calib-set", str(data), "--size", "4", "-o", str(out))
    assert r.code == 2 and "error: none of the 1 images sampled" in r.err and not out.exists()
