"""CIFAR-10/100 from the official "python version" batches, and the CIFAR-10 download.

The batches are pickles; they are read with an unpickler that only accepts the numpy
array types the official files use, so a doctored file cannot run code.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from edgeres.data.sources import ArraySource
from edgeres.errors import EdgeresError, UsageError

__all__ = ["CIFAR10_MD5", "CIFAR10_URL", "cifar_source", "download_cifar10", "find_cifar"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
_CIFAR10_FILES = ("batches.meta", "test_batch", *(f"data_batch_{i}" for i in range(1, 6)))

_NUMPY_CORE = ("numpy._core.multiarray", "numpy.core.multiarray")
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    *((m, n) for m in _NUMPY_CORE for n in ("_reconstruct", "scalar")),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        if module in _NUMPY_CORE:
            for candidate in _NUMPY_CORE:  # numpy 2 renamed numpy.core to numpy._core
                with contextlib.suppress(ImportError):
                    return getattr(importlib.import_module(candidate), name)
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[bytes, Any]:
    if not path.is_file():
        raise EdgeresError(f"CIFAR file {path} is missing; download the data set again")
    try:
        with open(path, "rb") as f:
            data = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # a damaged pickle can fail in many ways
        raise EdgeresError(
            f"{path} is not a readable CIFAR batch ({exc}); download the data set again"
        ) from exc
    if not isinstance(data, dict):
        raise EdgeresError(f"{path} is not a CIFAR batch (no dictionary inside); download the data set again")
    return {k.encode() if isinstance(k, str) else k: v for k, v in data.items()}


def _field(batch: dict[bytes, Any], key: bytes, path: Path) -> Any:
    if key not in batch:
        raise EdgeresError(f"CIFAR file {path} has no '{key.decode()}' entry; download the data set again")
    return batch[key]


def find_cifar(folder: Path) -> tuple[str, Path] | None:
    """("cifar10" | "cifar100", batches folder) when ``folder`` holds CIFAR batches, else None."""
    if (folder / CIFAR10_DIR).is_dir():
        return "cifar10", folder / CIFAR10_DIR
    if (folder / CIFAR100_DIR).is_dir():
        return "cifar100", folder / CIFAR100_DIR
    if (folder / "data_batch_1").is_file() or (folder / "test_batch").is_file():
        return "cifar10", folder
    if (folder / "train").is_file() and (folder / "meta").is_file():
        return "cifar100", folder
    return None


def _names(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def cifar_source(found: tuple[str, Path], split: str = "train") -> ArraySource:
    """Load a CIFAR-10 or CIFAR-100 split (from :func:`find_cifar`) into memory as uint8 NHWC."""
    kind, folder = found
    if split not in ("train", "test"):
        raise UsageError(f"CIFAR split must be 'train' or 'test', got '{split}'")
    if kind == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        meta_file, label_key, names_key = "batches.meta", b"labels", b"label_names"
        title = "CIFAR-10"
    else:
        files, meta_file, label_key, names_key = [split], "meta", b"fine_labels", b"fine_label_names"
        title = "CIFAR-100"
    chunks, labels = [], []
    for file in files:
        batch = _unpickle(folder / file)
        data = np.asarray(_field(batch, b"data", folder / file), dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise EdgeresError(f"{folder / file} holds {data.shape} pixels, not N x 3072; download it again")
        chunks.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(_field(batch, label_key, folder / file), dtype=np.int64))
    class_names = _names(_field(_unpickle(folder / meta_file), names_key, folder / meta_file))
    images = np.ascontiguousarray(np.concatenate(chunks))
    return ArraySource(
        images, np.concatenate(labels), class_names, description=f"{title} {split} split {folder}"
    )


def _fetch(url: str, dest: Path, progress: bool) -> str:
    """Stream ``url`` into ``dest``; return the md5 hex digest of what was written."""
    from edgeres.progress import progress_bar

    md5 = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with progress_bar(
                total=total, unit="B", unit_scale=True, desc="CIFAR-10", enabled=progress, leave=True
            ) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    md5.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise EdgeresError(
            f"could not download {url} ({exc}); check the network, or download and extract it by hand"
        ) from exc
    return md5.hexdigest()


def _safe_extract(archive: Path, into: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            target = (into / member.name).resolve()
            if not target.is_relative_to(into.resolve()) or not (member.isfile() or member.isdir()):
                raise EdgeresError(
                    f"the CIFAR-10 archive has an unexpected entry '{member.name}'; not extracting"
                )
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:  # pragma: no cover - Python without PEP 706 filters; members were checked above
            tar.extractall(into)


def download_cifar10(
    root: str | Path, *, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5, progress: bool = True
) -> Path:
    """Download and extract CIFAR-10 under ``root``; return ``root/cifar-10-batches-py``.

    Nothing is downloaded when the folder is already complete. The archive goes to a temporary
    file, its md5 is checked, it is extracted into a temporary folder and only then renamed
    into place, so an interrupted or corrupt download never leaves a half-made data set.
    """
    root = Path(root)
    final = root / CIFAR10_DIR
    if all((final / f).is_file() for f in _CIFAR10_FILES):
        return final
    if final.exists():
        raise EdgeresError(f"{final} exists but is incomplete; delete it and download again")
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".cifar-10-", suffix=".tar.gz.part", dir=root)
    os.close(fd)
    archive = Path(tmp_name)
    tmp_dir = Path(tempfile.mkdtemp(prefix=".cifar-10-", dir=root))
    try:
        digest = _fetch(url, archive, progress)
        if digest != md5.lower():
            raise EdgeresError(
                f"the download from {url} is corrupt (md5 {digest}, expected {md5}); try again"
            )
        try:
            _safe_extract(archive, tmp_dir)
        except (tarfile.TarError, OSError) as exc:
            raise EdgeresError(f"cannot extract the archive from {url} ({exc}); try again") from exc
        extracted = tmp_dir / CIFAR10_DIR
        missing = [f for f in _CIFAR10_FILES if not (extracted / f).is_file()]
        if missing:
            raise EdgeresError(f"the archive from {url} lacks {CIFAR10_DIR}/{missing[0]}; it is not CIFAR-10")
        os.replace(extracted, final)
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return final
