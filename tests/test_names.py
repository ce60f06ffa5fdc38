"""Every name has one owner; the copies that must remain (click choices, the settings' checks) equal it."""

from __future__ import annotations

import importlib.util

import click
import pytest

from edgeres.cli import cli


def _choices(command: str, option: str) -> tuple[str, ...]:
    cmd = cli.commands[command]
    param = next(p for p in cmd.params if p.name == option)
    assert isinstance(param.type, click.Choice)
    return tuple(param.type.choices)


def test_calibration_methods_are_read_from_the_method_table() -> None:
    from edgeres.quantize.settings import METHOD_SPECS, method_choices

    assert method_choices() == (*METHOD_SPECS, "auto")
    assert _choices("quantize", "method") == method_choices()
    assert _choices("pipeline", "method") == method_choices()


def test_targets_are_read_from_the_target_table() -> None:
    from edgeres.quantize.layouts import LAYOUTS
    from edgeres.quantize.targets import TARGET_CHOICES, TARGET_SPECS, TARGETS

    assert tuple(TARGET_SPECS) == TARGETS and set(LAYOUTS) == set(TARGETS)
    for name, layout in LAYOUTS.items():
        assert layout.name == name and layout.runtime == TARGET_SPECS[name].runtime
    assert ("auto", *TARGETS, "all") == TARGET_CHOICES
    assert _choices("quantize", "target") == TARGET_CHOICES
    assert _choices("pipeline", "target") == TARGET_CHOICES


def test_rounding_names_are_read_from_their_owner() -> None:
    from edgeres.errors import UsageError
    from edgeres.pipeline.settings import QuantizeSettings
    from edgeres.quantize.adaround import ROUNDINGS
    from edgeres.quantize.workflow import QuantizeOptions

    assert _choices("quantize", "rounding") == ROUNDINGS == ("nearest", "adaround")
    for name in ROUNDINGS:
        assert QuantizeSettings(rounding=name).rounding == name
        assert QuantizeOptions(calib="digits", rounding=name).rounding == name  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"quantize\.rounding"):
        QuantizeSettings(rounding="stochastic")
    with pytest.raises(UsageError, match="--rounding must be one of nearest, adaround"):
        QuantizeOptions(calib="digits", rounding="stochastic")  # type: ignore[arg-type]


def test_normalizations_are_read_from_their_owner() -> None:
    from edgeres.errors import UsageError
    from edgeres.metadata import NORMALIZATIONS, PUBLISHED_NORMALIZATIONS
    from edgeres.train import TrainSettings

    assert ("auto", "data", *PUBLISHED_NORMALIZATIONS) == NORMALIZATIONS
    assert _choices("train", "normalize") == NORMALIZATIONS
    degradation = cli.commands["experiment"].commands["degradation"]  # type: ignore[attr-defined]
    param = next(p for p in degradation.params if p.name == "normalize")
    assert tuple(param.type.choices) == NORMALIZATIONS
    for name in NORMALIZATIONS:
        assert (
            TrainSettings(arch="resnet20", data="digits", out="o", epochs=1, normalize=name).normalize == name
        )
    with pytest.raises(UsageError, match="normalization must be one of auto, data, imagenet, cifar10"):
        TrainSettings(arch="resnet20", data="digits", out="o", epochs=1, normalize="coco")


def test_stage_names_are_the_stage_definitions() -> None:
    from edgeres.pipeline.run import STAGE_DEFS
    from edgeres.pipeline.settings import SKIPPABLE_STAGES, STAGES

    assert tuple(d.name for d in STAGE_DEFS) == STAGES
    assert STAGES[1:] == SKIPPABLE_STAGES and _choices("pipeline", "skip") == SKIPPABLE_STAGES


@pytest.mark.parametrize("tensorrt", [False, True])
def test_auto_means_one_thing_in_quantize_and_in_the_pipeline(
    tensorrt: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auto: tensorrt where TensorRT is installed, else cpu; all: both. The same in both places."""
    from edgeres.quantize import targets

    real = importlib.util.find_spec
    monkeypatch.setattr(
        targets.importlib.util,
        "find_spec",
        lambda name, *a: (object() if tensorrt else None) if name == "tensorrt" else real(name, *a),
    )
    expected = ("tensorrt",) if tensorrt else ("cpu",)
    assert targets.resolve_targets("auto") == expected
    assert targets.resolve_targets("all") == ("cpu", "tensorrt", "openvino")
    assert targets.resolve_targets("cpu") == ("cpu",)
    unknown = "unknown target 'gpu'; choose one of auto, cpu, tensorrt, openvino, all"
    with pytest.raises(Exception, match=unknown):
        targets.resolve_targets("gpu")
    # the pipeline's quantize stage plans exactly these layouts
    import edgeres.pipeline.stages as stages

    assert stages.resolve_targets is targets.resolve_targets


def test_faithful_to_is_part_of_the_target() -> None:
    from edgeres.quantize.targets import TARGET_SPECS, faithful_to

    assert (
        faithful_to("tensorrt")
        == ("WeightBiasQuantization",)
        == TARGET_SPECS["tensorrt"].ort_disabled_optimizers
    )
    assert faithful_to("cpu") == () and faithful_to("fp32") == () and faithful_to("fp16") == ()
