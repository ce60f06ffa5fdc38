"""Images decoded once into a tensor, cached on disk beside the data (or elsewhere), and split."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgeres.data import open_source, resize_and_crop
from edgeres.errors import EdgeresError, UsageError
from edgeres.metadata import Preprocessing
from edgeres.train import tensor_cache
from edgeres.train.distributed import DistInfo
from edgeres.train.tensor_cache import CACHE_PREFIX, load_tensor_data, prepare_data
from tests.train import make_folder, make_npz, tiny_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ~/.cache/edgeres at a temporary folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "edgeres"


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """12 good 32x32 PNGs in 3 classes, plus a 48x40 JPEG, a corrupt file and a 4x4 image."""
    root = make_folder(tmp_path / "imgs", n=12, classes=3)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / "class1" / "big.jpg")
    (root / "class0" / "bad.jpg").write_bytes(b"definitely not a jpeg")
    Image.new("RGB", (4, 4)).save(root / "class2" / "tiny.png")
    return root


def never(*args: object, **kwargs: object) -> None:
    raise AssertionError("decoded again instead of reading the cache")


def test_folder_is_decoded_once_and_cached_beside_the_data(
    messy: Path, home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="edgeres.data"):
        data = load_tensor_data(str(messy), (32, 32), progress=False)
    assert data.images.shape == (13, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.class_names == ("class0", "class1", "class2") and len(data.labels) == 13
    assert len(data.skipped) == 2
    assert any("bad.jpg" in m for m in data.skipped) and any(
        "tiny.png" in m and "4x4" in m for m in data.skipped
    )
    assert sum("skipping" in r.getMessage() for r in caplog.records if r.name == "edgeres.data") == 2
    assert data.cache_path is not None and data.cache_path.parent == messy
    assert data.cache_path.name.startswith(CACHE_PREFIX) and not home.exists()
    source = open_source(messy)
    assert len(source) == 15  # the hidden cache file is not an image of the folder
    big = next(i for i in range(len(source)) if source.name(i).endswith("big.jpg"))
    expected = np.asarray(resize_and_crop(source.load(big), Preprocessing(input_size=(32, 32))))
    got = data.images[list(data.kept).index(big)].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(data.labels.numpy(), source.labels[data.kept])

    monkeypatch.setattr(tensor_cache, "_decode", never)
    again = load_tensor_data(str(messy), (32, 32), progress=False)
    assert torch.equal(again.images, data.images) and torch.equal(again.labels, data.labels)
    assert again.skipped == data.skipped and again.fingerprint == data.fingerprint


def test_a_changed_file_or_input_size_means_a_new_cache(messy: Path, home: Path) -> None:
    first = load_tensor_data(str(messy), (32, 32), progress=False)
    other_size = load_tensor_data(str(messy), (16, 16), progress=False)
    assert other_size.images.shape[-2:] == (16, 16) and other_size.fingerprint != first.fingerprint
    target = messy / "class0" / "000.png"
    Image.new("RGB", (32, 32), (9, 9, 9)).save(target)
    os.utime(target, ns=(1, 1))
    changed = load_tensor_data(str(messy), (32, 32), progress=False)
    assert changed.fingerprint != first.fingerprint
    assert int(changed.images[0].max()) == 9  # the new content, not the cached one


def test_a_damaged_cache_is_rebuilt(messy: Path, home: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = load_tensor_data(str(messy), (32, 32), progress=False)
    assert first.cache_path is not None
    first.cache_path.write_bytes(b"PK\x03\x04 truncated")
    with caplog.at_level(logging.WARNING, logger="edgeres.train"):
        again = load_tensor_data(str(messy), (32, 32), progress=False)
    assert "ignoring the decoded-image cache" in caplog.text
    assert torch.equal(again.images, first.images)
    assert again.cache_path == first.cache_path and first.cache_path.stat().st_size > 1000


def test_a_read_only_data_folder_caches_under_the_user_cache(
    messy: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messy.chmod(0o555)
    try:
        data = load_tensor_data(str(messy), (32, 32), progress=False)
        assert data.cache_path is not None and data.cache_path.parent == home
        assert not any(p.name.startswith(CACHE_PREFIX) for p in messy.iterdir())
        monkeypatch.setattr(tensor_cache, "_decode", never)
        assert load_tensor_data(str(messy), (32, 32), progress=False).cache_path == data.cache_path
    finally:
        messy.chmod(0o755)


def test_memory_mode_writes_no_cache(messy: Path, home: Path) -> None:
    data = load_tensor_data(str(messy), (32, 32), cache="memory", progress=False)
    assert data.cache_path is None and len(data) == 13
    assert not any(p.name.startswith(CACHE_PREFIX) for p in messy.iterdir()) and not home.exists()


def test_arrays_are_converted_and_resized(tmp_path: Path) -> None:
    path = make_npz(tmp_path / "d.npz", n=10, classes=2, size=40)
    data = load_tensor_data(str(path), (32, 32), progress=False)
    assert data.images.shape == (10, 3, 32, 32) and data.cache_path is None
    raw = np.load(path)["images"][3]
    expected = resize_and_crop(Image.fromarray(raw), Preprocessing(input_size=(32, 32)))
    np.testing.assert_array_equal(data.images[3].permute(1, 2, 0).numpy(), np.asarray(expected))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir() or p, "is empty"),
        (lambda p: make_folder(p, n=4, classes=1), "only 1 class"),
        (lambda p: make_npz(p.with_suffix(".npz"), n=6, classes=2, size=6), "too small"),
    ],
)
def test_bad_data_is_a_one_line_error(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path / "data")
    with pytest.raises(EdgeresError) as info:
        load_tensor_data(str(path), (32, 32), progress=False)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_flat_folder_and_all_unreadable_images(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (32, 32)).save(flat / "a.png")
    with pytest.raises(UsageError, match="no class labels"):
        load_tensor_data(str(flat), (32, 32), progress=False)
    for k in range(2):
        (tmp_path / "bad" / f"c{k}").mkdir(parents=True)
        (tmp_path / "bad" / f"c{k}" / "x.jpg").write_bytes(b"junk")
    with pytest.raises(UsageError, match="only 0 of 2 images were usable"):
        load_tensor_data(str(tmp_path / "bad"), (32, 32), cache="memory", progress=False)


def test_imagenet_nets_refuse_tiny_images(tmp_path: Path) -> None:
    path = make_npz(tmp_path / "d.npz", n=4, classes=2, size=16)
    with pytest.raises(UsageError, match="too small for a 224x224 network input"):
        load_tensor_data(str(path), (224, 224), progress=False)


def test_split_is_stratified_deterministic_and_recorded(tmp_path: Path) -> None:
    data = make_npz(tmp_path / "d.npz", n=40, classes=4)
    s = tiny_settings(data, tmp_path / "run", val_split=0.25, seed=3)
    a = prepare_data(s, (32, 32), DistInfo(), progress=False)
    b = prepare_data(s, (32, 32), DistInfo(), progress=False)
    assert a.split["kind"] == "held_out" and a.split["num_train"] == 30 and a.split["num_val"] == 10
    assert torch.equal(a.split["val_indices"], b.split["val_indices"])
    assert a.split["val_sha256"] == b.split["val_sha256"]
    assert np.bincount(a.val_labels.numpy()).tolist() == [3, 3, 2, 2]  # stratified
    val = set(a.split["val_indices"].tolist())
    assert val.isdisjoint(a.train_idx.tolist()) and len(val | set(a.train_idx.tolist())) == 40
    other = prepare_data(s.replace(seed=4), (32, 32), DistInfo(), progress=False)
    assert other.split["val_sha256"] != a.split["val_sha256"]
    none = prepare_data(s.replace(val_split=0.0), (32, 32), DistInfo(), progress=False)
    assert none.split["num_val"] == 0 and len(none.train_idx) == 40


def test_separate_validation_data_must_have_the_same_classes(tmp_path: Path) -> None:
    train = make_npz(tmp_path / "train.npz", n=12, classes=3)
    same = make_npz(tmp_path / "val.npz", n=6, classes=3, seed=1)
    s = tiny_settings(train, tmp_path / "run", val_data=str(same))
    p = prepare_data(s, (32, 32), DistInfo(), progress=False)
    assert p.split["kind"] == "val_data" and p.split["num_val"] == 6 and len(p.train_idx) == 12
    other = make_npz(tmp_path / "other.npz", n=6, classes=3, names=["cat", "dog", "emu"])
    with pytest.raises(UsageError, match="validation data's classes"):
        prepare_data(s.replace(val_data=str(other)), (32, 32), DistInfo(), progress=False)
