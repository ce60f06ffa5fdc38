"""Model files that run code, write files or lie about what they hold."""

from __future__ import annotations

import io
import json
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import torch

from _bad_inputs.core import MARKER

_PAYLOAD = f"open({MARKER!r}, 'w').close()"


class Evil:
    """Unpickling this runs code: it creates the marker file in the working directory."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (_PAYLOAD,))


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3)))


class SideEffect(torch.nn.Module):
    """A TorchScript model whose forward maps files shared and writes into them."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        marker = torch.from_file("pwned.marker", shared=True, size=8, dtype=torch.uint8)
        marker.fill_(1)
        victim = torch.from_file("in/victim.bin", shared=True, size=64, dtype=torch.uint8)
        victim.fill_(65)
        touched = (marker.sum() + victim.sum()).float() * 0.0  # used, so the compiler keeps the writes
        return self.fc(x.mean((2, 3))) + touched


def evil_pickle() -> bytes:
    return pickle.dumps({"format": "edgeres.checkpoint", "meta": Evil()}, protocol=2)


def evil_torch_save(path: Path, *, legacy: bool = False) -> None:
    """A torch.save file holding an object whose unpickling runs code (a stand-in for a pickled nn.Module)."""
    torch.save({"model": Evil(), "state_dict": {}}, path, _use_new_zipfile_serialization=not legacy)


def pickled_module(path: Path) -> None:
    """A whole nn.Module pickled with torch.save, with the code-running object riding along."""
    module = Tiny()
    module.evil = Evil()  # type: ignore[assignment]
    torch.save(module, path)


def evil_pt2(path: Path) -> None:
    """A torch.export archive whose weight entry is a pickle that runs code when loaded."""
    ep = torch.export.export(Tiny(), (torch.randn(1, 3, 32, 32),))
    clean = path.with_suffix(".clean.pt2")
    torch.export.save(ep, clean)
    with zipfile.ZipFile(clean) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("model_weights_config.json"):
                config = json.loads(data)
                for entry in config["config"].values():
                    entry["use_pickle"] = True
                data = json.dumps(config).encode()
            elif "/data/weights/weight_" in item.filename:
                buf = io.BytesIO()
                torch.save(Evil(), buf)
                data = buf.getvalue()
            dst.writestr(item, data)
    clean.unlink()


def side_effect_torchscript(path: Path) -> None:
    torch.jit.script(SideEffect()).save(str(path))


def truncated(src: Path, dst: Path, fraction: float = 0.5) -> None:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])


def random_bytes(dst: Path, n: int = 4096, seed: int = 0) -> None:
    dst.write_bytes(random.Random(seed).randbytes(n))


def flipped(src: Path, dst: Path) -> None:
    """The same zip with its data.pkl entry's bytes scrambled (a damaged checkpoint)."""
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as out:
        for item in z.infolist():
            data = z.read(item.filename)
            if item.filename.endswith("data.pkl"):
                data = bytes(b ^ 0x5A for b in data)
            out.writestr(item, data)
