"""The engines stage: TensorRT engines from the FP32, FP16 and TensorRT-layout INT8 ONNX.

An engine only runs with the TensorRT version and on the GPU it was built for, so both are
part of the stage's fingerprint: after a TensorRT upgrade, or in a folder moved to another
GPU, the engines are built again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeres.errors import EdgeresError
from edgeres.pipeline.context import Context, Variant, tensorrt_unavailable
from edgeres.pipeline.settings import fingerprint
from edgeres.pipeline.stages import Outcome, StageDef
from edgeres.pipeline.state import StagePlan

__all__ = ["engine_batch", "engines_stage", "tensorrt_identity", "tensorrt_too_old"]


@dataclass(frozen=True)
class EngineJob:
    """One engine to build: the variant it becomes, from which ONNX, and how."""

    variant: str
    source: Path
    #: TensorRT may choose FP16 kernels too (``--fp16``): the INT8 engine with engines.int8_fp16.
    fp16: bool
    path: Path
    precision: str


@dataclass(frozen=True)
class EnginesPlan:
    jobs: tuple[EngineJob, ...]
    notes: tuple[str, ...]


def _engine_jobs(ctx: Context) -> tuple[list[EngineJob], list[str]]:
    """The engines to build, and notes on those that cannot be."""
    e = ctx.config.engines
    jobs: list[EngineJob] = []
    notes: list[str] = []
    for p in e.precisions:
        if p == "fp32":
            jobs.append(EngineJob("engine-fp32", ctx.fp32, False, ctx.out / "model.fp32.engine", "fp32"))
        elif p == "fp16":
            if "fp16" in ctx.variants:
                source = ctx.variants["fp16"].path
                jobs.append(EngineJob("engine-fp16", source, False, ctx.out / "model.fp16.engine", "fp16"))
            else:
                notes.append("no FP16 engine: no FP16 ONNX")
        elif "int8-tensorrt" in ctx.variants:
            precision = "int8+fp16" if e.int8_fp16 else "int8"
            source = ctx.variants["int8-tensorrt"].path
            jobs.append(
                EngineJob("engine-int8", source, e.int8_fp16, ctx.out / "model.int8.engine", precision)
            )
        else:
            notes.append("no INT8 engine: no TensorRT-layout INT8 model (quantize.target)")
    return jobs, notes


def engine_batch(ctx: Context) -> str:
    """The engines' batch profile: engines.batch, else tuned for the largest bench batch B.

    The default ``1:B:M`` also takes the evaluation batches (M is the larger of B and the
    eval batch size), so eval runs engines at its usual batch size. A model whose batch is
    fixed at N gets ``N:N:N``, the only profile it can have.
    """
    n = ctx.fixed_batch
    if n is not None:
        return f"{n}:{n}:{n}"
    largest = max(ctx.config.bench.batches)
    return ctx.config.engines.batch or f"1:{largest}:{max(largest, ctx.config.eval.batch_size)}"


def tensorrt_identity() -> dict[str, Any]:
    """The TensorRT version and the GPU (name, compute capability) engines are built for here.

    Only called where TensorRT imports (see :func:`~edgeres.pipeline.context.tensorrt_unavailable`).
    """
    from edgeres.engine.sidecar import gpu_info
    from edgeres.engine.trt import import_tensorrt

    tensorrt = import_tensorrt(check=False)
    name, capability = gpu_info()
    return {"tensorrt": str(getattr(tensorrt, "__version__", "?")), "gpu": name, "compute": capability}


def tensorrt_too_old() -> str | None:
    """Why the installed TensorRT cannot build edgeres engines (older than 10.3), else None."""
    from edgeres.engine.trt import check_version, import_tensorrt

    try:
        check_version(import_tensorrt(check=False))
    except EdgeresError as exc:
        return str(exc)
    return None


def _plan_engines(ctx: Context) -> StagePlan | str:
    why = tensorrt_unavailable() or tensorrt_too_old()
    if why is not None:
        return why
    jobs, notes = _engine_jobs(ctx)
    if not jobs:
        return "nothing to build: " + "; ".join(notes)
    from edgeres.engine.sidecar import sidecar_path

    e = ctx.config.engines
    if ctx.fixed_batch is not None and e.batch is not None and e.batch != engine_batch(ctx):
        notes.append(f"batch profile {engine_batch(ctx)}, not {e.batch}: the model's batch is fixed")
    outputs = tuple(p for job in jobs for p in (job.path, sidecar_path(job.path)))
    return StagePlan(
        fingerprint(e, engine_batch(ctx), [j.variant for j in jobs], tensorrt_identity()),
        files=tuple(dict.fromkeys(j.source for j in jobs)),
        outputs=outputs,
        extra=EnginesPlan(tuple(jobs), tuple(notes)),
    )


def _run_engines(ctx: Context, plan: StagePlan) -> Outcome:
    from edgeres.engine.build import build_engine
    from edgeres.engine.options import EngineOptions, parse_batch_profile, parse_workspace

    e = ctx.config.engines
    written: list[Path] = []
    details = plan.details(EnginesPlan)
    for job in details.jobs:
        options = EngineOptions(
            fp16=job.fp16,
            batch=parse_batch_profile(engine_batch(ctx)),
            workspace=parse_workspace(e.workspace) if e.workspace else None,
            output=job.path,
        )
        result = build_engine(job.source, options, progress=ctx.progress)
        written += [result.engine_path, result.sidecar_path]
    return Outcome(tuple(written), "; ".join(details.notes))


def _register_engines(
    ctx: Context, plan: StagePlan, outputs: tuple[Path, ...], info: Mapping[str, Any]
) -> None:
    for job in plan.details(EnginesPlan).jobs:
        ctx.variants[job.variant] = Variant(job.variant, job.path, job.precision)


engines_stage = StageDef("engines", _plan_engines, _run_engines, _register_engines)
