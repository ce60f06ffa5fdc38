"""No command writes over one of its inputs: same path, ./path, a symlink or a hard link.

Each case runs the real command on real files; the refusal must come before any work
(exit 2, one `error:` line), and the input must be byte-identical afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.report import handmade


@pytest.fixture(scope="module")
def onnx_model(resnet20_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeres.export import export_onnx
    from edgeres.loading import load_model

    loaded = load_model(resnet20_checkpoint)
    out = tmp_path_factory.mktemp("onnx") / "m.onnx"
    export_onnx(loaded.require_module(), loaded.meta, out, verify=False)
    return out


def _images(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


# (name, make the input in a folder -> its path, argv for (input, output))
Case = tuple[str, Callable[[Path, Path, Path], Path], Callable[[str, str], list[str]]]


def _copy(src_attr: str) -> Callable[[Path, Path, Path], Path]:
    def make(folder: Path, ckpt: Path, onnx: Path) -> Path:
        src = ckpt if src_attr == "ckpt" else onnx
        return Path(shutil.copy(src, folder / src.name))

    return make


def _classes(folder: Path, ckpt: Path, onnx: Path) -> Path:
    p = folder / "classes.txt"
    p.write_text("a\nb\n")
    return p


def _eval_json(folder: Path, ckpt: Path, onnx: Path) -> Path:
    return handmade.evaluation(folder / "e.json", "m.onnx", {"cat": (1, 2)})


def _image(folder: Path, ckpt: Path, onnx: Path) -> Path:
    return _images(folder / "data") / "cat" / "0.png"


CASES: list[Case] = [
    ("export", _copy("ckpt"), lambda i, o: ["export", i, "-o", o]),
    ("quantize -o", _copy("onnx"), lambda i, o: ["quantize", i, "--calib", "digits", "-o", o]),
    ("quantize --json", _copy("onnx"), lambda i, o: ["quantize", i, "--calib", "digits", "--json", o]),
    ("eval --json", _copy("onnx"), lambda i, o: ["eval", i, "--data", "digits", "--json", o]),
    ("bench --json", _copy("onnx"), lambda i, o: ["bench", i, "--json", o]),
    ("convert-fp16", _copy("onnx"), lambda i, o: ["convert-fp16", i, "-o", o]),
    ("build-engine", _copy("onnx"), lambda i, o: ["build-engine", i, "-o", o]),
    ("pipeline", _copy("ckpt"), lambda i, o: ["pipeline", i, "-o", o, "--no-progress"]),
    ("create", _classes, lambda i, o: ["create", "resnet20", "--classes", i, "-o", o]),
    ("export --classes", _classes, lambda i, o: ["export", "CKPT", "--classes", i, "-o", o]),
    ("calib-set", _image, lambda i, o: ["calib-set", str(Path(i).parent.parent), "--size", "2", "-o", o]),
]


def _variants(src: Path) -> dict[str, tuple[str, str]]:
    """(input as given, output as given) naming one file in four ways."""
    link = src.with_name("link-" + src.name)
    hard = src.with_name("hard-" + src.name)
    link.symlink_to(src.name)
    os.link(src, hard)
    return {
        "same path": (str(src), str(src)),
        "./ prefix": (src.name, "./" + src.name),
        "symlink": (str(link), str(src)),
        "hard link": (str(hard), str(src)),
    }


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_an_output_onto_an_input_is_refused_and_the_input_kept(
    case: Case, run_cli, tmp_path: Path, resnet20_checkpoint: Path, onnx_model: Path, monkeypatch
) -> None:
    name, make, argv = case
    src = make(tmp_path, resnet20_checkpoint, onnx_model)
    before = src.read_bytes()
    monkeypatch.chdir(src.parent)
    for how, (given_in, given_out) in _variants(src).items():
        listing = sorted(p.name for p in src.parent.iterdir())
        args = [resnet20_checkpoint.as_posix() if a == "CKPT" else a for a in argv(given_in, given_out)]
        r = run_cli(*args)
        assert r.code == 2, (name, how, r.err)
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "input" in lines[0], (name, how, r.err)
        assert r.out == ""  # refused before any work
        assert src.read_bytes() == before, (name, how)
        assert sorted(p.name for p in src.parent.iterdir()) == listing, (name, how)


def test_report_refuses_to_write_over_a_result_it_reads(run_cli, tmp_path: Path) -> None:
    folder = tmp_path / "r"
    folder.mkdir()
    src = handmade.evaluation(folder / "report.json", "m.onnx", {"cat": (1, 2)})
    before = src.read_bytes()
    r = run_cli("report", str(src), "-o", str(folder))
    assert r.code == 2 and r.err.startswith("error: ") and len(r.err.strip().splitlines()) == 1
    assert src.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["report.json"]
    # a folder's own earlier report.json is not an input: a second report into it works
    (tmp_path / "res").mkdir()
    handmade.evaluation(tmp_path / "res" / "e.json", "m.onnx", {"cat": (1, 2)})
    assert run_cli("report", str(tmp_path / "res"), "-o", str(tmp_path / "res")).code == 0
    assert run_cli("report", str(tmp_path / "res"), "-o", str(tmp_path / "res")).code == 0
    assert json.loads((tmp_path / "res" / "e.json").read_text())["model"] == "m.onnx"


def test_two_outputs_of_one_command_must_differ(run_cli, tmp_path: Path, onnx_model: Path) -> None:
    target = tmp_path / "out.onnx"
    r = run_cli("quantize", str(onnx_model), "--calib", "digits", "-o", str(target), "--json", str(target))
    assert r.code == 2 and "same file" in r.err and not target.exists()
