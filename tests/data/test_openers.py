"""open_source's registry of data-source kinds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeres.data import ArraySource, open_source, openers, register_source
from edgeres.errors import UsageError


def test_the_built_in_kinds_in_the_order_they_are_tried() -> None:
    names = [kind.name for kind in openers.source_kinds()]
    assert names == ["digits", "cifar", "image folder", "npz", "manifest"]
    assert [kind.name for kind in openers.source_kinds() if kind.splits] == ["cifar"]


def test_a_registered_kind_opens_its_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openers, "_KINDS", list(openers.source_kinds()))
    images = np.zeros((2, 4, 4, 3), np.uint8)
    seen: list[tuple[Path, str | None]] = []

    def opener(path: Path, split: str | None) -> ArraySource:
        seen.append((path, split))
        return ArraySource(images, None, (), description="raw")

    register_source("raw", lambda _spec, path: path.suffix == ".raw", opener)
    raw = tmp_path / "x.raw"
    raw.write_bytes(b"")
    assert len(open_source(str(raw))) == 2 and seen == [(raw, None)]
    with pytest.raises(UsageError, match="only applies to CIFAR"):
        open_source(raw, split="test")  # a kind without splits refuses one before opening
    assert seen == [(raw, None)]
    with pytest.raises(ValueError, match="'raw' is registered already"):
        register_source("raw", lambda _spec, _path: False, opener)


def test_an_unknown_file_with_a_split_is_refused_for_the_split(tmp_path: Path) -> None:
    other = tmp_path / "weights.pt"
    other.write_bytes(b"x")
    with pytest.raises(UsageError, match="only applies to CIFAR"):
        open_source(other, split="train")
    with pytest.raises(UsageError, match="does not exist"):
        open_source(tmp_path / "nowhere.npz", split="train")
