"""The round-trip rows of ``edgeres doctor``: export, quantize, run each backend, compare, time.

On every machine: the built-in model (:mod:`edgeres.doctor.model`) exported with
:func:`edgeres.export.export_onnx`, quantized with :func:`edgeres.quantize.quantize` for
both targets, and each ONNX run on ONNX Runtime's CPU provider against PyTorch's logits.
Where TensorRT and a GPU exist: FP32, FP16 and INT8 engines built with
:func:`edgeres.engine.build_engine`, run with :func:`edgeres.runners.make_runner` and
compared with ONNX Runtime's FP32 logits. Each comparison gives the largest absolute
difference of the logits and the top-1 agreement; latency is timed with
:func:`edgeres.bench.benchmark`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeres.doctor.checks import Check
from edgeres.doctor.model import Reference
from edgeres.errors import EdgeresError

__all__ = ["Progress", "compare", "compared_check", "cpu_checks", "engine_checks", "time_model"]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def compare(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """(largest |got - want|, share of rows whose top-1 class is the same) of two (N, classes) arrays."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape or got.ndim != 2 or got.shape[0] == 0:
        raise EdgeresError(f"logits of shape {got.shape} cannot be compared with {want.shape}")
    diff = float(np.abs(got - want).max())
    agreement = float((got.argmax(1) == want.argmax(1)).mean())
    return diff, agreement


def compared_check(
    name: str,
    got: np.ndarray,
    want: np.ndarray,
    min_agreement: float,
    *,
    against: str,
    latency_ms: float | None = None,
    seconds: float | None = None,
) -> Check:
    """A row for ``got`` against the reference ``want``: failed when the agreement is below the minimum."""
    diff, agreement = compare(got, want)
    passed = agreement >= min_agreement
    verdict = f"at least {min_agreement:.2f}" if passed else f"below the {min_agreement:.2f} asked for"
    detail = f"agreement {agreement:.3f} with {against} ({verdict}), max |diff| {diff:.2g}"
    if latency_ms is not None:
        detail += f", {latency_ms:.2f} ms at batch 1"
    if seconds is not None:
        detail += f", built in {seconds:.1f} s"
    return Check(
        name,
        "ok" if passed else "failed",
        detail,
        agreement=agreement,
        min_agreement=min_agreement,
        max_abs_diff=diff,
        latency_ms=latency_ms,
        seconds=seconds,
    )


def time_model(path: Path, *, backend: str, device: str = "cpu", iters: int = 20) -> float | None:
    """Median batch-1 latency in ms over ``iters`` runs (after 3 warm-up runs); None when it failed."""
    from edgeres.bench import BenchSettings, benchmark

    settings = BenchSettings(batches=(1,), warmup=3, iters=iters, backend=backend, device=device)
    result = benchmark(path, settings)[0]
    return result.median_ms if result.ok else None


def _failed(name: str, exc: BaseException) -> Check:
    log.debug("doctor check %s failed", name, exc_info=exc)  # the traceback, with --debug
    text = str(exc).strip().splitlines()
    message = text[0] if text else type(exc).__name__
    if not isinstance(exc, EdgeresError):
        message = f"{type(exc).__name__}: {message}"
    return Check(name, "failed", message)


def _ort_logits(path: Path, inputs: np.ndarray) -> np.ndarray:
    from edgeres.runners import make_runner

    with make_runner(path, "onnxruntime") as runner:
        return runner.infer(inputs)


ONNX_ROWS = (
    "export onnx",
    "onnxruntime fp32",
    "quantize int8",
    "onnxruntime int8 (cpu)",
    "onnxruntime int8 (tensorrt)",
    "onnxruntime int8 (openvino)",
)


