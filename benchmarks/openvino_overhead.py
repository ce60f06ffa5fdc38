"""edgeres bench on OpenVINO against a benchmark_app-style loop on the same compiled settings.

For each model (random weights, ``_common.export_random``) in FP32 and the cpu-layout INT8, it
times (a) ``edgeres.bench.benchmark`` with ``backend="openvino"`` (what ``edgeres bench
--backend openvino`` runs: a host array in, a copy of the logits out, every call timed) and (b)
OpenVINO's own loop as benchmark_app runs it: one infer request compiled with the same
properties (``compile_config``), its input tensor set once, ``request.infer()`` called and
timed back to back. A and B alternate (A B B A ...), each ``--duration`` seconds, and each
side's figure is the median of its runs' medians.

Blocks of seconds see the host's noise, which on a shared machine is as large as the overhead.
So it also times call by call (``--calls`` pairs, order flipped each pair): the runner's
``infer`` (the call bench times) against ``infer()`` of a second request on the same compiled
model, its input set once. The two share the compiled model and its threads, so their ratio is
what edgeres adds to each call and nothing else. It prints one table and writes JSON::

    python benchmarks/openvino_overhead.py --models resnet20,resnet50 --out openvino_overhead.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import SIZES, export_random
from latency_int8_cpu import calibrate

from edgeres.bench.measure import BenchSettings, benchmark
from edgeres.quantize.qdq import write_qdq
from edgeres.runners.openvino_runner import compile_config


def edgeres_median(path: Path, threads: int, duration: float) -> float:
    settings = BenchSettings(
        batches=(1,), warmup=1, iters=None, duration=duration, warmup_ms=200.0,
        threads=threads, backend="openvino",
    )  # fmt: skip
    (row,) = benchmark(path, settings)
    assert row.ok and row.median_ms is not None, row.error
    return row.median_ms


def raw_median(path: Path, size: int, threads: int, duration: float) -> float:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", compile_config("CPU", threads=threads))
    request = compiled.create_infer_request()
    x = np.random.default_rng(1).standard_normal((1, 3, size, size), dtype=np.float32)
    request.set_input_tensor(ov.Tensor(x))
    end = time.perf_counter() + 0.2
    while time.perf_counter() < end:  # warm up as bench does
        request.infer()
    times: list[float] = []
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        request.infer()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def call_by_call(path: Path, size: int, threads: int, calls: int) -> tuple[float, float]:
    """Median ms of the runner's infer and of a bare request on the same compiled model, interleaved."""
    import openvino as ov

    from edgeres.runners.openvino_runner import OpenVinoRunner

    x = np.random.default_rng(1).standard_normal((1, 3, size, size), dtype=np.float32)
    with OpenVinoRunner(path, threads=threads) as runner:
        runner.infer(x)
        request = runner._require_compiled().create_infer_request()
        request.set_input_tensor(ov.Tensor(x.copy()))
        request.infer()
        ours: list[float] = []
        bare: list[float] = []
        for i in range(calls):
            for side in ("a", "b") if i % 2 == 0 else ("b", "a"):
                t0 = time.perf_counter()
                if side == "a":
                    runner.infer(x)
                else:
                    request.infer()
                (ours if side == "a" else bare).append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ours), statistics.median(bare)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="resnet20,resnet50")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--pairs", type=int, default=3, help="A-B pairs per model, in alternating order.")
    parser.add_argument("--calls", type=int, default=2000, help="call-by-call pairs per model (0: none)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for model in args.models.split(","):
            size = SIZES[model]
            fp32 = export_random(model, folder)
            int8 = write_qdq(fp32, calibrate(fp32, size), "cpu", folder / f"{model}.int8.onnx").path
            for precision, path in (("fp32", fp32), ("int8", int8)):
                a: list[float] = []
                b: list[float] = []
                for i in range(args.pairs):
                    order = ("a", "b") if i % 2 == 0 else ("b", "a")
                    for side in order:
                        if side == "a":
                            a.append(edgeres_median(path, args.threads, args.duration))
                        else:
                            b.append(raw_median(path, size, args.threads, args.duration))
                row = {
                    "model": model, "precision": precision, "edgeres_ms": statistics.median(a),
                    "raw_ms": statistics.median(b), "edgeres_runs": a, "raw_runs": b,
                }  # fmt: skip
                if args.calls:
                    row["call_ms"], row["call_raw_ms"] = call_by_call(path, size, args.threads, args.calls)
                rows.append(row)
                print(
                    f"{model} {precision}: {row['edgeres_ms']:.3f} / {row['raw_ms']:.3f} ms", file=sys.stderr
                )
    print(
        f"{'model':<10}{'precision':<10}{'edgeres bench ms':>18}{'OpenVINO loop ms':>18}{'ratio':>8}"
        f"{'runner call ms':>16}{'bare call ms':>14}{'ratio':>8}"
    )
    for r in rows:
        ratio = r["edgeres_ms"] / r["raw_ms"]
        line = (
            f"{r['model']:<10}{r['precision']:<10}{r['edgeres_ms']:>18.3f}{r['raw_ms']:>18.3f}{ratio:>8.3f}"
        )
        if "call_ms" in r:
            line += f"{r['call_ms']:>16.3f}{r['call_raw_ms']:>14.3f}{r['call_ms'] / r['call_raw_ms']:>8.3f}"
        print(line)
    if args.out:
        args.out.write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
