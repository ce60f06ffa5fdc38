"""The command line: help and version, every command's output, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch


def test_help_lists_the_commands(run_cli) -> None:
    r = run_cli("--help")
    assert r.code == 0
    for command in ("models", "info", "inspect"):
        assert command in r.out


def test_every_command_has_examples_in_its_help(run_cli) -> None:
    import click

    from edgeres.cli import cli

    paths = [[name] for name in cli.commands]
    paths += [
        [name, sub] for name, c in cli.commands.items() if isinstance(c, click.Group) for sub in c.commands
    ]
    for path in paths:
        r = run_cli(*path, "--help")
        assert r.code == 0, path
        assert "Examples:" in r.out and f"edgeres {' '.join(path)}" in r.out, path


def test_version(run_cli) -> None:
    from edgeres import __version__

    r = run_cli("--version")
    assert r.code == 0 and __version__ in r.out


def test_models_table_is_computed_from_the_models(run_cli) -> None:
    r = run_cli("models", "--family", "cifar", "--json")
    assert r.code == 0
    rows = {row["name"]: row for row in json.loads(r.out)}
    assert set(rows) >= {"resnet20", "resnet56", "plain20", "resnet1202"}
    assert "resnet50" not in rows
    assert round(rows["resnet56"]["params"] / 1e6, 2) == 0.85
    table = run_cli("models")
    assert table.code == 0
    line = next(x for x in table.out.splitlines() if x.startswith("resnet50 "))
    assert "25.56M" in line and "4.089G" in line and "224x224" in line  # torchvision: 25.6M, 4.09 GMACs


def test_info_names_the_libraries(run_cli) -> None:
    r = run_cli("info", "--json")
    assert r.code == 0
    data = json.loads(r.out)
    assert data["libraries"]["torch"] == torch.__version__
    assert data["libraries"]["onnxruntime"] == __import__("onnxruntime").__version__
    text = run_cli("info").out
    assert "onnxruntime" in text and "cpu features" in text and "tensorrt" in text


def test_inspect_a_checkpoint(run_cli, resnet20_checkpoint: Path) -> None:
    r = run_cli("inspect", str(resnet20_checkpoint))
    assert r.code == 0
    assert "resnet20" in r.out and "airplane" in r.out and "3x32x32" in r.out
    data = json.loads(run_cli("inspect", str(resnet20_checkpoint), "--json").out)
    assert data["format"] == "checkpoint"
    assert data["params"] == sum(p.numel() for p in torch.nn.Module.parameters(_resnet20()))


def _resnet20() -> torch.nn.Module:
    from edgeres.models import get_model

    return get_model("resnet20")


def test_inspect_a_state_dict_with_flags(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(_resnet20().state_dict(), path)
    r = run_cli(
        "inspect",
        str(path),
        "--arch",
        "resnet20",
        "--classes",
        ",".join("abcdefghij"),
        "--mean",
        "0.5,0.5,0.5",
    )
    assert r.code == 0, r.err
    assert "a, b, c" in r.out and "[0.5, 0.5, 0.5]" in r.out


def test_user_errors_are_one_line_with_status(run_cli, tmp_path: Path) -> None:
    missing = run_cli("inspect", str(tmp_path / "nope.pt"))
    assert missing.code == 2
    assert missing.err.startswith("error: ") and missing.err.count("\n") == 1
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    corrupt = run_cli("inspect", str(bad))
    assert corrupt.code == 1 and "truncated or corrupt" in corrupt.err and "Traceback" not in corrupt.err
    path = tmp_path / "w.pth"
    torch.save(_resnet20().state_dict(), path)
    unknown = run_cli("inspect", str(path), "--arch", "resnet21")
    assert unknown.code == 2 and "resnet20" in unknown.err
    nonsense = run_cli("inspect", str(path), "--arch", "resnet20", "--input-size", "big")
    assert nonsense.code == 2 and nonsense.out == ""
    assert nonsense.err == "error: input size 'big' is not a number or HxW, e.g. 224 or 32x32\n"


def test_unknown_option_is_a_usage_error(run_cli) -> None:
    r = run_cli("models", "--nope")
    assert r.code == 2 and "No such option" in r.err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "edgeres", "inspect", str(tmp_path / "nope.pt"), "--debug"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "UsageError" in r.stderr
    plain = subprocess.run(cmd[:-1], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 2
    assert plain.stderr.strip().startswith("error:") and "Traceback" not in plain.stderr


def test_create_writes_a_checkpoint_that_loads_without_flags(run_cli, tmp_path: Path) -> None:
    from edgeres import load_model

    out = tmp_path / "r20b.pt"
    r = run_cli("create", "resnet20", "-o", str(out), "--shortcut", "B", "--classes", "cat,dog,bird")
    assert r.code == 0, r.err
    loaded = load_model(out)
    assert loaded.meta.arch_options == {"shortcut": "B"}
    assert loaded.meta.class_names == ("cat", "dog", "bird")
    assert loaded.require_module()(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_create_refuses_options_the_arch_does_not_take(run_cli, tmp_path: Path) -> None:
    r = run_cli("create", "resnet18", "-o", str(tmp_path / "x.pt"), "--shortcut", "A")
    assert r.code == 2 and r.err.startswith("error:")
    assert not (tmp_path / "x.pt").exists()


def test_verbose_is_accepted_after_the_command(run_cli, resnet20_checkpoint: Path, tmp_path: Path) -> None:
    r = run_cli("export", str(resnet20_checkpoint), "-o", str(tmp_path / "m.onnx"), "--verbose")
    assert r.code == 0, r.err
    assert "info: " in r.err
