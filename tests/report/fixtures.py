"""Fixtures: real result files, made once per session from a tiny resnet20: FP32, FP16 and INT8 ONNX,
their evaluations (eval --json), a quantize report and a benchmark (bench --json)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CIFAR10_CLASSES


@dataclass(frozen=True)
class Results:
    root: Path
    fp32: Path
    int8: Path
    fp16: Path | None
    eval_fp32: Path
    eval_int8: Path
    eval_fp16: Path | None
    quant: Path
    bench: Path

    @property
    def all(self) -> list[Path]:
        files = [self.eval_fp32, self.eval_int8, self.eval_fp16, self.quant, self.bench]
        return [f for f in files if f is not None]


def edgeres(line: str) -> None:
    """Run ``edgeres LINE`` in this process; fail the fixture with its error when it fails."""
    from edgeres.cli import main

    try:
        main(shlex.split(line))
    except SystemExit as exc:
        assert not exc.code, f"edgeres {line} exited {exc.code}"


def _images(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in CIFAR10_CLASSES:
        (root / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


_MADE: list[Results] = []


@pytest.fixture(scope="session", name="results")
def results_fixture(tmp_path_factory: pytest.TempPathFactory, resnet20_checkpoint: Path) -> Results:
    """Made the way a user would, from inside the folder: the JSONs name the models relatively.

    Made once per session even though two conftest scopes import this fixture.
    """
    if _MADE:
        return _MADE[0]
    root = tmp_path_factory.mktemp("report-inputs")
    _images(root / "images")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        _make(resnet20_checkpoint)
    finally:
        os.chdir(cwd)
    fp16 = root / "r20.fp16.onnx"
    _MADE.append(
        Results(
            root,
            root / "r20.onnx",
            root / "r20.int8.onnx",
            fp16 if fp16.exists() else None,
            root / "eval_fp32.json",
            root / "eval_int8.json",
            root / "eval_fp16.json" if fp16.exists() else None,
            root / "quant.json",
            root / "bench.json",
        )
    )
    return _MADE[0]


def _make(checkpoint: Path) -> None:
    edgeres(f"export {shlex.quote(str(checkpoint))} -o r20.onnx --exporter torchscript")
    edgeres(
        "quantize r20.onnx --calib images --eval images --calib-size 16 --target cpu -o r20.int8.onnx "
        "--threads 1 --json quant.json --no-progress"
    )
    models = {"fp32": "r20.onnx", "int8": "r20.int8.onnx"}
    if importlib.util.find_spec("onnxconverter_common") is not None:
        edgeres("convert-fp16 r20.onnx -o r20.fp16.onnx")
        models["fp16"] = "r20.fp16.onnx"
    for name, model in models.items():
        compare = "--compare r20.onnx" if name != "fp32" else ""
        edgeres(f"eval {model} {compare} --data images --threads 1 --json eval_{name}.json --no-progress")
    edgeres(
        f"bench {' '.join(models.values())} --batch 1,2 --iters 3 --warmup 1 --threads 1 --json bench.json"
    )


@pytest.fixture(name="copied")
def copied_fixture(results: Results, tmp_path: Path) -> Results:
    """The results in a fresh folder, for tests that change them."""
    root = tmp_path / "in"
    shutil.copytree(results.root, root, ignore=shutil.ignore_patterns("images"))

    def moved(p: Path | None) -> Path | None:
        return None if p is None else root / p.name

    return Results(root, *(moved(getattr(results, f.name)) for f in dataclasses.fields(Results)[1:]))


def rewrite(path: Path, change) -> None:
    """Load a JSON file, let ``change`` edit it, write it back."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
