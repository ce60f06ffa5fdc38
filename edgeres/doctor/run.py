"""``edgeres doctor`` as one library call: :func:`run_doctor` returns a :class:`DoctorReport`.

Built files go to a temporary folder that is removed afterwards, or are copied into
``keep`` (a new or empty folder) at the end, each file written whole or not at all.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeres.doctor.checks import Check, DoctorReport
from edgeres.doctor.roundtrip import ENGINE_ROWS, ONNX_ROWS, Progress, cpu_checks, engine_checks
from edgeres.doctor.versions import gpu_check, package_checks, tensorrt_check
from edgeres.errors import UsageError, first_line

__all__ = ["DEFAULT_MIN_AGREEMENT", "DoctorSettings", "run_doctor"]

#: The top-1 agreement each comparison asks for, by what is compared. FP32 and FP16 must agree
#: with the reference almost everywhere; INT8 for TensorRT on 90% of the images. ONNX Runtime's
#: CPU INT8 kernels (uint8 activations) agree less on this random-weight model than the TensorRT
#: layout does (0.84 against 1.00 on an AVX2 CPU without VNNI), so that row asks for 0.5, five
#: times chance among 10 classes: enough to catch a broken quantization.
DEFAULT_MIN_AGREEMENT: Mapping[str, float] = {"fp32": 0.99, "fp16": 0.99, "int8": 0.9, "int8-cpu": 0.5}
_CORE = ("torch", "numpy", "onnx", "onnxruntime")


def _default_min_agreement() -> dict[str, float]:
    return dict(DEFAULT_MIN_AGREEMENT)


@dataclass(frozen=True)
class DoctorSettings:
    """What ``edgeres doctor`` runs.

    ``quick`` checks the packages and the GPU only. ``require_tensorrt`` makes a missing
    TensorRT or GPU a failure. ``keep`` is a new or empty folder for the built models.
    ``images`` is the number of images compared (and calibrated on); ``iters`` the timed
    inferences per model. ``min_agreement`` overrides entries of :data:`DEFAULT_MIN_AGREEMENT`.
    """

    quick: bool = False
    require_tensorrt: bool = False
    keep: Path | None = None
    images: int = 64
    iters: int = 20
    seed: int = 0
    min_agreement: Mapping[str, float] = field(default_factory=_default_min_agreement)

    def __post_init__(self) -> None:
        for name in ("images", "iters"):
            n = getattr(self, name)
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise UsageError(f"{name} must be a whole number of at least 1, got {n!r}")
        merged = {**DEFAULT_MIN_AGREEMENT, **dict(self.min_agreement)}
        unknown = sorted(set(merged) - set(DEFAULT_MIN_AGREEMENT))
        if unknown:
            raise UsageError(
                f"unknown agreement key(s) {', '.join(unknown)}; use {', '.join(DEFAULT_MIN_AGREEMENT)}"
            )
        for key, value in merged.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise UsageError(f"the agreement asked for {key} must be a number from 0, got {value!r}")
        object.__setattr__(self, "min_agreement", merged)
        if self.keep is not None:
            object.__setattr__(self, "keep", Path(self.keep))
            if self.quick:
                raise UsageError("--keep has nothing to keep with --quick, which builds nothing; drop one")

    def to_dict(self) -> dict[str, Any]:
        return {
            "quick": self.quick,
            "require_tensorrt": self.require_tensorrt,
            "keep": None if self.keep is None else str(self.keep),
            "images": self.images,
            "iters": self.iters,
            "seed": self.seed,
            "min_agreement": dict(self.min_agreement),
        }


def check_keep_folder(keep: Path) -> None:
    """``keep`` must be a new or an empty folder: nothing of the user's is overwritten."""
    if keep.exists() and not keep.is_dir():
        raise UsageError(f"--keep '{keep}' is a file; give a new or empty folder")
    if keep.is_dir() and any(keep.iterdir()):
        raise UsageError(f"--keep folder '{keep}' is not empty; give a new or empty folder")


def run_doctor(settings: DoctorSettings | None = None, *, progress: Progress | None = None) -> DoctorReport:
    """Check this machine; see :mod:`edgeres.doctor`. ``progress`` gets a line before each slow step."""
    from edgeres.sysinfo import collect
    from edgeres.version import __version__

    s = settings or DoctorSettings()
    say: Progress = progress or (lambda _line: None)
    if s.keep is not None:
        check_keep_folder(s.keep)
    start = time.perf_counter()
    info = collect()
    rows = package_checks(info)
    trt = tensorrt_check(info, required=s.require_tensorrt)
    gpu = gpu_check(info, required=s.require_tensorrt)
    rows += [trt, gpu]
    kept = None
    if s.quick:
        rows.append(Check("round trip", "skipped", "left out (--quick): versions only"))
    else:
        broken = [r.name for r in rows if r.name in _CORE and r.status != "ok"]
        if broken:
            why = f"needs {', '.join(broken)}; see above"
            rows += [Check(n, "skipped", why) for n in ("model", *ONNX_ROWS, *ENGINE_ROWS)]
        else:
            engines_blocked = next((r.detail for r in (trt, gpu) if r.status != "ok"), None)
            kept, more = _round_trip(s, engines_blocked, say)
            rows += more
    return DoctorReport(
        checks=tuple(rows),
        system=info.to_dict(),
        settings=s.to_dict(),
        edgeres_version=__version__,
        seconds=time.perf_counter() - start,
        kept=kept,
    )


def _round_trip(
    s: DoctorSettings, engines_blocked: str | None, say: Progress
) -> tuple[str | None, list[Check]]:
    from edgeres.doctor.model import ARCH, build_reference

    rows: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="edgeres-doctor-") as tmp:
        folder = Path(tmp)
        say(f"building the {ARCH} the checks run on")
        start = time.perf_counter()
        try:
            ref = build_reference(folder, images=s.images, seed=s.seed)
        except Exception as exc:
            rows.append(Check("model", "failed", first_line(exc, limit=None, typed=True)))
            rows += [Check(n, "skipped", "needs the model") for n in (*ONNX_ROWS, *ENGINE_ROWS)]
            return None, rows
        spread = f"predicts {ref.classes_predicted} of 10 classes on {len(ref.inputs)} images"
        detail = f"{ARCH}, random weights, {spread}"
        rows.append(Check("model", "ok", detail, seconds=time.perf_counter() - start))
        onnx_rows, made = cpu_checks(ref, folder, s.min_agreement, iters=s.iters, progress=say)
        rows += onnx_rows
        if engines_blocked is None:
            rows += engine_checks(made, ref.inputs, folder, s.min_agreement, iters=s.iters, progress=say)
        else:
            for name in ENGINE_ROWS:
                precision = name.split()[-1].upper()
                would = f"would build an {precision} engine and compare it with ONNX Runtime"
                rows.append(Check(name, "skipped", f"{would}; {engines_blocked}"))
        kept = _keep(folder, s.keep) if s.keep is not None else None
    return kept, rows


def _keep(folder: Path, keep: Path) -> str:
    from edgeres.atomic import atomic_path

    keep.mkdir(parents=True, exist_ok=True)
    for path in sorted(folder.iterdir()):
        if path.is_file():
            with atomic_path(keep / path.name, suffix=path.suffix + ".tmp") as tmp:
                shutil.copyfile(path, tmp)
    return str(keep)
