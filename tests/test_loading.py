"""load_model on every accepted format, and a clear refusal for every bad one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from edgeres.checkpoint import save_checkpoint
from edgeres.errors import EdgeresError, UsageError
from edgeres.loading import MetaOverrides, load_model
from edgeres.metadata import IMAGENET_MEAN, ModelMeta, Preprocessing
from edgeres.models import get_model


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, size: int = 32) -> bool:
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        return torch.allclose(a.eval()(x), b.eval()(x), atol=1e-5)


def test_checkpoint_round_trip_keeps_weights_and_metadata(resnet20_checkpoint: Path) -> None:
    loaded = load_model(resnet20_checkpoint)
    assert loaded.format == "checkpoint"
    assert loaded.meta.arch == "resnet20"
    assert loaded.meta.class_names[0] == "airplane"
    assert loaded.meta.preprocessing.input_size == (32, 32)
    payload = torch.load(resnet20_checkpoint, weights_only=True)
    model = get_model("resnet20", num_classes=10)
    model.load_state_dict(payload["state_dict"])
    assert _same_outputs(loaded.require_module(), model)


def test_checkpoint_keeps_builder_options(tmp_path: Path) -> None:
    model = get_model("resnet20", num_classes=4, shortcut="B")
    meta = ModelMeta(arch="resnet20", num_classes=4, arch_options={"shortcut": "B"})
    loaded = load_model(save_checkpoint(model, meta, tmp_path / "b.pt"))
    assert _same_outputs(loaded.require_module(), model)


def test_overrides_win_over_stored_metadata(resnet20_checkpoint: Path) -> None:
    loaded = load_model(resnet20_checkpoint, overrides=MetaOverrides(mean=(0.5, 0.5, 0.5)))
    assert loaded.meta.preprocessing.mean == (0.5, 0.5, 0.5)
    assert loaded.meta.preprocessing.input_size == (32, 32)


def test_state_dict_needs_arch_then_loads_with_module_prefix_stripped(tmp_path: Path) -> None:
    model = get_model("resnet20", num_classes=7)
    path = tmp_path / "sd.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    with pytest.raises(UsageError, match="--arch"):
        load_model(path)
    loaded = load_model(path, "resnet20")
    assert loaded.format == "state_dict"
    assert loaded.meta.num_classes == 7  # read from fc.weight
    assert loaded.meta.preprocessing.mean == IMAGENET_MEAN  # outside models default to ImageNet's
    assert loaded.meta.preprocessing.input_size == (32, 32)  # the architecture's input size
    assert _same_outputs(loaded.require_module(), model)


def test_wrapped_state_dict_is_unwrapped(tmp_path: Path) -> None:
    model = get_model("resnet20", num_classes=10)
    path = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "state_dict": model.state_dict()}, path)
    assert _same_outputs(load_model(path, "resnet20").require_module(), model)


def test_state_dict_of_another_arch_names_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "sd.pth"
    torch.save(get_model("resnet20", num_classes=10).state_dict(), path)
    with pytest.raises(EdgeresError, match=r"do not fit resnet32: missing \d+ \(layer1\.3"):
        load_model(path, "resnet32")


def test_torchscript_and_exported_program_take_metadata_from_flags(tmp_path: Path) -> None:
    model = get_model("resnet20", num_classes=3).eval()
    ts = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.trace(model, torch.randn(1, 3, 32, 32)), ts)
    pt2 = tmp_path / "program.pt2"
    torch.export.save(torch.export.export(model, (torch.randn(2, 3, 32, 32),)), pt2)
    flags = MetaOverrides(num_classes=3, input_size=(32, 32), class_names=("a", "b", "c"))
    for path, fmt in ((ts, "torchscript"), (pt2, "exported_program")):
        loaded = load_model(path, overrides=flags)
        assert loaded.format == fmt
        assert loaded.meta.class_names == ("a", "b", "c")
        assert loaded.meta.preprocessing.input_size == (32, 32)
        assert _same_outputs(loaded.require_module(), model)


def test_whole_pickled_module_is_refused_unless_opted_in(tmp_path: Path) -> None:
    model = get_model("resnet20", num_classes=10)
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    with pytest.raises(EdgeresError, match="--unsafe-pickle"):
        load_model(path)
    loaded = load_model(path, unsafe_pickle=True, overrides=MetaOverrides(input_size=(32, 32)))
    assert loaded.format == "pickle"
    assert _same_outputs(loaded.require_module(), model)


def test_truncated_checkpoint_is_a_one_line_error(resnet20_checkpoint: Path, tmp_path: Path) -> None:
    data = resnet20_checkpoint.read_bytes()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(EdgeresError, match="truncated or corrupt") as info:
        load_model(broken)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty"),
        (b"hello, not a model", "is damaged: it is not a PyTorch file"),
        (b"PK\x03\x04garbage", "truncated or corrupt"),
    ],
)
def test_bad_files(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(EdgeresError, match=match):
        load_model(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    with pytest.raises(UsageError, match="is a folder"):
        load_model(tmp_path)


def test_unknown_arch_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "sd.pth"
    torch.save(get_model("resnet20").state_dict(), path)
    with pytest.raises(UsageError, match="resnet20"):
        load_model(path, "resnet21")


def test_conflicting_arch_for_a_checkpoint(resnet20_checkpoint: Path) -> None:
    with pytest.raises(UsageError, match="holds a resnet20"):
        load_model(resnet20_checkpoint, "resnet56")


def test_mismatched_class_names_override(resnet20_checkpoint: Path) -> None:
    with pytest.raises(UsageError, match="class names"):
        load_model(resnet20_checkpoint, overrides=MetaOverrides(class_names=("a", "b"), num_classes=10))


def test_preprocessing_override_validation() -> None:
    with pytest.raises(UsageError):
        MetaOverrides(std=(0.0, 1.0, 1.0)).apply(
            ModelMeta(arch=None, num_classes=2, preprocessing=Preprocessing())
        )


def test_weights_of_the_wrong_shape_name_the_tensor(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "sd.pth"
    torch.save(get_model("resnet20", num_classes=10).state_dict(), path)
    with pytest.raises(EdgeresError, match=r"fc\.weight is 10x64 in the file but 7x64 in the model") as info:
        load_model(path, "resnet20", overrides=MetaOverrides(num_classes=7))
    assert "\n" not in str(info.value)
    r = run_cli("inspect", str(path), "--arch", "resnet20", "--num-classes", "7")
    assert r.code == 1 and r.err.count("\n") == 1 and "fc.weight" in r.err and "Traceback" not in r.err


def _checkpoint_with_meta(tmp_path: Path, meta: object) -> Path:
    from edgeres.checkpoint import FORMAT

    path = tmp_path / "ckpt.pt"
    state = get_model("resnet20", num_classes=10).state_dict()
    torch.save({"format": FORMAT, "format_version": 1, "meta": meta, "state_dict": state}, path)
    return path


_GOOD = {"arch": "resnet20", "num_classes": 10}


@pytest.mark.parametrize(
    "meta, message",
    [
        (["resnet20", 10], "not a mapping"),
        ({**_GOOD, "num_classes": float("inf")}, "whole number"),
        ({**_GOOD, "num_classes": float("nan")}, "whole number"),
        ({**_GOOD, "num_classes": -3}, "positive"),
        ({**_GOOD, "num_classes": "10"}, "whole number"),
        ({**_GOOD, "num_classes": 300_000_000}, "more than edgeres accepts"),
        ({**_GOOD, "arch": ["resnet20"]}, "architecture must be a name"),
        ({**_GOOD, "class_names": "airplane"}, "not a list"),
        ({**_GOOD, "class_names": [1] * 10}, "not a list of names"),
        ({**_GOOD, "preprocessing": {"input_size": [32, 32, 3]}}, "one or two numbers"),
        ({**_GOOD, "preprocessing": {"input_size": [32.5, 32]}}, "whole numbers"),
        ({**_GOOD, "preprocessing": {"input_size": [100000, 100000]}}, "larger than edgeres accepts"),
        ({**_GOOD, "preprocessing": "32x32"}, "not a mapping"),
    ],
)
def test_malformed_checkpoint_metadata(run_cli, tmp_path: Path, meta: object, message: str) -> None:
    path = _checkpoint_with_meta(tmp_path, meta)
    with pytest.raises(EdgeresError, match=message) as info:
        load_model(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    r = run_cli("inspect", str(path))
    assert r.code != 0 and r.err.startswith("error: ") and r.err.count("\n") == 1


def test_oversized_flags_are_refused_before_building(tmp_path: Path) -> None:
    path = tmp_path / "sd.pth"
    torch.save(get_model("resnet20", num_classes=10).state_dict(), path)
    with pytest.raises(UsageError, match="larger than edgeres accepts"):
        load_model(path, "resnet20", overrides=MetaOverrides(input_size=(100000, 100000)))
    with pytest.raises(UsageError, match="more than edgeres accepts"):
        load_model(path, "resnet20", overrides=MetaOverrides(num_classes=300_000_000))


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("random.pt", bytes(range(7, 250)) * 4, "is damaged: it is not a PyTorch file"),
        ("empty.pth", b"", "is empty (0 bytes): damaged"),
        ("classes.txt", b"cat\ndog\n", "is not a format edgeres reads"),
    ],
)
def test_a_file_that_is_no_model_is_a_failed_input_not_a_usage_error(
    tmp_path: Path, name: str, data: bytes, says: str
) -> None:
    """The command line was right (the file exists); its bytes are not a model: exit status 1."""
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(EdgeresError, match=re.escape(says)) as info:
        load_model(path)
    assert info.value.exit_code == 1 and not isinstance(info.value, UsageError)


def test_a_checkpoint_write_stopped_by_the_file_size_limit_is_one_line(tmp_path: Path) -> None:
    """torch.save reports a short write as a RuntimeError without an errno; a real size limit (ulimit -f)."""
    import resource
    import signal
    import subprocess
    import sys

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then the write fails with EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    out = tmp_path / "c.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "edgeres", "create", "resnet56", "-o", str(out)],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "c.pt" in proc.stderr and "file size limit (65536 bytes)" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing half-written
