from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edgeres.data import ArraySource, download_cifar10, open_source
from edgeres.errors import EdgeresError, UsageError

from .conftest import write_cifar10

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def test_cifar10_train_and_test_splits(cifar10_root: Path) -> None:
    train = open_source(cifar10_root)
    assert isinstance(train, ArraySource)
    assert len(train) == 20
    assert train.class_names == CIFAR10_NAMES
    assert train.images.shape == (20, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.labels.tolist()[:4] == [1, 2, 3, 4]  # data_batch_1 starts at label 1
    test = open_source(cifar10_root, split="test")
    assert len(test) == 4 and test.labels.tolist() == [0, 1, 2, 3]
    assert "test split" in test.describe()


def test_cifar10_pixels_are_unpacked_channel_planes(cifar10_root: Path) -> None:
    folder = cifar10_root / "cifar-10-batches-py"
    with open(folder / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"]
    src = open_source(folder)  # the batches folder itself works too
    row = raw[2]
    img = np.asarray(src.load(2))
    assert img[0, 0].tolist() == [row[0], row[1024], row[2048]]
    assert img[31, 31].tolist() == [row[1023], row[2047], row[3071]]


def test_cifar100(cifar100_dir: Path) -> None:
    train = open_source(cifar100_dir.parent)
    assert train.class_names == ("apple", "bee", "cup", "dolphin", "elm")
    assert train.labels.tolist() == [0, 1, 2, 3, 4, 0]
    test = open_source(cifar100_dir, split="test")
    assert len(test) == 3


def test_cifar_errors(cifar10_root: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="'train' or 'test'"):
        open_source(cifar10_root, split="val")
    folder = cifar10_root / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    with pytest.raises(EdgeresError, match="data_batch_3 is missing"):
        open_source(cifar10_root)
    (folder / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(EdgeresError, match="not a readable CIFAR batch") as info:
        open_source(cifar10_root)
    assert info.value.exit_code == 1  # a damaged input, not a wrong command line


def test_cifar_pickle_cannot_run_code(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path / "evil")

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(EdgeresError, match=r"refusing to load \w+\.print"):
        open_source(folder, split="test")


def _tarball(tmp_path: Path) -> tuple[Path, str]:
    staging = tmp_path / "staging"
    write_cifar10(staging / "cifar-10-batches-py", per_batch=2)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


def test_download_cifar10_from_local_url(tmp_path: Path) -> None:
    archive, md5 = _tarball(tmp_path)
    root = tmp_path / "data"
    out = download_cifar10(root, url=archive.as_uri(), md5=md5, progress=False)
    assert out == root / "cifar-10-batches-py"
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]  # no temp files left
    src = open_source(root)
    assert len(src) == 10 and src.class_names[0] == "airplane"
    # Already there: no second download (a bad URL would fail otherwise).
    assert download_cifar10(root, url="file:///nonexistent.tar.gz", md5=md5, progress=False) == out


def test_download_cifar10_wrong_md5_leaves_nothing(tmp_path: Path) -> None:
    archive, _ = _tarball(tmp_path)
    root = tmp_path / "data"
    with pytest.raises(EdgeresError, match="corrupt"):
        download_cifar10(root, url=archive.as_uri(), md5="0" * 32, progress=False)
    assert list(root.iterdir()) == []


def test_download_cifar10_missing_url_and_non_cifar_archive(tmp_path: Path) -> None:
    root = tmp_path / "data"
    with pytest.raises(EdgeresError, match="could not download"):
        download_cifar10(root, url=(tmp_path / "absent.tar.gz").as_uri(), progress=False)
    assert list(root.iterdir()) == []
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    md5 = hashlib.md5(other.read_bytes()).hexdigest()
    with pytest.raises(EdgeresError, match="not CIFAR-10"):
        download_cifar10(root, url=other.as_uri(), md5=md5, progress=False)
    assert list(root.iterdir()) == []
