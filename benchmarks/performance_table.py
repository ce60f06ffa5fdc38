"""The README's performance table, measured on this machine: FP32 against INT8 (and FP16 on a GPU).

For each model (default resnet20 and resnet56 at 32x32, resnet50 at 224; random weights with
BatchNorm statistics randomized, see ``_common.export_random``) and batch size (default 1 and
16) it times:

- ONNX Runtime on the CPU (``--threads``, default 2): the FP32 ONNX against the INT8 Q/DQ
  ONNX in the "cpu" layout, calibrated on random batches as ``latency_int8_cpu.py`` does;
- OpenVINO on the CPU, where it is installed, in the same rounds: the FP32 ONNX with f32
  inference precision (FP32 means FP32), with bf16 where the CPU has AVX-512-BF16 or AMX
  (a labelled column of its own), and the same cpu-layout INT8 file. Every CPU config is
  timed interleaved in one set of rounds with ONNX Runtime's thread spinning off, so no idle
  session slows the one being timed and each ratio is to ORT FP32 measured in the same run;
- TensorRT, where it imports and torch sees a CUDA GPU: FP32, FP16 (the ONNX converted by
  ``edgeres.engine.convert_fp16``) and INT8 (the "tensorrt" Q/DQ layout) engines built by
  ``edgeres.engine.build_engine`` with one batch profile covering every batch size (tuned
  for the largest), run by the TensorRT runner; the runner's GPU compute time (no copies)
  is kept beside the host-to-host time;
- PyTorch on CUDA in FP32 and FP16, where there is a CUDA GPU but no TensorRT.

The configs of one model and batch are timed interleaved in rounds
(``time_runners``), so every ratio is to an FP32 measured in the same run; each
config's best round (the least disturbed) gives its figure, the median goes to the JSON.
Before each block it waits for idle CPUs (``--max-wait``). A column that cannot run here is
left out, with the reason on stderr. It prints a markdown table, ready to paste into the
README, and a line naming the machine; ``--out`` writes every timing, the settings and
``edgeres.sysinfo.collect()`` as JSON. Run it alone on the machine::

    python benchmarks/performance_table.py --out perf.json
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import SIZES, export_random
from latency_int8_cpu import calibrate, wait_until_quiet

from edgeres.errors import EdgeresError
from edgeres.quantize.qdq import write_qdq
from edgeres.quantize.ranges import Ranges
from edgeres.runners import Runner, make_runner
from edgeres.sysinfo import SystemInfo, collect

Timing = dict[str, float]  # ms (best round), median_ms, and gpu_ms / gpu_median_ms where measured


def gpu_backend(info: SystemInfo) -> tuple[str | None, list[str]]:
    """The GPU backend, tensorrt or torch (CUDA without TensorRT) or None, and why columns are skipped."""
    if not info.cuda_devices:
        return None, ["no GPU columns: torch sees no CUDA device"]
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        return "torch", [
            f"no TensorRT columns: tensorrt does not import ({exc}); torch CUDA FP16/FP32 instead"
        ]
    return "tensorrt", []


def build_engines(
    fp32: Path, ranges: Ranges, batches: list[int], folder: Path, skipped: list[str]
) -> dict[str, Path]:
    """FP32, FP16 and INT8 (Q/DQ) engines of ``fp32`` for batches min..max; a failed build is skipped."""
    from edgeres.engine import BatchProfile, EngineOptions, build_engine

    int8 = write_qdq(fp32, ranges, "tensorrt", folder / f"{fp32.stem}.int8-trt.onnx").path
    profile = BatchProfile(min(batches), max(batches), max(batches))
    cache = folder / "timing.cache"
    engines = {}
    for name, source, fp16 in (("fp32", fp32, False), ("fp16", fp32, True), ("int8", int8, False)):
        out = folder / f"{fp32.stem}.{name}.engine"
        options = EngineOptions(fp16=fp16, batch=profile, timing_cache=cache, output=out)
        try:
            engines[name] = build_engine(source, options, progress=False).engine_path
        except EdgeresError as exc:
            skip(skipped, f"TensorRT {name} of {fp32.stem}: {exc}")
    return engines


def time_runners(
    runners: dict[str, Runner], x: np.ndarray, budget_s: float, rounds: int
) -> dict[str, Timing]:
    """Like ``time_configs`` for any active runners (GPU ones): rounds of ``budget_s`` per config.

    Keeps the runners' ``compute_ms`` (TensorRT's GPU time of the engine alone) where they have it.
    """
    wall: dict[str, list[float]] = {name: [] for name in runners}
    gpu: dict[str, list[float]] = {name: [] for name in runners}
    iters = {name: 1 for name in runners}
    for runner in runners.values():
        runner.infer(x)  # warm up: the first run sets shapes, picks kernels, allocates
    for round_ in range(rounds + 1):  # round 0 sizes the others
        for name, runner in runners.items():
            t0, compute = time.perf_counter(), 0.0
            for _ in range(iters[name]):
                runner.infer(x)
                compute += getattr(runner, "compute_ms", None) or 0.0
            seconds = time.perf_counter() - t0
            if round_ == 0:
                iters[name] = max(1, round(budget_s / rounds / seconds))
                continue
            wall[name].append(seconds / iters[name] * 1e3)
            gpu[name].append(compute / iters[name])
    result = {}
    for name in runners:
        result[name] = {"ms": min(wall[name]), "median_ms": statistics.median(wall[name])}
        if any(gpu[name]):
            result[name] |= {"gpu_ms": min(gpu[name]), "gpu_median_ms": statistics.median(gpu[name])}
    return result


def gpu_runners(backend: str | None, model: str, engines: dict[str, Path]) -> dict[str, Runner]:
    """Active runners of the GPU columns: the engines on TensorRT, or the torch model in FP32 and FP16."""
    if backend == "tensorrt":
        return {
            f"trt-{name}": make_runner(path, "tensorrt", device="cuda").activate()
            for name, path in engines.items()
        }
    if backend != "torch":
        return {}
    from edgeres.models import get_model

    net = get_model(model, num_classes=10 if SIZES[model] == 32 else 1000)  # weights do not change latency
    return {
        f"torch-{p}": make_runner(net, "torch", device="cuda", precision=p).activate()
        for p in ("fp32", "fp16")
    }


def measure(args: argparse.Namespace, info: SystemInfo) -> tuple[list[dict[str, Any]], list[str]]:
    backend, reasons = gpu_backend(info)
    skipped: list[str] = []
    for reason in reasons:
        skip(skipped, reason)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeres-perf-") as tmp:
        folder = Path(tmp)
        for model in args.models:
            size = SIZES[model]
            print(f"{model}: export, calibrate, quantize", file=sys.stderr, flush=True)
            fp32 = export_random(model, folder)
            ranges = calibrate(fp32, size)
            cpu = {
                "fp32": fp32,
                "int8": write_qdq(fp32, ranges, "cpu", folder / f"{model}.int8-cpu.onnx").path,
            }
            engines = (
                build_engines(fp32, ranges, args.batches, folder, skipped) if backend == "tensorrt" else {}
            )
            runners = gpu_runners(backend, model, engines)
            on_cpu = cpu_runners(cpu, args.threads, info, skipped)
            for batch in args.batches:
                idle = wait_until_quiet(args.max_wait)
                x = np.random.default_rng(1).standard_normal((batch, 3, size, size), dtype=np.float32)
                timings = time_runners(on_cpu, x, args.budget, args.rounds)
                if runners:
                    x = np.random.default_rng(1).standard_normal((batch, 3, size, size), dtype=np.float32)
                    timings |= time_runners(runners, x, args.budget, args.rounds)
                rows.append(
                    {"model": model, "input": size, "batch": batch, "idle_before": idle, "ms": timings}
                )
                print(f"{model} b{batch}: " + _timings_text(timings), file=sys.stderr, flush=True)
            for runner in (*runners.values(), *on_cpu.values()):
                runner.deactivate()
    return rows, skipped


def cpu_runners(
    paths: dict[str, Path], threads: int, info: SystemInfo, skipped: list[str]
) -> dict[str, Runner]:
    """Active CPU runners: ORT FP32 and INT8 (spinning off), and OpenVINO f32, bf16, INT8 where it runs."""
    from edgeres.runners import OnnxRuntimeRunner

    made: dict[str, Runner] = {
        f"ort-{name}": OnnxRuntimeRunner(path, threads=threads, spin=False).activate()
        for name, path in paths.items()
    }
    if importlib.util.find_spec("openvino") is None:
        if not any("OpenVINO" in s for s in skipped):
            skip(skipped, "OpenVINO columns: openvino is not installed (pip install edgeres[openvino])")
        return made
    from edgeres.runners.openvino_runner import OpenVinoRunner

    hints = {"ov-f32": (paths["fp32"], "f32"), "ov-int8": (paths["int8"], None)}
    if {"avx512_bf16", "amx_tile"} & set(info.cpu_features):
        hints["ov-bf16"] = (paths["fp32"], "bf16")
    elif not any("bf16" in s for s in skipped):
        skip(skipped, "OpenVINO bf16 column: this CPU has neither AVX-512-BF16 nor AMX")
    for name, (path, hint) in hints.items():
        made[name] = OpenVinoRunner(path, threads=threads, precision_hint=hint).activate()
    return made


def skip(skipped: list[str], reason: str) -> None:
    skipped.append(reason)
    print(f"skipped: {reason}", file=sys.stderr, flush=True)


def _timings_text(timings: dict[str, Timing]) -> str:
    return ", ".join(f"{name} {t['ms']:.3f} ms" for name, t in timings.items())


def _ratio(config: str, base: str) -> Callable[[dict[str, Timing]], str]:
    def cell(ms: dict[str, Timing]) -> str:
        text = f"{ms[config]['ms'] / ms[base]['ms']:.2f}"
        if "gpu_ms" in ms[config] and "gpu_ms" in ms[base]:
            text += f" (GPU {ms[config]['gpu_ms'] / ms[base]['gpu_ms']:.2f})"
        return text

    return cell


def _ms(config: str) -> Callable[[dict[str, Timing]], str]:
    return lambda ms: f"{ms[config]['ms']:.3f}"


#: Table columns: (header, the config it needs, the cell from a row's timings).
COLUMNS = (
    ("ORT CPU FP32 ms", "ort-fp32", _ms("ort-fp32")),
    ("ORT CPU INT8 ms", "ort-int8", _ms("ort-int8")),
    ("ORT INT8/FP32", "ort-int8", _ratio("ort-int8", "ort-fp32")),
    ("OV f32 ms", "ov-f32", _ms("ov-f32")),
    ("OV bf16/ORT FP32", "ov-bf16", _ratio("ov-bf16", "ort-fp32")),
    ("OV INT8/ORT FP32", "ov-int8", _ratio("ov-int8", "ort-fp32")),
    ("OV INT8/OV f32", "ov-int8", _ratio("ov-int8", "ov-f32")),
    ("TRT FP32 ms", "trt-fp32", _ms("trt-fp32")),
    ("TRT FP16/FP32", "trt-fp16", _ratio("trt-fp16", "trt-fp32")),
    ("TRT INT8/FP32", "trt-int8", _ratio("trt-int8", "trt-fp32")),
    ("torch CUDA FP32 ms", "torch-fp32", _ms("torch-fp32")),
    ("torch FP16/FP32", "torch-fp16", _ratio("torch-fp16", "torch-fp32")),
)


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table: a row per model and batch, the columns whose configs every row has."""
    columns = [c for c in COLUMNS if all(c[1] in row["ms"] for row in rows)]
    lines = [
        "| model | input | batch | " + " | ".join(c[0] for c in columns) + " |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in columns) + " |",
    ]
    for row in rows:
        cells = [row["model"], f"{row['input']}x{row['input']}", str(row["batch"])]
        lines.append("| " + " | ".join(cells + [c[2](row["ms"]) for c in columns]) + " |")
    return "\n".join(lines)


