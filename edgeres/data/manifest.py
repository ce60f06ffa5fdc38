"""Image manifests: a fixed, verifiable list of images (e.g. a calibration set).

The text format, one image per line after a comment header::

    # edgeres image manifest, format 1
    # root: /data/cifar10/train
    # count: 2
    # created: 2025-01-01T00:00:00+00:00
    # classes: ["airplane", "automobile"]
    <sha256 hex>  airplane/0001.jpg
    <sha256 hex>  automobile/0042.jpg

Paths are relative to the root, with '/' separators; the first component is the class
(a path without a folder has label -1). Reading verifies every file's hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from edgeres.atomic import atomic_path
from edgeres.data.sources import FileListSource
from edgeres.errors import EdgeresError, UsageError

__all__ = ["MANIFEST_FORMAT", "read_manifest", "sha256_file", "write_manifest"]

MANIFEST_FORMAT = 1
_TITLE = "edgeres image manifest, format"
_RECREATE = "re-create the manifest with `edgeres calib-set`"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _relative(rel: str | Path) -> PurePosixPath:
    p = PurePosixPath(Path(rel).as_posix())
    if p.is_absolute() or ".." in p.parts or not p.parts or str(p) == ".":
        raise UsageError(f"manifest paths must be relative to the root and inside it, got '{rel}'")
    return p


def _default_classes(root: Path, rels: Sequence[PurePosixPath]) -> list[str]:
    if not any(len(r.parts) > 1 for r in rels):
        return []
    with os.scandir(root) as it:
        subdirs = {e.name for e in it if e.is_dir() and not e.name.startswith(".")}
    return sorted(subdirs | {r.parts[0] for r in rels if len(r.parts) > 1})


def write_manifest(
    source_root: str | Path,
    relative_paths: Iterable[str | Path],
    out_path: str | Path,
    *,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Write a manifest of ``relative_paths`` under ``source_root`` to ``out_path``, atomically.

    ``class_names`` defaults to the sorted subfolders of ``source_root`` (the class indices an
    image folder gets), so a subset that misses a class keeps the same label numbers.
    """
    root = Path(source_root).resolve()
    out = Path(out_path)
    rels = [_relative(r) for r in relative_paths]
    if not rels:
        raise UsageError(f"no images to write to manifest {out}; give at least one")
    lines = []
    for rel in rels:
        file = root / rel
        if not file.is_file():
            raise UsageError(f"cannot add {file} to the manifest: no such file under {root}")
        lines.append(f"{sha256_file(file)}  {rel}\n")
    classes = list(class_names) if class_names is not None else _default_classes(root, rels)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    header = [
        f"# {_TITLE} {MANIFEST_FORMAT}\n",
        f"# root: {root}\n",
        f"# count: {len(rels)}\n",
        f"# created: {created}\n",
        f"# classes: {json.dumps(classes)}\n",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    # atomic_path gives the file the mode open() would (umask), not mkstemp's 0600
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(header + lines)
    return out


def _parse(path: Path) -> tuple[dict[str, str], list[tuple[str, PurePosixPath]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgeresError(f"cannot read manifest {path} ({exc})") from exc
    header: dict[str, str] = {}
    entries: list[tuple[str, PurePosixPath]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].strip().partition(":")
            if sep:
                header[key.strip()] = value.strip()
            elif key.startswith(_TITLE):
                header["format"] = key.removeprefix(_TITLE).strip()
            continue
        digest, _, rel = line.partition("  ")
        if len(digest) != 64 or not rel.strip() or any(c not in "0123456789abcdef" for c in digest):
            raise EdgeresError(f"manifest {path} line {n} is not '<sha256>  <path>'; {_RECREATE}")
        entries.append((digest, _relative(rel.strip())))
    if header.get("format") != str(MANIFEST_FORMAT):
        raise EdgeresError(f"{path} is not an edgeres manifest (format {MANIFEST_FORMAT}); {_RECREATE}")
    return header, entries


def read_manifest(path: str | Path, root: str | Path | None = None, *, verify: bool = True) -> FileListSource:
    """Open a manifest as an image source, checking every file's sha256 (unless ``verify=False``).

    Paths resolve against ``root`` when given, else the root recorded in the header when that
    folder exists, else the manifest's own folder.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"manifest {path} does not exist; {_RECREATE}")
    header, entries = _parse(path)
    if root is not None:
        base = Path(root)
    elif header.get("root") and Path(header["root"]).is_dir():
        base = Path(header["root"])
    else:
        base = path.parent
    if not entries:
        raise EdgeresError(f"manifest {path} lists no images; {_RECREATE}")
    if "count" in header and header["count"] != str(len(entries)):
        raise EdgeresError(
            f"manifest {path} says {header['count']} images but lists {len(entries)}; {_RECREATE}"
        )
    try:
        classes = [str(c) for c in json.loads(header.get("classes", "[]"))]
    except (json.JSONDecodeError, TypeError) as exc:
        raise EdgeresError(f"manifest {path} has a malformed classes line ({exc}); {_RECREATE}") from exc
    if not classes:
        classes = sorted({rel.parts[0] for _, rel in entries if len(rel.parts) > 1})
    index = {name: k for k, name in enumerate(classes)}
    paths, labels = [], []
    for digest, rel in entries:
        file = base.joinpath(*rel.parts)
        label = -1
        if len(rel.parts) > 1:
            if rel.parts[0] not in index:
                raise EdgeresError(
                    f"manifest {path}: '{rel}' is in unknown class '{rel.parts[0]}'; {_RECREATE}"
                )
            label = index[rel.parts[0]]
        if not file.is_file():
            raise EdgeresError(f"image {file} listed in manifest {path} is missing; {_RECREATE}")
        if verify and sha256_file(file) != digest:
            raise EdgeresError(f"image {file} has changed since manifest {path} was made; {_RECREATE}")
        paths.append(file)
        labels.append(label)
    return FileListSource(paths, labels, classes, root=base, kind=f"manifest {path} over")
