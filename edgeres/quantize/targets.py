"""The INT8 targets, by name: what each Q/DQ layout is for, and what ``auto`` and ``all`` mean.

This module owns the names; the layouts (:mod:`edgeres.quantize.layouts`), ``edgeres quantize``,
the pipeline and their click options read them from here. It imports nothing heavy, so the
command line can offer the choices without loading onnx.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal, get_args

from edgeres.errors import UsageError

__all__ = [
    "DEFAULT_WEIGHT_BITS",
    "TARGETS",
    "TARGET_CHOICES",
    "TARGET_SPECS",
    "WEIGHT_BITS",
    "WEIGHT_BITS_CHOICES",
    "Target",
    "TargetChoice",
    "TargetSpec",
    "WeightBits",
    "WeightBitsChoice",
    "bits_for",
    "default_target",
    "faithful_to",
    "layout_note",
    "resolve_targets",
    "resolve_weight_bits",
    "target_choice",
    "weight_bits",
]

Target = Literal["cpu", "tensorrt", "openvino"]
TargetChoice = Literal["auto", "cpu", "tensorrt", "openvino", "all"]
TARGETS: tuple[Target, ...] = get_args(Target)
TARGET_CHOICES: tuple[TargetChoice, ...] = get_args(TargetChoice)

#: Bits of the cpu layout's int8 weights: 8 (-127..127) or 7 (-64..64, ONNX Runtime's
#: ``reduce_range``). x86 CPUs without VNNI (AVX2, AVX-512 without VNNI) add pairs of u8 x s8
#: products in int16 (``vpmaddubsw``), which overflows and saturates with 8-bit weights; with 7-bit
#: weights it cannot. CPUs with VNNI or AMX, Arm and TensorRT accumulate in int32 and lose nothing.
WeightBits = Literal[7, 8]
WEIGHT_BITS: tuple[WeightBits, ...] = (8, 7)
#: What ``--weight-bits`` accepts: ``auto`` is 7 on an x86 CPU without VNNI or AMX (where the
#: model is quantized), else 8; see :func:`resolve_weight_bits`.
WeightBitsChoice = Literal["auto", 8, 7]
WEIGHT_BITS_CHOICES: tuple[WeightBitsChoice, ...] = ("auto", 8, 7)
DEFAULT_WEIGHT_BITS: WeightBitsChoice = "auto"


@dataclass(frozen=True)
class TargetSpec:
    """One target: the runtime its Q/DQ model is for, and how ONNX Runtime must run it to be faithful.

    ``ort_disabled_optimizers`` are ONNX Runtime graph optimizers to turn off when a CPU runs the
    model in place of ``runtime`` (evaluation, ``--max-drop``, ``--method auto``): ORT's
    WeightBiasQuantization quantizes a float Conv that sits between Q/DQ pairs (one kept in float
    by ``--max-drop``); TensorRT and OpenVINO keep it float, ORT's CPU provider does not.
    ``chooses_weight_bits``: ``--weight-bits`` applies (the runtime runs u8 x s8 products on x86
    CPUs, which saturate in int16 pairs without VNNI); the others have 8-bit weights.
    """

    name: Target
    runtime: str
    summary: str
    ort_disabled_optimizers: tuple[str, ...] = ()
    chooses_weight_bits: bool = False


TARGET_SPECS: dict[str, TargetSpec] = {
    "cpu": TargetSpec(
        "cpu",
        "onnxruntime",
        "ONNX Runtime's int8 CPU kernels (u8 activations, s8 weights)",
        chooses_weight_bits=True,
    ),
    "tensorrt": TargetSpec(
        "tensorrt",
        "tensorrt",
        "TensorRT engines (symmetric s8, per-channel weights)",
        ort_disabled_optimizers=("WeightBiasQuantization",),
    ),
    "openvino": TargetSpec(
        "openvino",
        "openvino",
        "OpenVINO's int8 CPU kernels (the cpu format; each residual sum rounded once, as OpenVINO fuses it)",
        ort_disabled_optimizers=("WeightBiasQuantization",),
        chooses_weight_bits=True,
    ),
}


def default_target() -> Target:
    """tensorrt where TensorRT is installed (engines will be built here), else cpu."""
    return "tensorrt" if importlib.util.find_spec("tensorrt") is not None else "cpu"


def resolve_targets(choice: str) -> tuple[Target, ...]:
    """The targets a choice names: ``all`` every target, ``auto`` :func:`default_target`, else itself."""
    if choice == "all":
        return TARGETS
    if choice == "auto":
        return (default_target(),)
    for target in TARGETS:
        if choice == target:
            return (target,)
    raise UsageError(f"unknown target '{choice}'; choose one of {', '.join(TARGET_CHOICES)}")


def target_choice(value: str) -> TargetChoice:
    """``value`` as a :data:`TargetChoice`; a :class:`UsageError` naming the choices otherwise."""
    for choice in TARGET_CHOICES:
        if value == choice:
            return choice
    raise UsageError(f"unknown target '{value}'; choose one of {', '.join(TARGET_CHOICES)}")


def weight_bits(value: object) -> WeightBitsChoice:
    """``value`` (auto, 8 or 7, or their text) as a :data:`WeightBitsChoice`; a UsageError otherwise."""
    for choice in WEIGHT_BITS_CHOICES:
        if (value == choice and not isinstance(value, bool)) or (
            isinstance(value, str) and value.strip().lower() == str(choice)
        ):
            return choice
    raise UsageError(f"weight bits must be auto, 8 or 7, got {value!r}")


def bits_for(target: str, choice: WeightBitsChoice) -> WeightBits:
    """The weight bits ``target``'s model gets for ``--weight-bits choice``: 8 where it has no choice."""
    spec = TARGET_SPECS.get(target)
    return resolve_weight_bits(choice) if spec is not None and spec.chooses_weight_bits else 8


def resolve_weight_bits(choice: WeightBitsChoice) -> WeightBits:
    """``auto``: 7 where this CPU adds int8 products in pairs in int16 (x86 without VNNI or AMX),
    so the model runs here as written; 8 elsewhere. 8 and 7 stay as they are."""
    if choice == "auto":
        from edgeres.sysinfo import int8_pairs_saturate

        return 7 if int8_pairs_saturate() else 8
    if choice == 7:
        return 7
    if choice == 8:
        return 8
    raise UsageError(f"weight bits must be auto, 8 or 7, got {choice!r}")


def layout_note(target: str | None, backend: str) -> str | None:
    """What to know when ``target``'s model runs on ``backend``, where its classes can differ
    from those the file's graph gives (None: the runtime computes the graph as written)."""
    if target == "cpu" and backend == "openvino":
        return (
            "a cpu-layout model on OpenVINO: OpenVINO rounds each residual sum once where the file "
            "rounds twice, so a few classes differ from ONNX Runtime's; `edgeres quantize --target "
            "openvino` writes the layout OpenVINO computes as written"
        )
    return None


def faithful_to(target: str) -> tuple[str, ...]:
    """ONNX Runtime optimizers to disable so the CPU runs a Q/DQ model as ``target`` would.

    Anything that is not a target (``fp32``, ``fp16``) runs with every optimizer.
    """
    spec = TARGET_SPECS.get(target)
    return spec.ort_disabled_optimizers if spec is not None else ()
