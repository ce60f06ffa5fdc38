from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgeres.data import open_source, read_manifest, write_manifest
from edgeres.errors import EdgeresError

from .conftest import CLASSES

SUBSET = ["cat/a.jpg", "zebra/z.JPEG", "cat/c_gray.png"]


def test_manifest_round_trip(class_folder: Path, tmp_path: Path) -> None:
    out = write_manifest(class_folder, SUBSET, tmp_path / "out" / "calib.txt")
    lines = out.read_text().splitlines()
    assert lines[0] == "# edgeres image manifest, format 1"
    assert any(line == f"# root: {class_folder.resolve()}" for line in lines)
    assert "# count: 3" in lines and any(line.startswith("# created: ") for line in lines)
    body = [line for line in lines if not line.startswith("#")]
    assert [line.split("  ", 1)[1] for line in body] == SUBSET
    assert all(len(line.split("  ", 1)[0]) == 64 for line in body)
    assert [p.name for p in out.parent.iterdir()] == ["calib.txt"]  # no temp file left

    src = read_manifest(out)
    assert src.class_names == CLASSES  # all classes, not just those in the subset
    assert src.labels.tolist() == [0, 2, 0]
    assert [p.name for p in src.paths] == ["a.jpg", "z.JPEG", "c_gray.png"]
    assert src.load(1).mode == "RGB"
    via_open = open_source(out)
    assert via_open.labels.tolist() == [0, 2, 0]


def test_tampered_file_is_detected(class_folder: Path, tmp_path: Path) -> None:
    out = write_manifest(class_folder, SUBSET, tmp_path / "calib.txt")
    target = class_folder / "zebra" / "z.JPEG"
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(EdgeresError) as info:
        read_manifest(out)
    msg = str(info.value)
    assert "z.JPEG" in msg and "edgeres calib-set" in msg and "\n" not in msg
    assert len(read_manifest(out, verify=False)) == 3


def test_missing_file_and_moved_root(class_folder: Path, tmp_path: Path) -> None:
    out = write_manifest(class_folder, SUBSET, tmp_path / "calib.txt")
    moved = tmp_path / "moved"
    shutil.move(class_folder, moved)
    # The recorded root is gone: an explicit root works ...
    assert read_manifest(out, root=moved).labels.tolist() == [0, 2, 0]
    # ... and without it, the manifest's own folder is tried and the file is named as missing.
    with pytest.raises(EdgeresError, match=r"cat/a\.jpg listed in manifest .* is missing"):
        read_manifest(out)
    # A manifest next to its images needs no root at all.
    local = write_manifest(moved, SUBSET, moved / "calib.txt")
    shutil.move(moved, tmp_path / "again")
    assert len(read_manifest(tmp_path / "again" / local.name)) == 3


def test_bad_manifests(class_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(EdgeresError, match="does not exist"):
        read_manifest(tmp_path / "none.txt")
    plain = tmp_path / "plain.txt"
    plain.write_text("hello\n")
    with pytest.raises(EdgeresError, match="line 1"):
        read_manifest(plain)
    out = write_manifest(class_folder, SUBSET, tmp_path / "calib.txt")
    out.write_text("\n".join(out.read_text().splitlines()[:-1]) + "\n")  # drop the last entry
    with pytest.raises(EdgeresError, match="says 3 images but lists 2"):
        read_manifest(out)
    with pytest.raises(EdgeresError, match="inside it"):
        write_manifest(class_folder, ["../escape.png"], tmp_path / "x.txt")
    with pytest.raises(EdgeresError, match="no such file"):
        write_manifest(class_folder, ["cat/none.png"], tmp_path / "x.txt")
    assert not (tmp_path / "x.txt").exists()


def test_flat_manifest_has_unknown_labels(bad_folder: Path, tmp_path: Path) -> None:
    out = write_manifest(bad_folder, ["good0.png", "good2.png"], tmp_path / "flat.txt")
    src = read_manifest(out)
    assert src.class_names == () and src.labels.tolist() == [-1, -1]
