"""INT8 vs FP32 latency on ONNX Runtime's CPU provider, for edgeres' Q/DQ layouts and some variants.

For each model (random weights, BatchNorm statistics randomized so activations look trained-ish)
the script exports the FP32 ONNX, calibrates it on a few random batches, writes
every layout with :func:`edgeres.quantize.qdq.write_qdq_layout`, counts the convolutions ORT
really runs in int8 (:func:`count_int8_kernels`), and times FP32 and each layout with the
OnnxRuntimeRunner at each batch size. Timings are interleaved in rounds (fp32, layout 1,
layout 2, ..., fp32, ...), so all ratios come from one run under the same conditions; each
config's best round (the least disturbed by other processes) gives its latency and ratio,
and the median is reported beside it. Before each timing block it waits for idle CPUs. Run
it alone on the machine::

    python benchmarks/latency_int8_cpu.py --out latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from _common import SIZES, export_random

from edgeres.quantize.collect import collect_ranges
from edgeres.quantize.layouts import LAYOUTS, QdqLayout
from edgeres.quantize.qdq import conv_kernels, count_int8_kernels, write_qdq_layout
from edgeres.quantize.ranges import Ranges
from edgeres.runners import OnnxRuntimeRunner

CPU = LAYOUTS["cpu"]
ASYM_W = {"WeightSymmetric": False}  # int8 weights with a zero point: ORT's general QLinearConv path
VARIANTS: dict[str, QdqLayout] = {
    "cpu": CPU,
    "cpu-per-tensor": QdqLayout("cpu-per-tensor", "QUInt8", "QInt8", False, False),
    "cpu-s8s8": QdqLayout("cpu-s8s8", "QInt8", "QInt8", True, True),
    "cpu-s8-asym": QdqLayout("cpu-s8-asym", "QInt8", "QInt8", True, False),
    "cpu-asym-weights": QdqLayout("cpu-asym-weights", "QUInt8", "QInt8", True, False, extra_options=ASYM_W),
    "cpu-asym-weights-per-tensor": QdqLayout(
        "cpu-asym-weights-per-tensor", "QUInt8", "QInt8", False, False, extra_options=ASYM_W
    ),
    "cpu-u8u8": QdqLayout("cpu-u8u8", "QUInt8", "QUInt8", True, False),
    "cpu-conv-add-only": QdqLayout(
        "cpu-conv-add-only", "QUInt8", "QInt8", True, False, op_types=("Conv", "Add", "Relu")
    ),
    "cpu-float-stem": CPU,  # the default layout with the first conv (3 input channels) kept in float
    "tensorrt": LAYOUTS["tensorrt"],
}


def calibrate(path: Path, size: int, batches: int = 2, batch: int = 8) -> Ranges:
    """Ranges by edgeres' calibration (default method) on random batches (speed does not need real images)."""
    rng = np.random.default_rng(0)
    data = [{"input": rng.standard_normal((batch, 3, size, size), dtype=np.float32)} for _ in range(batches)]
    reader = iter(data)
    return collect_ranges(path, SimpleNamespace(get_next=lambda: next(reader, None)), progress=False).ranges


def time_configs(
    paths: dict[str, Path], batch: int, size: int, threads: int, budget_s: float, rounds: int
) -> dict[str, tuple[float, float]]:
    """(best, median) ms per batch for each config, over ``rounds`` interleaved rounds.

    The best round is the one least disturbed by other processes: on a shared machine it is
    the better estimate, and the ratios use it.
    """
    x = np.random.default_rng(1).standard_normal((batch, 3, size, size), dtype=np.float32)
    runners = {name: OnnxRuntimeRunner(p, threads=threads).activate() for name, p in paths.items()}
    per_iter = {}
    for name, runner in runners.items():  # warm up and size the rounds
        runner.infer(x)
        t0 = time.perf_counter()
        runner.infer(x)
        per_iter[name] = time.perf_counter() - t0
    iters = {n: max(1, round(budget_s / rounds / len(runners) / t)) for n, t in per_iter.items()}
    samples: dict[str, list[float]] = {n: [] for n in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            t0 = time.perf_counter()
            for _ in range(iters[name]):
                runner.infer(x)
            samples[name].append((time.perf_counter() - t0) / iters[name] * 1e3)
    for runner in runners.values():
        runner.deactivate()
    return {n: (min(s), statistics.median(s)) for n, s in samples.items()}


def wait_until_quiet(max_wait_s: float, idle_share: float = 0.9) -> float:
    """Wait (up to ``max_wait_s``) for a second in which the CPUs are ``idle_share`` idle; that share."""

    def cpu_times() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    if not Path("/proc/stat").exists():
        return 1.0
    deadline = time.monotonic() + max_wait_s
    while True:
        idle0, total0 = cpu_times()
        time.sleep(1.0)
        idle1, total1 = cpu_times()
        share = (idle1 - idle0) / max(1, total1 - total0)
        if share >= idle_share or time.monotonic() > deadline:
            return share


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet20,resnet56,resnet50")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--layouts", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=10.0, help="seconds of timing per model and batch")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for idle CPUs")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        print(f"warning: load average {load_before[0]:.2f}; other work may skew the timings", file=sys.stderr)
    layouts = {name: VARIANTS[name] for name in args.layouts.split(",")}
    rows: list[dict[str, Any]] = []
    kernels: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="edgeres-bench-") as tmp:
        folder = Path(tmp)
        for model in args.models.split(","):
            size = SIZES[model]
            fp32 = export_random(model, folder)
            ranges = calibrate(fp32, size)
            paths = {"fp32": fp32}
            kernels[model] = {"fp32": conv_kernels(count_int8_kernels(fp32))}
            for name, layout in layouts.items():
                out = folder / f"{model}.{name}.onnx"
                exclude = [_first_conv(fp32)] if name.endswith("float-stem") else []
                paths[name] = write_qdq_layout(fp32, ranges, layout, out, exclude_nodes=exclude).path
                kernels[model][name] = conv_kernels(count_int8_kernels(out))
            for batch in (int(b) for b in args.batches.split(",")):
                idle = wait_until_quiet(args.max_wait)
                ms = time_configs(paths, batch, size, args.threads, args.budget, args.rounds)
                for name, (best, median) in ms.items():
                    int8, flt = kernels[model][name]
                    row = {"model": model, "batch": batch, "layout": name, "ms": round(best, 3)}
                    row |= {"median_ms": round(median, 3), "ratio": round(best / ms["fp32"][0], 3)}
                    row |= {"int8_convs": int8, "float_convs": flt, "idle_before": round(idle, 2)}
                    rows.append(row)
                    print(_format(row), flush=True)
    result = {
        "rows": rows,
        "threads": args.threads,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


def _first_conv(path: Path) -> str:
    graph = onnx.load(str(path), load_external_data=False).graph
    return next(n.name for n in graph.node if n.op_type == "Conv")


def _format(row: dict[str, Any]) -> str:
    convs = f"{row['int8_convs']:>3} int8 / {row['float_convs']:>2} float conv+gemm"
    return (
        f"{row['model']:<9} b{row['batch']:<3} {row['layout']:<20} {row['ms']:>9.2f} ms "
        f"(median {row['median_ms']:>9.2f})  ratio {row['ratio']:.2f}  ({convs})"
    )


if __name__ == "__main__":
    sys.exit(main())
