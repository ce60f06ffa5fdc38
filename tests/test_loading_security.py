"""Hostile model files: nothing from the file runs unless the user trusts it.

Each test builds a real file that runs code or touches another file when read or
run by an unguarded loader, and checks that edgeres refuses it in one line and
that nothing happened; then that trusting the file reads it.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from edgeres.errors import EdgeresError
from edgeres.loading import MetaOverrides, load_model
from edgeres.models import get_model

FLAGS = MetaOverrides(num_classes=3, input_size=(32, 32))


class _WritesMarker:
    """A pickle that writes a file when unpickled and then returns ``result``."""

    def __init__(self, marker: Path, result: str = "((), {})") -> None:
        self.code = f"__import__('pathlib').Path({str(marker)!r}).write_text('ran') and {result}"

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (eval, (self.code,))


def _rewrite_zip(path: Path | io.BytesIO, replace: dict[str, bytes]) -> None:
    """Rewrite zip entries in place (entries named by their path below the archive's root folder)."""
    with zipfile.ZipFile(path) as zf:
        entries = [(info.filename, zf.read(info.filename)) for info in zf.infolist()]
    root = entries[0][0].split("/", 1)[0] + "/"
    if isinstance(path, io.BytesIO):
        path.seek(0)
        path.truncate()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries:
            zf.writestr(name, replace.get(name[len(root) :], data))


def _hostile_torch_save(marker: Path, result: str) -> bytes:
    """A torch.save file whose pickle writes ``marker`` and then yields ``result``."""
    buffer = io.BytesIO()
    torch.save(((), {}), buffer)
    _rewrite_zip(buffer, {"data.pkl": pickle.dumps(_WritesMarker(marker, result), protocol=2)})
    return buffer.getvalue()


def _exported(tmp_path: Path, dynamic: bool = False) -> Path:
    model = get_model("resnet20", num_classes=3).eval()
    shapes = {"x": {0: torch.export.Dim("batch", min=1, max=64)}} if dynamic else None
    program = torch.export.export(model, (torch.randn(2, 3, 32, 32),), dynamic_shapes=shapes)
    path = tmp_path / "program.pt2"
    torch.export.save(program, path)
    return path


def test_pt2_whose_sample_inputs_run_code_is_refused(run_cli, tmp_path: Path) -> None:
    path = _exported(tmp_path)
    marker = tmp_path / "marker"
    inputs = _hostile_torch_save(marker, "((__import__('torch').zeros(2, 3, 32, 32),), {})")
    _rewrite_zip(path, {"data/sample_inputs/model.pt": inputs})
    r = run_cli("inspect", str(path), "--num-classes", "3", "--input-size", "32")
    assert r.code == 1, r.err
    assert r.err.startswith("error: ") and r.err.count("\n") == 1
    assert "pickled Python object" in r.err and "--unsafe-pickle" in r.err
    assert not marker.exists()
    loaded = load_model(path, overrides=FLAGS, unsafe_pickle=True)  # trusted: it may run, and does
    assert loaded.format == "exported_program"
    assert marker.exists()


def test_pt2_with_a_pickled_weight_that_runs_code_is_refused(tmp_path: Path) -> None:
    path = _exported(tmp_path)
    marker = tmp_path / "marker"
    with zipfile.ZipFile(path) as zf:
        root = zf.namelist()[0].split("/", 1)[0]
        config = json.loads(zf.read(f"{root}/data/weights/model_weights_config.json"))
    entry = config["config"]["fc.bias"]
    entry["use_pickle"] = True
    evil = _hostile_torch_save(marker, "__import__('torch').nn.Parameter(__import__('torch').zeros(3))")
    _rewrite_zip(
        path,
        {
            "data/weights/model_weights_config.json": json.dumps(config).encode(),
            f"data/weights/{entry['path_name']}": evil,
        },
    )
    with pytest.raises(EdgeresError, match=r"pickled Python object \(data/weights/") as info:
        load_model(path, overrides=FLAGS)
    assert "\n" not in str(info.value)
    assert not marker.exists()
    load_model(path, overrides=FLAGS, unsafe_pickle=True)
    assert marker.exists()


def test_pt2_whose_shape_expression_is_code_is_refused(tmp_path: Path) -> None:
    path = _exported(tmp_path, dynamic=True)
    marker = tmp_path / "marker"
    with zipfile.ZipFile(path) as zf:
        root = zf.namelist()[0].split("/", 1)[0]
        text = zf.read(f"{root}/models/model.json").decode()
    program = json.loads(text)

    def first_expression(value: object) -> dict[str, str] | None:
        if isinstance(value, dict):
            if "expr_str" in value:
                return value
            value = list(value.values())
        for item in value if isinstance(value, list) else ():
            found = first_expression(item)
            if found is not None:
                return found
        return None

    expression = first_expression(program)
    assert expression is not None and expression["expr_str"].startswith("Symbol('s")
    code = f"__import__('pathlib').Path({str(marker)!r}).write_text('ran') and {expression['expr_str']}"
    expression["expr_str"] = code
    hostile = json.dumps(program)
    _rewrite_zip(path, {"models/model.json": hostile.encode()})
    with pytest.raises(EdgeresError, match="shape expression that is code"):
        load_model(path, overrides=FLAGS)
    assert not marker.exists()


def test_normal_and_dynamic_pt2_still_load(tmp_path: Path) -> None:
    for dynamic in (False, True):
        folder = tmp_path / str(dynamic)
        folder.mkdir()
        loaded = load_model(_exported(folder, dynamic), overrides=FLAGS)
        with torch.no_grad():
            assert loaded.require_module().eval()(torch.randn(2, 3, 32, 32)).shape == (2, 3)


class _WritesThroughFromFile(torch.nn.Module):
    """Maps ``target`` shared and overwrites it when run: a TorchScript program with side effects."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mapped = torch.from_file(self.target, True, 4, dtype=torch.uint8)
        mapped.fill_(88)
        return x + mapped.sum().float()


def test_torchscript_that_writes_a_file_is_refused(run_cli, tmp_path: Path) -> None:
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"safe")
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(_WritesThroughFromFile(str(victim))), path)
    for command in ("inspect", "eval"):
        args = [command, str(path), "--num-classes", "3", "--input-size", "32"]
        if command == "eval":
            args += ["--data", str(tmp_path / "no-data")]
        r = run_cli(*args)
        assert r.code == 1, r.err
        assert r.err.startswith("error: ") and r.err.count("\n") == 1
        assert "aten::from_file" in r.err and "--trust-model" in r.err
        assert victim.read_bytes() == b"safe"
    trusted = run_cli("inspect", str(path), "--num-classes", "3", "--input-size", "32", "--trust-model")
    assert trusted.code == 0, trusted.err
    loaded = load_model(path, overrides=FLAGS, unsafe_pickle=True)
    loaded.require_module()(torch.zeros(1))  # the file really does what it is refused for
    assert victim.read_bytes() == b"XXXX"


class _StateRunsCode(torch.nn.Module):
    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool]:
        return (self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]) -> None:
        self.target = state[0]
        mapped = torch.from_file(self.target, True, 4, dtype=torch.uint8)
        mapped.fill_(88)
        self.training = state[1] and bool(mapped.sum() > 0)


def test_torchscript_that_runs_code_while_loading_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"safe")
    path = tmp_path / "stateful.pt"
    torch.jit.save(torch.jit.script(_StateRunsCode(str(victim))), path)
    victim.write_bytes(b"safe")  # saving does not run __setstate__, but be sure
    with pytest.raises(EdgeresError, match="__setstate__"):
        load_model(path, overrides=FLAGS)
    assert victim.read_bytes() == b"safe"
    load_model(path, overrides=FLAGS, unsafe_pickle=True)
    assert victim.read_bytes() == b"XXXX"


@pytest.mark.parametrize("how", ["script", "trace"])
def test_classifier_torchscript_passes_the_op_check(tmp_path: Path, how: str) -> None:
    model = get_model("resnet20", num_classes=3).eval()
    x = torch.randn(1, 3, 32, 32)
    scripted = torch.jit.script(model) if how == "script" else torch.jit.trace(model, x)
    path = tmp_path / f"{how}.pt"
    torch.jit.save(scripted, path)
    loaded = load_model(path, overrides=FLAGS)
    with torch.no_grad():
        assert torch.allclose(loaded.require_module()(x), model(x), atol=1e-5)


def test_whole_module_message_no_longer_recommends_torchscript(tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(get_model("resnet20", num_classes=3), path)
    with pytest.raises(EdgeresError, match="pickled Python object") as info:
        load_model(path)
    assert "jit" not in str(info.value) and "state_dict" in str(info.value)


def _damaged(tmp_path: Path, fmt: str, how: str) -> Path:
    buffer = io.BytesIO()
    torch.save({"fc.weight": torch.ones(3, 4)}, buffer, _use_new_zipfile_serialization=fmt == "zip")
    data = buffer.getvalue()
    if how == "truncated":
        data = data[: len(data) // 2]
    else:
        data = data[:2] + bytes((i * 97 + 13) % 256 for i in range(400))
    path = tmp_path / f"{fmt}-{how}.pt"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("how", ["truncated", "random"])
def test_damaged_files_are_not_called_pickled_modules(run_cli, tmp_path: Path, fmt: str, how: str) -> None:
    path = _damaged(tmp_path, fmt, how)
    r = run_cli("inspect", str(path), "--arch", "resnet20")
    assert r.code == 1
    assert r.err.startswith("error: ") and r.err.count("\n") == 1
    assert "re-save or re-download" in r.err
    assert "--unsafe-pickle" not in r.err and "nn.Module" not in r.err


def test_random_bytes_inside_a_zip_checkpoint_are_damage(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"fc.weight": torch.ones(3, 4)}, path)
    _rewrite_zip(path, {"data.pkl": b"\x80\x02" + bytes(range(7, 250))})
    with pytest.raises(EdgeresError, match="damaged") as info:
        load_model(path, "resnet20")
    assert "--unsafe-pickle" not in str(info.value)


def test_plain_pickle_of_an_object_is_a_pickled_object(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(_WritesMarker(marker), protocol=2))
    with pytest.raises(EdgeresError, match="pickled Python object"):
        load_model(path)
    assert not marker.exists()
