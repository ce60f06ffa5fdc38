"""Listing a data folder safely: what is left out, and why, is logged and counted."""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["IMAGE_EXTENSIONS", "Listing"]

log = logging.getLogger("edgeres.data")

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


def _valid_name(name: str) -> bool:
    """Whether a file name decoded cleanly (a name of invalid UTF-8 bytes holds surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Listing:
    """Walks a data folder, leaving out what cannot be used safely, each logged and counted.

    Left out: names that are not valid UTF-8 (they cannot be written to a manifest or log
    line), folders reached again through a symbolic link (a loop), and entries that cannot
    be examined (a dangling or looping link, no permission).
    """

    def __init__(self) -> None:
        self.skipped: list[str] = []
        self._seen: set[tuple[int, int]] = set()

    def skip(self, path: str, why: str) -> None:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        message = f"skipping {shown}: {why}"
        self.skipped.append(message)
        log.warning("%s", message)

    def entries(self, folder: Path) -> list[os.DirEntry[str]]:
        """The usable entries of ``folder`` (not hidden), by name; [] when it was seen already."""
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in self._seen:
                self.skip(str(folder), "a folder already listed (a symbolic link loop)")
                return []
            self._seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                found = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.skip(str(folder), f"cannot list it ({exc.strerror or exc})")
            return []
        out = []
        for entry in found:
            if entry.name.startswith("."):
                continue
            if not _valid_name(entry.name):
                self.skip(entry.path, "its name is not valid UTF-8; rename it")
                continue
            out.append(entry)
        return out

    def kind(self, entry: os.DirEntry[str]) -> str | None:
        """'dir', 'image' or None (anything else), following links; None for a broken link."""
        try:
            if entry.is_dir():
                return "dir"
            if os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                if entry.is_file():
                    return "image"
                if entry.is_symlink():
                    self.skip(entry.path, "a dangling symbolic link")
        except OSError as exc:
            self.skip(entry.path, f"cannot examine it ({exc.strerror or exc})")
        return None

    def images(self, folder: Path, recursive: bool) -> list[Path]:
        found: list[Path] = []
        for entry in self.entries(folder):
            kind = self.kind(entry)
            if kind == "image":
                found.append(Path(entry.path))
            elif kind == "dir" and recursive:
                found.extend(self.images(Path(entry.path), recursive=True))
        return found
