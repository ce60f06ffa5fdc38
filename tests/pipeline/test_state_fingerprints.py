"""What a stage's inputs fingerprint to: files, data folders, manifests and named data sets.

A fingerprint is what pipeline.json records and compares; every test here changes one thing a
user can change (a file's content, its time, its name, a folder's files) and checks that the
fingerprint changes with it, or stays the same when nothing did.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from edgeres.errors import EdgeresError
from edgeres.pipeline.state import data_fingerprint, file_fingerprint

T0 = 1_700_000_000 * 10**9  # a fixed modification time (ns), so only what a test changes differs


def _write(path: Path, data: bytes, mtime_ns: int = T0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_a_file_fingerprints_to_its_size_and_time_and_a_missing_one_to_none(tmp_path: Path) -> None:
    f = _write(tmp_path / "a.bin", b"12345")
    assert file_fingerprint(f) == {"size": 5, "mtime_ns": T0}
    assert file_fingerprint(tmp_path / "missing.bin") is None


def test_a_data_file_is_fingerprinted_by_name_size_and_time(tmp_path: Path) -> None:
    f = _write(tmp_path / "images.npz", b"abc")
    assert data_fingerprint(str(f)) == {"spec": str(f), "size": 3, "mtime_ns": T0}


def test_a_folder_fingerprint_names_the_folder_and_counts_its_files(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    _write(folder / "cat" / "1.png", b"x")
    _write(folder / "dog" / "2.png", b"y")
    fp = data_fingerprint(str(folder))
    assert set(fp) == {"spec", "files", "sha256"} and fp["spec"] == str(folder) and fp["files"] == 2
    assert len(fp["sha256"]) == 64


@pytest.mark.parametrize("change", ["content", "time", "name", "class", "removed"])
def test_any_change_to_a_folder_s_files_changes_its_fingerprint(tmp_path: Path, change: str) -> None:
    folder = tmp_path / "data"
    image = _write(folder / "cat" / "1.png", b"x")
    _write(folder / "dog" / "2.png", b"y")
    before = data_fingerprint(str(folder))
    if change == "content":  # same time, other size
        _write(image, b"xx")
    elif change == "time":  # same size
        os.utime(image, ns=(T0, T0 + 1))
    elif change == "name":  # same size and time
        image.rename(folder / "cat" / "3.png")
    elif change == "class":  # moved to another class folder: its label changes
        image.rename(folder / "dog" / "1.png")
    else:
        image.unlink()
    assert data_fingerprint(str(folder)) != before


def test_a_folder_fingerprint_does_not_depend_on_the_order_files_were_made(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for name in ("a.png", "b.png", "c/d.png"):
        _write(one / name, b"x")
    for name in ("c/d.png", "b.png", "a.png"):
        _write(two / name, b"x")
    fp1, fp2 = data_fingerprint(str(one)), data_fingerprint(str(two))
    assert (fp1["files"], fp1["sha256"]) == (fp2["files"], fp2["sha256"]) == (3, fp1["sha256"])


def test_a_broken_link_in_a_folder_is_passed_over_and_the_files_after_it_still_count(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "0-broken.png").symlink_to(tmp_path / "nowhere.png")
    image = _write(folder / "cat" / "1.png", b"x")
    before = data_fingerprint(str(folder))
    assert before["files"] == 1
    _write(image, b"changed")
    assert data_fingerprint(str(folder)) != before


def test_a_link_back_up_from_deep_inside_a_folder_is_not_walked(tmp_path: Path) -> None:
    # The folder's name ends in a space, which a careless strip of the path would drop.
    folder = tmp_path / "data "
    _write(folder / "cat" / "1.png", b"x")
    (folder / "cat" / "up").symlink_to(folder, target_is_directory=True)
    assert data_fingerprint(str(folder))["files"] == 1


def test_a_name_that_is_not_a_path_is_fingerprinted_by_name(tmp_path: Path) -> None:
    assert data_fingerprint("digits") == {"spec": "digits"}
    assert data_fingerprint(str(tmp_path / "missing")) == {"spec": str(tmp_path / "missing")}


def _manifest(tmp_path: Path, names: list[str], out: str = "calib.txt") -> tuple[Path, list[Path]]:
    from edgeres.data import write_manifest

    root = tmp_path / "images"
    images = [_write(root / "cat" / n, n.encode()) for n in names]
    manifest = write_manifest(root, [f"cat/{n}" for n in names], tmp_path / out)
    os.utime(manifest, ns=(T0, T0))
    return manifest, images


def test_a_manifest_fingerprint_holds_the_manifest_and_the_images_it_lists(tmp_path: Path) -> None:
    manifest, _ = _manifest(tmp_path, ["1.png", "2.png"])
    fp = data_fingerprint(str(manifest))
    assert set(fp) == {"spec", "size", "mtime_ns", "files", "sha256"}
    assert (fp["spec"], fp["size"], fp["mtime_ns"], fp["files"]) == (
        str(manifest),
        manifest.stat().st_size,
        T0,
        2,
    )
    upper, _ = _manifest(tmp_path / "upper", ["1.png"], out="CALIB.TXT")
    assert data_fingerprint(str(upper))["files"] == 1  # the suffix is matched in any case


@pytest.mark.parametrize("change", ["content", "time"])
def test_a_listed_image_changed_in_place_changes_its_manifest_fingerprint(
    tmp_path: Path, change: str
) -> None:
    """The manifest itself is unchanged; its sha256 lines no longer match, which the stage reports."""
    manifest, images = _manifest(tmp_path, ["1.png", "2.png"])
    before = data_fingerprint(str(manifest))
    if change == "content":
        _write(images[1], b"other content, same time")
    else:
        os.utime(images[1], ns=(T0, T0 + 1))
    after = data_fingerprint(str(manifest))
    # still fingerprinted with its images (their checksums are not verified here)
    assert after["files"] == 2 and after["sha256"] != before["sha256"]
    assert after["mtime_ns"] == before["mtime_ns"] == T0


def test_a_manifest_that_cannot_be_read_is_fingerprinted_as_a_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The stage that reads it says what is wrong; the fingerprint says why at debug level."""
    manifest, images = _manifest(tmp_path, ["1.png"])
    images[0].unlink()
    with caplog.at_level(logging.DEBUG, logger="edgeres.pipeline.state"):
        fp = data_fingerprint(str(manifest))
    assert fp == {"spec": str(manifest), "size": manifest.stat().st_size, "mtime_ns": T0}
    [record] = [r for r in caplog.records if r.name == "edgeres.pipeline.state"]
    assert record.levelno == logging.DEBUG and isinstance(record.exc_info, tuple)
    assert isinstance(record.exc_info[1], EdgeresError)  # with the reason, for --verbose
    assert record.getMessage() == f"manifest {manifest} not read for its fingerprint"
    notes = _write(tmp_path / "notes.txt", b"not a manifest")
    assert data_fingerprint(str(notes)) == {"spec": str(notes), "size": 14, "mtime_ns": T0}
