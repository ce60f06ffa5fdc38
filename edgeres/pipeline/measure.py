"""The stages that measure the model files: eval, bench, and the report that shows both.

eval writes one ``eval_<variant>.json`` per variant, an eval result as ``edgeres eval --json
--compare FP32`` writes it (``kind``, ``schema``, ``model``, ``precision``, ``backend``,
``size_bytes``, ``result``, and ``reference`` with the ``agreement``; FP32 itself has no
reference). bench writes ``bench.json`` as ``edgeres bench --json`` does. Every model file
is named relative to OUT, so the report of a copied or moved folder finds the files beside
the results.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeres.bench.measure import BenchSettings
from edgeres.errors import EdgeresError
from edgeres.pipeline.context import FP16_NOT_TIMED, TRAIN_SPLIT, Context, Variant, same_data
from edgeres.pipeline.engines import engine_batch
from edgeres.pipeline.openvino import fp32_of, openvino_identity, openvino_variants
from edgeres.pipeline.settings import fingerprint
from edgeres.pipeline.stages import Outcome, StageDef
from edgeres.pipeline.state import StagePlan

__all__ = ["bench_stage", "eval_stage", "report_stage"]

log = logging.getLogger(__name__)

BENCH_JSON = "bench.json"
REPORT_DIR = "report"


@dataclass(frozen=True)
class EvalPlan:
    data: str
    variants: tuple[Variant, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BenchPlan:
    timed: tuple[Variant, ...]
    notes: tuple[str, ...]
    settings: BenchSettings


@dataclass(frozen=True)
class ReportPlan:
    #: edgeres.report.build_report, imported when the plan was made.
    build: Callable[..., Any]


def _eval_path(ctx: Context, v: Variant) -> Path:
    return ctx.out / f"eval_{v.name}.json"


def _measured(ctx: Context) -> tuple[list[Variant], list[str]]:
    """The model files made so far, then their OpenVINO variants (so the report's accuracy of a
    file is ONNX Runtime's, the eval files listed first), and a note on OpenVINO when none."""
    extra, notes = openvino_variants(ctx)
    return [*ctx.variants.values(), *extra], notes


# -- eval --------------------------------------------------------------------------------------


def _plan_eval(ctx: Context) -> StagePlan | str:
    spec, why = ctx.eval_data()
    if spec is None:
        return why
    variants, notes = _measured(ctx)
    split = ctx.out / TRAIN_SPLIT
    # What decides the images: the sample settings, and the held-out split they come from.
    on_calib = ctx.calib is not None and ctx.quantize_planned and same_data(ctx.calib, spec)
    held = ctx.config.quantize.seed if on_calib else None
    fixed = (ctx.fixed_batch,) if ctx.fixed_batch is not None else ()
    return StagePlan(
        fingerprint(
            ctx.config.eval, held, [(v.name, v.layout) for v in variants], *fixed, *_identity(variants)
        ),
        files=(*(v.path for v in variants), *((split,) if split.is_file() else ())),
        data=(spec,),
        outputs=tuple(_eval_path(ctx, v) for v in variants),
        extra=EvalPlan(spec, tuple(variants), tuple(notes)),
    )


def _identity(variants: list[Variant]) -> tuple[str, ...]:
    """What else decides the results of ``variants``: the OpenVINO version, when one runs on it."""
    version = openvino_identity(variants)
    return () if version is None else (version,)


def _runner(v: Variant, threads: int | None) -> Any:
    if v.is_engine or v.backend is not None:
        from edgeres.runners import make_runner

        return make_runner(v.path, v.backend or "tensorrt", threads=None if v.is_engine else threads)
    from edgeres.quantize.workflow import faithful_to
    from edgeres.runners import OnnxRuntimeRunner

    return OnnxRuntimeRunner(v.path, threads=threads, disabled_optimizers=faithful_to(v.layout or "fp32"))


def _run_eval(ctx: Context, plan: StagePlan) -> Outcome:
    from edgeres.engine.options import parse_batch_profile
    from edgeres.evaluate import agreement, evaluate
    from edgeres.export.onnx_meta import read_onnx_meta
    from edgeres.records import EvalRecord, Reference, write_eval

    details = plan.details(EvalPlan)
    source, indices, note = ctx.eval_images(details.data)
    pre = read_onnx_meta(ctx.fp32).preprocessing
    batch = ctx.eval_batch

    def run(v: Variant) -> tuple[Any, Any]:
        runner = _runner(v, ctx.threads)
        size = min(batch, parse_batch_profile(engine_batch(ctx)).max) if v.is_engine else batch
        classes = ctx.label_map(source)
        return runner, evaluate(
            runner, source, indices, pre, batch_size=size, progress=ctx.progress, classes=classes
        )

    # FP32 on each runtime, run first: every variant is compared with the FP32 of its runtime
    by_name = {v.name: v for v in details.variants}
    refs: dict[str, tuple[Any, Any, Any]] = {}
    for name in dict.fromkeys(fp32_of(v) for v in details.variants):
        ref_runner, ref = run(by_name[name])
        refs[name] = (ref_runner, ref, Reference.measured(ctx.fp32, ref_runner, ref, name=ctx.rel(ctx.fp32)))
    written, lines = [], []
    for v in details.variants:
        ref_runner, ref, reference = refs[fp32_of(v)]
        own = v.name == fp32_of(v)
        runner, result = (ref_runner, ref) if own else run(v)
        compared = None if own else dataclasses.replace(reference, agreement=agreement(result, ref))
        path = _eval_path(ctx, v)
        write_eval(
            path, EvalRecord.measured(v.path, runner, result, name=ctx.rel(v.path), reference=compared)
        )
        written.append(path)
        top1 = "-" if result.top1 is None else f"{100 * result.top1:.1f}%"
        lines.append(f"{v.name} {top1}")
    return Outcome(tuple(written), "; ".join([f"top-1 on {note}: " + ", ".join(lines), *details.notes]))


def _register_eval(ctx: Context, plan: StagePlan, outputs: tuple[Path, ...], info: Mapping[str, Any]) -> None:
    ctx.sources.extend(_eval_path(ctx, v) for v in plan.details(EvalPlan).variants)


# -- bench -------------------------------------------------------------------------------------


def _timed(ctx: Context) -> tuple[list[Variant], list[str]]:
    """The variants timed here, and why the others are not."""
    timed, notes = [], []
    variants, openvino_notes = _measured(ctx)
    for v in variants:
        if v.is_engine or v.backend is not None or v.name in ("fp32", "int8-cpu"):
            timed.append(v)
        elif v.name == "fp16" and "engine-fp16" not in ctx.variants:
            notes.append(f"fp16 not timed: {FP16_NOT_TIMED}")
        elif v.name == "int8-tensorrt" and "engine-int8" not in ctx.variants:
            notes.append("int8-tensorrt not timed: its layout is for TensorRT")
        elif v.name == "int8-openvino":
            notes.append("int8-openvino not timed on ONNX Runtime: its layout is for OpenVINO")
    return timed, [*notes, *openvino_notes]


def _bench_settings(ctx: Context) -> tuple[BenchSettings, list[str]]:
    """bench's settings: only the model's batch when it is fixed (with a note on the others)."""
    settings, n = ctx.config.bench, ctx.fixed_batch
    if n is None or settings.batches == (n,):
        return settings, []
    dropped = [b for b in settings.batches if b != n]
    note = f"batch {', '.join(map(str, dropped))} not timed: the model takes batches of exactly {n}"
    return dataclasses.replace(settings, batches=(n,)), [note]


def _plan_bench(ctx: Context) -> StagePlan | str:
    timed, notes = _timed(ctx)
    settings, batch_notes = _bench_settings(ctx)
    return StagePlan(
        fingerprint(settings, [v.name for v in timed], *_identity(timed)),
        files=tuple(v.path for v in timed),
        outputs=(ctx.out / BENCH_JSON,),
        extra=BenchPlan(tuple(timed), (*batch_notes, *notes), settings),
    )


def _run_bench(ctx: Context, plan: StagePlan) -> Outcome:
    from edgeres.bench import benchmark
    from edgeres.records import BenchRecord, write_bench
    from edgeres.sysinfo import collect

    details = plan.details(BenchPlan)
    settings = details.settings
    results = [
        dataclasses.replace(r, model=ctx.rel(v.path))  # named relative to OUT, as eval and quantize do
        for v in details.timed
        for r in benchmark(v.path, dataclasses.replace(settings, backend=v.backend or settings.backend))
    ]
    failed = [r for r in results if not r.ok]
    if not results or len(failed) == len(results):
        first = failed[0].error if failed else "no model to time"
        raise EdgeresError(f"no benchmark ran ({first})")
    record = BenchRecord.of(results, collect(), threads=settings.threads, settings=settings.to_dict())
    write_bench(ctx.out / BENCH_JSON, record)
    notes = list(details.notes)
    notes += [f"{r.model} at batch {r.batch}{_on(r.backend, r.model)} failed: {r.error}" for r in failed]
    if failed:
        notes.append(f"{len(failed)} of {len(results)} rows failed: not recorded, the next run times again")
    return Outcome((ctx.out / BENCH_JSON,), "; ".join(notes), finished=not failed)


def _on(backend: str, model: str) -> str:
    """`` on openvino`` for a row on another backend than the file's own, else nothing."""
    from edgeres.runners.registry import backend_for_file

    return "" if backend == backend_for_file(model) else f" on {backend}"


def _register_bench(
    ctx: Context, plan: StagePlan, outputs: tuple[Path, ...], info: Mapping[str, Any]
) -> None:
    ctx.sources.append(ctx.out / BENCH_JSON)


# -- report ------------------------------------------------------------------------------------


def _build_report() -> Any:
    try:
        from edgeres.report import build_report
    except ImportError as exc:
        if exc.name is None or exc.name.startswith("edgeres.report"):
            return "edgeres.report not available"
        return f"the report needs {exc.name}, which is not installed"
    return build_report


def _plan_report(ctx: Context) -> StagePlan | str:
    build = _build_report()
    if isinstance(build, str):
        return build
    if not ctx.sources:
        return "nothing to report: no quantize, eval or bench results"
    return StagePlan(
        fingerprint(ctx.config.report),
        files=tuple(ctx.sources),
        extra=ReportPlan(build),
    )


def _title(ctx: Context) -> str:
    return ctx.config.report.title or f"{ctx.model.name}: edgeres pipeline"


def _run_report(ctx: Context, plan: StagePlan) -> Outcome:
    paths = plan.details(ReportPlan).build(list(ctx.sources), ctx.out / REPORT_DIR, title=_title(ctx))
    ctx.report = paths
    return Outcome((Path(paths.markdown), Path(paths.json), Path(paths.html)))


def _register_report(
    ctx: Context, plan: StagePlan, outputs: tuple[Path, ...], info: Mapping[str, Any]
) -> None:
    """When up to date: the report's paths, with its data read again from the result files."""
    if ctx.report is None and len(outputs) == 3:
        from edgeres.report import ReportPaths, load_results

        data = load_results(list(ctx.sources), title=_title(ctx))
        ctx.report = ReportPaths(outputs[0], outputs[1], outputs[2], data)


eval_stage = StageDef("eval", _plan_eval, _run_eval, _register_eval)
bench_stage = StageDef("bench", _plan_bench, _run_bench, _register_bench)
report_stage = StageDef("report", _plan_report, _run_report, _register_report)
