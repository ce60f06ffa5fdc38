""":func:`open_source`: the data-source kinds, tried in order, and the one that opens a spec.

A kind is a name, a test of the spec and an opener, added with :func:`register_source`;
adding a data source is its module plus one registration at the end of this one (and its
words in :data:`~edgeres.data.sources.EXPECTED_SOURCES`, which the errors quote).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeres.data.cifar import cifar_source, find_cifar
from edgeres.data.digits import digits_source
from edgeres.data.manifest import read_manifest
from edgeres.data.sources import EXPECTED_SOURCES, ImageSource, folder_source, npz_source
from edgeres.errors import UsageError

__all__ = ["SourceKind", "open_source", "register_source", "source_kinds"]

#: Whether a spec is of a kind: the spec as given, and as an expanded path.
Matcher = Callable[[str, Path], bool]
#: Opens a spec of its kind: the expanded path and the split asked for (None: the default).
Opener = Callable[[Path, "str | None"], ImageSource]


@dataclass(frozen=True)
class SourceKind:
    """One kind of data source; ``splits`` when it has named splits (CIFAR's train and test)."""

    name: str
    matches: Matcher
    opener: Opener
    splits: bool = False


_KINDS: list[SourceKind] = []


def register_source(name: str, matches: Matcher, opener: Opener, *, splits: bool = False) -> None:
    """Add a kind of data source, tried after those registered before it."""
    if any(kind.name == name for kind in _KINDS):
        raise ValueError(f"a data source kind named {name!r} is registered already")
    _KINDS.append(SourceKind(name, matches, opener, splits))


def source_kinds() -> tuple[SourceKind, ...]:
    """The registered kinds, in the order :func:`open_source` tries them."""
    return tuple(_KINDS)


def open_source(spec: str | Path, *, split: str | None = None) -> ImageSource:
    """Open whatever ``spec`` names as an :class:`ImageSource`.

    * ``"digits"`` (the literal name): scikit-learn's embedded 8x8 digits, as 32x32 RGB;
      write ``./digits`` for a folder of that name;
    * a folder holding ``cifar-10-batches-py`` / ``cifar-100-python``, or the batches
      themselves (``data_batch_1`` ... or a CIFAR-100 ``train`` pickle): CIFAR, ``split``
      "train" (default) or "test";
    * any other folder: class subfolders, or a flat folder of images;
    * a ``.npz`` file, or a ``.txt`` manifest written by :func:`write_manifest`.

    ``split`` only applies to CIFAR; for other sources use :func:`split_indices`.
    """
    path = Path(spec).expanduser()
    for kind in _KINDS:
        if kind.matches(str(spec), path):
            if not kind.splits:
                _no_split(spec, split)
            return kind.opener(path, split)
    if not path.exists():
        raise UsageError(f"{path} does not exist; {EXPECTED_SOURCES}")
    _no_split(spec, split)
    raise UsageError(f"{path} is a {path.suffix.lower() or 'extensionless'} file; {EXPECTED_SOURCES}")


def _no_split(spec: str | Path, split: str | None) -> None:
    if split is not None:
        raise UsageError(
            f"split '{split}' only applies to CIFAR batch folders, not {spec}; "
            "hold out images with a validation fraction instead"
        )


def _file_with(suffix: str) -> Matcher:
    return lambda _spec, path: path.exists() and not path.is_dir() and path.suffix.lower() == suffix


def _is_cifar(_spec: str, path: Path) -> bool:
    return path.is_dir() and find_cifar(path) is not None


def _open_cifar(path: Path, split: str | None) -> ImageSource:
    found = find_cifar(path)
    assert found is not None  # the matcher found it
    return cifar_source(found, split=split or "train")


register_source("digits", lambda spec, _path: spec == "digits", lambda _path, _split: digits_source())
register_source(
    "cifar", lambda _spec, path: path.is_dir() and find_cifar(path) is not None, _open_cifar, splits=True
)
register_source("image folder", lambda _spec, path: path.is_dir(), lambda path, _split: folder_source(path))
register_source("npz", _file_with(".npz"), lambda path, _split: npz_source(path))
register_source("manifest", _file_with(".txt"), lambda path, _split: read_manifest(path))