def cpu_checks(
    ref: Reference, folder: Path, min_agreement: Mapping[str, float], *, iters: int, progress: Progress
) -> tuple[list[Check], dict[str, Any]]:
    """The ONNX rows, and what later rows need: the FP32 ONNX, the INT8 ONNX per target, ORT's logits."""
    from edgeres.export import export_onnx
    from edgeres.quantize import QuantizeOptions, quantize

    rows: list[Check] = []
    made: dict[str, Any] = {}
    fp32 = folder / "resnet20.fp32.onnx"
    progress("exporting the model to ONNX")
    start = time.perf_counter()
    try:
        result = export_onnx(ref.module, ref.meta, fp32)
    except Exception as exc:
        rows.append(_failed("export onnx", exc))
        rows += [Check(n, "skipped", "needs the ONNX export") for n in ONNX_ROWS[1:]]
        return rows, made
    export_detail = f"opset {result.opset}, {result.exporter} exporter, {result.num_nodes} nodes"
    rows.append(Check("export onnx", "ok", export_detail, seconds=time.perf_counter() - start))

    progress("running the FP32 ONNX on ONNX Runtime")
    try:
        logits = _ort_logits(fp32, ref.inputs)
        latency = time_model(fp32, backend="onnxruntime", iters=iters)
        rows.append(
            compared_check(
                "onnxruntime fp32",
                logits,
                ref.logits,
                min_agreement["fp32"],
                against="torch",
                latency_ms=latency,
            )
        )
        made.update(fp32=fp32, ort_logits=logits)
    except Exception as exc:
        rows.append(_failed("onnxruntime fp32", exc))

    progress("quantizing to INT8 (calibrating on the built-in images)")
    start = time.perf_counter()
    try:
        options = QuantizeOptions(
            calib=str(ref.calib), target="all", calib_size=len(ref.inputs), progress=False
        )
        report = quantize(fp32, folder / "resnet20.int8.onnx", options)
    except Exception as exc:
        rows.append(_failed("quantize int8", exc))
        rows += [Check(n, "skipped", "needs the INT8 models") for n in ONNX_ROWS[3:]]
        return rows, made
    nodes = ", ".join(f"{t.target} {t.num_quantized_nodes}" for t in report.targets)
    detail = f"{report.method} calibration on {report.calib_images} images; quantized nodes: {nodes}"
    rows.append(Check("quantize int8", "ok", detail, seconds=time.perf_counter() - start))

    for target in report.targets:
        name = f"onnxruntime int8 ({target.target})"
        key = "int8-cpu" if target.target in ("cpu", "openvino") else "int8"
        progress(f"running the INT8 ONNX for {target.target} on ONNX Runtime")
        try:
            logits = _ort_logits(target.path, ref.inputs)
            latency = time_model(target.path, backend="onnxruntime", iters=iters)
            rows.append(
                compared_check(
                    name, logits, ref.logits, min_agreement[key], against="torch", latency_ms=latency
                )
            )
        except Exception as exc:
            rows.append(_failed(name, exc))
        made[f"int8-{target.target}"] = target.path
    return rows, made


ENGINE_ROWS = ("tensorrt fp32", "tensorrt fp16", "tensorrt int8")


def engine_checks(
    made: Mapping[str, Any],
    inputs: np.ndarray,
    folder: Path,
    min_agreement: Mapping[str, float],
    *,
    iters: int,
    progress: Progress,
) -> list[Check]:
    """Build the FP32, FP16 and INT8 engines, run each against ONNX Runtime's FP32 logits, time each."""
    from edgeres.engine import BatchProfile, EngineOptions, build_engine
    from edgeres.runners import make_runner

    want = made.get("ort_logits")
    sources = {
        "fp32": (made.get("fp32"), False),
        "fp16": (made.get("fp32"), True),
        "int8": (made.get("int8-tensorrt"), False),
    }
    rows = []
    for precision, (onnx_path, fp16) in sources.items():
        name = f"tensorrt {precision}"
        if onnx_path is None or want is None:
            rows.append(Check(name, "skipped", "needs the ONNX rows above to pass"))
            continue
        progress(f"building the TensorRT {precision.upper()} engine")
        engine = folder / f"resnet20.{precision}.engine"
        options = EngineOptions(fp16=fp16, batch=BatchProfile(1, 1, len(inputs)), output=engine)
        try:
            built = build_engine(onnx_path, options, progress=False)
            with make_runner(built.engine_path, "tensorrt", device="cuda") as runner:
                got = runner.infer(inputs)
            latency = time_model(built.engine_path, backend="tensorrt", device="cuda", iters=iters)
            rows.append(
                compared_check(
                    name,
                    got,
                    want,
                    min_agreement[precision],
                    against="onnxruntime fp32",
                    latency_ms=latency,
                    seconds=built.seconds,
                )
            )
        except Exception as exc:
            rows.append(_failed(name, exc))
    return rows
