"""Where the time of an INT8 model goes on ONNX Runtime's CPU provider, op by op, beside FP32.

For one model (random weights, see ``_common.export_random``) the script writes the "cpu" Q/DQ
layout, then runs the FP32 and the INT8 model with ONNX Runtime's profiler on, one session at a
time (an idle session's spinning threads would slow the other), at ``--threads`` (default 1
and 2) and batch 1. It prints, per session, the wall time per run and the kernel time per op
type; then the convolutions side by side (FP32 Conv and INT8 QLinearConv in graph order),
each with its INT8/FP32 ratio. It shows whether a slow INT8 model is a layout problem (float
convs, Q/DQ left over) or the int8 kernels' own speed. Run it alone on the machine::

    python benchmarks/int8_op_profile.py --model resnet50 --out int8_op_profile.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from _common import SIZES, export_random
from latency_int8_cpu import calibrate

from edgeres.quantize.qdq import write_qdq


def profile(path: Path, threads: int, runs: int) -> dict[str, Any]:
    """Best wall ms per run, median kernel ms per op type and per conv node (graph order)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(path.with_suffix(""))
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name, size = session.get_inputs()[0].name, session.get_inputs()[0].shape[-1]
    x = np.random.default_rng(1).standard_normal((1, 3, size, size), dtype=np.float32)
    for _ in range(5):  # warm-up: the profile of these runs is dropped below
        session.run(None, {name: x})
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {name: x})
        walls.append((time.perf_counter() - start) * 1e3)
    events = json.loads(Path(session.end_profiling()).read_text())
    nodes: dict[tuple[str, str], list[float]] = defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            nodes[(event["name"].removesuffix("_kernel_time"), event["args"]["op_name"])].append(event["dur"])
    per_node = {key: statistics.median(durations[-runs:]) / 1e3 for key, durations in nodes.items()}
    per_op: dict[str, float] = defaultdict(float)
    for (_, op), ms in per_node.items():
        per_op[op] += ms
    convs = [(node, op, ms) for (node, op), ms in per_node.items() if "Conv" in op]
    return {"wall_ms": min(walls), "per_op_ms": dict(per_op), "convs": convs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50", choices=sorted(SIZES))
    parser.add_argument("--threads", default="1,2", help="ONNX Runtime intra-op threads, comma-separated")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    results: dict[str, Any] = {"model": args.model, "batch": 1, "threads": {}}
    with tempfile.TemporaryDirectory(prefix="edgeres-op-profile-") as tmp:
        folder = Path(tmp)
        fp32 = export_random(args.model, folder)
        int8 = write_qdq(fp32, calibrate(fp32, SIZES[args.model]), "cpu", folder / "int8.onnx").path
        for threads in (int(t) for t in args.threads.split(",")):
            runs = {"fp32": profile(fp32, threads, args.runs), "int8": profile(int8, threads, args.runs)}
            results["threads"][threads] = runs
            ratio = runs["int8"]["wall_ms"] / runs["fp32"]["wall_ms"]
            print(
                f"\n{args.model} batch 1, {threads} thread(s): FP32 {runs['fp32']['wall_ms']:.2f} ms, "
                f"INT8 {runs['int8']['wall_ms']:.2f} ms, INT8/FP32 {ratio:.3f} (best of {args.runs})"
            )
            for label, run in runs.items():
                ops = sorted(run["per_op_ms"].items(), key=lambda kv: -kv[1])
                print(f"  {label} kernels: " + ", ".join(f"{op} {ms:.2f}" for op, ms in ops))
            print("  | # | FP32 conv | ms | INT8 conv | ms | ratio |\n  |---|---|---|---|---|---|")
            for i, (a, b) in enumerate(zip(runs["fp32"]["convs"], runs["int8"]["convs"], strict=False)):
                print(f"  | {i} | {a[0]} | {a[2]:.3f} | {b[0]} | {b[2]:.3f} | {b[2] / a[2]:.2f} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
