"""The OpenVINO variants: FP32 and the cpu- and openvino-layout INT8, run on OpenVINO too.

Where the ``openvino`` package is installed (and ``[openvino] enabled`` is not false), eval
and bench run ``fp32``, ``int8-cpu`` and ``int8-openvino`` a second time, on OpenVINO's CPU
device (FP32 with the f32 hint, as :mod:`edgeres.runners.openvino_runner` asks for), as the
variants ``fp32-openvino``, ``int8-cpu-openvino`` and ``int8-openvino-openvino``: the same
model files, another runtime. The OpenVINO INT8 is compared with the OpenVINO FP32, so its
agreement and latency ratio are within one runtime. The tensorrt-layout INT8 is left out:
OpenVINO runs it inexactly on CPUs without VNNI.
"""

from __future__ import annotations

import dataclasses
from importlib import metadata

from edgeres.pipeline.context import Context, Variant
from edgeres.runners.registry import available

__all__ = ["OPENVINO", "OPENVINO_OF", "fp32_of", "openvino_identity", "openvino_variants"]

#: The backend (edgeres.runners.registry) these variants run on.
OPENVINO = "openvino"
#: The variants also run on OpenVINO -> the name of their OpenVINO variant, in the order run.
OPENVINO_OF: dict[str, str] = {
    base: f"{base}-{OPENVINO}" for base in ("fp32", "int8-cpu", f"int8-{OPENVINO}")
}


def _unavailable() -> str | None:
    return None if available(OPENVINO) else "openvino not installed"


def openvino_variants(ctx: Context) -> tuple[list[Variant], list[str]]:
    """The OpenVINO variants of the files made so far, and a note when there are none here."""
    if not ctx.config.openvino.enabled:
        return [], []
    why = _unavailable()
    if why is not None:
        return [], [f"no OpenVINO rows: {why}"]
    made = [
        dataclasses.replace(ctx.variants[base], name=name, backend=OPENVINO)
        for base, name in OPENVINO_OF.items()
        if base in ctx.variants
    ]
    return made, []


def fp32_of(v: Variant) -> str:
    """The FP32 variant ``v`` is compared with: the one on the same runtime."""
    return OPENVINO_OF["fp32"] if v.backend == OPENVINO else "fp32"


def openvino_identity(variants: list[Variant]) -> str | None:
    """The OpenVINO version when ``variants`` run on it (an upgrade reruns them), else None."""
    if not any(v.backend == OPENVINO for v in variants):
        return None
    try:
        return metadata.version(OPENVINO)
    except metadata.PackageNotFoundError:
        return "?"