def machine_line(info: SystemInfo, args: argparse.Namespace, date: str) -> str:
    """Where and how the table was measured, two lines for under it."""
    names = {"onnxruntime": "onnxruntime", "openvino": "OpenVINO", "torch": "torch", "tensorrt": "TensorRT"}
    libs = ", ".join(f"{shown} {info.libraries.get(n) or 'none'}" for n, shown in names.items())
    gpus = "; ".join(
        f"{d.name} (sm {d.compute_capability}, CUDA {info.cuda_driver})" for d in info.cuda_devices
    )
    features = " ".join(info.cpu_features) or "no AVX2/VNNI/AMX"
    gpu_note = " ((GPU r): the ratio of the engines' GPU compute alone)" if info.cuda_devices else ""
    return (
        f"Machine: {info.cpu_model} ({info.cpu_count} logical cores; {features}), GPU: {gpus or 'none'}; "
        f"{libs}; {info.platform}; {date}.\n"
        f"ms per batch, host to host{gpu_note}, best of {args.rounds} rounds of "
        f"{args.budget:g} s a config; ORT and OpenVINO threads {args.threads}; "
        "ratios as the columns name them, same run."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet20,resnet56,resnet50", help=f"of {', '.join(SIZES)}")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime CPU threads")
    parser.add_argument(
        "--budget", type=float, default=5.0, help="seconds of timing per model, batch and config"
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for idle CPUs")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    args.models = args.models.split(",")
    args.batches = sorted(int(b) for b in args.batches.split(","))
    unknown = [m for m in args.models if m not in SIZES]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(SIZES)}")
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        print(f"warning: load average {load_before[0]:.2f}; other work may skew the timings", file=sys.stderr)
    info = collect()
    date = datetime.date.today().isoformat()
    rows, skipped = measure(args, info)
    print(table(rows))
    print()
    print(machine_line(info, args, date))
    if args.out:
        settings = {k: v for k, v in vars(args).items() if k != "out"}
        result = {"date": date, "environment": info.to_dict(), "settings": settings, "skipped": skipped}
        result |= {"load_before": load_before, "load_after": os.getloadavg(), "rows": rows}
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
