"""Run the stages in order, skipping those that are up to date; see :func:`run_pipeline`."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

from edgeres.errors import EdgeresError, UsageError, first_line
from edgeres.pipeline.context import FP32_ONNX, Context
from edgeres.pipeline.engines import engines_stage
from edgeres.pipeline.lock import LOCK_NAME, folder_lock
from edgeres.pipeline.measure import bench_stage, eval_stage, report_stage
from edgeres.pipeline.results import PipelineResult, StageResult, Status
from edgeres.pipeline.settings import PipelineConfig
from edgeres.pipeline.stages import StageDef, export_stage, fp16_stage, quantize_stage
from edgeres.pipeline.state import PipelineState

__all__ = ["STAGE_DEFS", "run_pipeline"]

log = logging.getLogger("edgeres.pipeline")

STAGE_DEFS: tuple[StageDef, ...] = (
    export_stage,
    fp16_stage,
    quantize_stage,
    engines_stage,
    eval_stage,
    bench_stage,
    report_stage,
)


def run_pipeline(
    model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: PipelineConfig | None = None,
    *,
    calib: str | None = None,
    eval_data: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> PipelineResult:
    """Export, convert, quantize, build, evaluate, benchmark and report ``model`` into ``out_dir``.

    Each stage is skipped when its outputs are newer than its inputs and its settings and
    inputs are unchanged (``force`` reruns all); a stage that cannot run here (no TensorRT,
    no calibration data, ...) is skipped with the reason. A failed stage ends the run: the
    result says which and why, and the outputs of the stages before it are kept. Bad
    arguments (a missing model, an output path that is a file or not writable, settings
    that contradict each other or the data given) raise :class:`~edgeres.errors.EdgeresError`
    before anything is written.
    """
    config = config or PipelineConfig()
    model, out = Path(model), Path(out_dir)
    _check_model(model, out)
    config.check()
    _check_max_drop(model, config, calib, eval_data)
    created = _prepare_out(out)
    try:
        with folder_lock(out) as lock:
            try:
                return _run_locked(model, out, config, calib, eval_data, force, progress)
            finally:
                if created and [p.name for p in out.iterdir()] == [LOCK_NAME]:
                    lock.unlink(missing_ok=True)  # nothing was made: leave no trace
    finally:
        if created and out.is_dir() and not any(out.iterdir()):
            with contextlib.suppress(OSError):
                out.rmdir()


def _run_locked(
    model: Path,
    out: Path,
    config: PipelineConfig,
    calib: str | None,
    eval_data: str | None,
    force: bool,
    progress: bool,
) -> PipelineResult:
    ctx = Context(model, out, config, calib, eval_data, progress, PipelineState.load(out))
    results: list[StageResult] = []
    blocked: str | None = None
    for number, stage in enumerate(STAGE_DEFS, 1):
        if blocked is not None:
            results.append(StageResult(stage.name, Status.SKIPPED, reason=f"not run: {blocked} failed"))
            continue
        result = _run_stage(ctx, stage, f"[{number}/{len(STAGE_DEFS)}] {stage.name}", force)
        results.append(result)
        if result.status is Status.FAILED:
            blocked = stage.name
    return PipelineResult(out, tuple(results), ctx.report)


def _check_model(model: Path, out: Path) -> None:
    if not model.exists():
        raise UsageError(f"model file '{model}' does not exist")
    if model.is_dir():
        raise UsageError(f"'{model}' is a folder; give the model file (.pt, .pt2, .onnx)")
    if out.exists() and not out.is_dir():
        raise UsageError(f"output folder '{out}' is a file; choose another -o path")
    if model.resolve() == (out / FP32_ONNX).resolve():
        raise UsageError(f"'{model}' is the pipeline's own output; give the original model or another -o")


def _check_max_drop(model: Path, config: PipelineConfig, calib: str | None, eval_data: str | None) -> None:
    """quantize.max_drop needs evaluation data: --eval, or the split a checkpoint records."""
    if config.quantize.max_drop is None or eval_data or calib is None or "quantize" in config.skip:
        return
    from edgeres.data.holdout import TrainingSplit
    from edgeres.loading import load_model

    m = config.model
    try:
        loaded = load_model(model, m.arch, overrides=m.overrides(), unsafe_pickle=m.unsafe_pickle)
    except Exception:  # a model that does not load: the export stage fails and says why
        log.debug("model not loaded to look for its training split", exc_info=True)
        return
    if TrainingSplit.from_checkpoint(loaded.extra) is None:
        raise UsageError(
            "quantize.max_drop needs evaluation data: give --eval DATA "
            "(MODEL is not an edgeres checkpoint whose training data is known)"
        )


def _prepare_out(out: Path) -> bool:
    """Create ``out`` when missing (True when it was created); refuse one that cannot be written."""
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeresError(
            f"cannot create output folder '{out}': {exc.strerror or exc}; choose another -o path"
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise EdgeresError(f"output folder '{out}' is not writable; choose another -o path")
    return created


def _run_stage(ctx: Context, stage: StageDef, label: str, force: bool) -> StageResult:
    name, state = stage.name, ctx.state
    if name in ctx.config.skip:
        # What it made before would be stale: the folder must not offer it to `edgeres report`.
        removed = _remove_stale(ctx, state.discard(name), ())
        log.info("%s: skipped on request", label)
        reason = "skipped on request (--skip or [pipeline] skip)"
        if removed:
            reason += f"; removed its earlier outputs ({', '.join(p.name for p in removed)})"
        return StageResult(name, Status.SKIPPED, reason=reason)
    start = time.monotonic()
    try:
        plan = stage.plan(ctx)
        if isinstance(plan, str):
            state.forget([name])
            log.info("%s: skipped (%s)", label, plan)
            return StageResult(name, Status.SKIPPED, reason=plan)
        why = "--force" if force else state.stale(name, plan)
        if why is None:
            outputs, info = state.outputs(name), state.info(name)
            stage.register(ctx, plan, outputs, info)
            log.info("%s: up to date", label)
            return StageResult(name, Status.UP_TO_DATE, 0.0, outputs, str(info.get("note", "")))
        log.info("%s: running (%s)", label, why)
        inputs = state.inputs(plan)
        before = state.begin(name)  # listed until a run finishes, even when this one fails
        outcome = stage.run(ctx, plan)
        seconds = time.monotonic() - start
        _remove_stale(ctx, before, outcome.outputs)
        if outcome.finished:
            state.record(name, plan, inputs, outcome.outputs, seconds, {**outcome.info, "note": outcome.note})
        else:
            state.unfinished(name, outcome.outputs)
        stage.register(ctx, plan, outcome.outputs, outcome.info)
        return StageResult(name, Status.RAN, seconds, outcome.outputs, outcome.note)
    except Exception as exc:  # any failure ends the run with a one-line reason; KeyboardInterrupt passes
        log.debug("stage %s failed", name, exc_info=True)
        reason = first_line(exc, limit=None, typed=not isinstance(exc, EdgeresError))
        return StageResult(name, Status.FAILED, time.monotonic() - start, (), reason, exc)


def _remove_stale(ctx: Context, before: tuple[Path, ...], now: tuple[Path, ...]) -> list[Path]:
    """Delete what an earlier run of a stage wrote and this one did not (e.g. a dropped target)."""
    keep = {p.resolve() for p in now}
    root = ctx.out.resolve()
    removed = []
    for path in before:
        resolved = path.resolve()
        if resolved not in keep and resolved.is_file() and root in resolved.parents:
            try:
                resolved.unlink(missing_ok=True)
            except OSError as exc:  # a file that cannot be deleted does not fail the run
                log.warning("cannot delete the stale %s: %s", resolved, exc.strerror or exc)
                continue
            removed.append(resolved)
    for folder in {p.parent for p in removed}:  # a folder that held only removed files (report/)
        if folder != root and root in folder.parents and not any(folder.iterdir()):
            with contextlib.suppress(OSError):
                folder.rmdir()
    return removed
