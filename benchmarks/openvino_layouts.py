"""Which INT8 layout OpenVINO runs fastest: edgeres's layouts against NNCF's own, per layer.

For one model with random weights (``_common.export_random``; default resnet50 at 224) it writes
edgeres's Q/DQ layouts (``--layouts``: cpu, openvino and tensorrt; calibrated on random batches,
as ``latency_int8_cpu.py`` does) and, where NNCF is installed (``pip install nncf``), NNCF's
``nncf.quantize`` of the model OpenVINO reads from the same FP32 ONNX. Then, on OpenVINO's CPU
plugin (latency hint, ``--threads``, f32 inference precision):

- **time**: ORT FP32 (spinning off), OpenVINO f32 and every INT8 model, each batch size timed
  interleaved in ``--rounds`` rounds whose order flips every round; best and median ms per
  batch, and the ratios to ORT FP32 and to OpenVINO f32 measured in the same run;
- **profile**: OpenVINO's per-layer performance counters (PERF_COUNT) of every INT8 model at
  batch 1, over ``--profile-runs`` inferences taken in turn: the median milliseconds per
  layer type and kernel, so a layer left in float (a ``jit_avx512_f32`` Subgraph, a FakeQuantize)
  or a slower convolution kernel shows where the time goes.

It prints both tables and writes JSON::

    python benchmarks/openvino_layouts.py --out openvino_layouts.json
    python benchmarks/openvino_layouts.py --model resnet20 --batches 1,16
    python benchmarks/openvino_layouts.py --layouts cpu,openvino
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import SIZES, export_random
from latency_int8_cpu import calibrate

from edgeres.quantize.qdq import write_qdq
from edgeres.runners.openvino_runner import compile_config
from edgeres.sysinfo import collect


def nncf_model(fp32: Path, size: int, folder: Path) -> Path:
    """NNCF's default INT8 IR of ``fp32``, from random images (speed does not need real ones)."""
    import nncf
    import openvino as ov

    rng = np.random.default_rng(0)
    items = [rng.standard_normal((1, 3, size, size), dtype=np.float32) for _ in range(16)]
    quantized = nncf.quantize(ov.Core().read_model(str(fp32)), nncf.Dataset(items), subset_size=len(items))
    path = folder / "nncf.xml"
    ov.save_model(quantized, str(path))
    return path


def requests(paths: dict[str, Path], x: np.ndarray, threads: int, profile: bool) -> dict[str, Any]:
    """One OpenVINO infer request per model, compiled as the openvino runner compiles, input set."""
    import openvino as ov

    core = ov.Core()
    config: dict[str, Any] = compile_config("CPU", threads=threads)
    if profile:
        config["PERF_COUNT"] = "YES"
    made = {}
    for name, path in paths.items():
        request = core.compile_model(core.read_model(str(path)), "CPU", config).create_infer_request()
        request.set_input_tensor(ov.Tensor(x))
        request.infer()
        made[name] = request
    return made


def ort_fp32(path: Path, x: np.ndarray, threads: int) -> Callable[[], Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    session.run(None, feed)
    return lambda: session.run(None, feed)


def time_interleaved(
    calls: dict[str, Callable[[], Any]], rounds: int, block_s: float
) -> dict[str, list[float]]:
    """ms per call of each callable, one block of about ``block_s`` per round, order flipped each round."""
    iters = {}
    for name, call in calls.items():
        t0 = time.perf_counter()
        call()
        call()
        iters[name] = max(1, round(block_s / ((time.perf_counter() - t0) / 2)))
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            for _ in range(iters[name]):
                calls[name]()
            samples[name].append((time.perf_counter() - t0) / iters[name] * 1e3)
    return samples


def profile(reqs: dict[str, Any], runs: int) -> dict[str, dict[str, Any]]:
    """Median ms per (layer type, kernel) of each request's executed layers, the requests taken in turn.

    Medians over the runs, not means: one preempted layer would otherwise outweigh the rest.
    """
    per: dict[str, dict[str, list[float]]] = {name: collections.defaultdict(list) for name in reqs}
    layers: dict[str, collections.Counter[str]] = {name: collections.Counter() for name in reqs}
    totals: dict[str, list[float]] = {name: [] for name in reqs}
    for run in range(runs):
        for name in reqs if run % 2 == 0 else list(reqs)[::-1]:
            reqs[name].infer()
            this: collections.Counter[str] = collections.Counter()
            for info in reqs[name].profiling_info:
                if info.status.name != "EXECUTED":
                    continue
                key = f"{info.node_type} {info.exec_type}"
                this[key] += info.real_time.total_seconds() * 1e3
                if run == 0:
                    layers[name][key] += 1
            for key, ms in this.items():
                per[name][key].append(ms)
            totals[name].append(sum(this.values()))
    out = {}
    for name in reqs:
        medians = {key: statistics.median(v) for key, v in per[name].items()}
        ranked = sorted(medians.items(), key=lambda kv: -kv[1])
        out[name] = {
            "total_ms": statistics.median(totals[name]),
            "by_kernel": {key: {"ms": ms, "layers": layers[name][key]} for key, ms in ranked},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet50", choices=sorted(SIZES))
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--layouts", default="cpu,openvino,tensorrt", help="edgeres's layouts to time")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block", type=float, default=1.0, help="seconds per model and round")
    parser.add_argument("--profile-runs", type=int, default=40)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if importlib.util.find_spec("openvino") is None:
        sys.exit("openvino is not installed: pip install 'edgeres[openvino]'")
    size = SIZES[args.model]
    result: dict[str, Any] = {"model": args.model, "threads": args.threads, "rounds": args.rounds}
    with tempfile.TemporaryDirectory(prefix="edgeres-ovlayouts-") as tmp:
        folder = Path(tmp)
        print(f"{args.model}: export, calibrate, quantize", file=sys.stderr, flush=True)
        fp32 = export_random(args.model, folder)
        ranges = calibrate(fp32, size)
        int8 = {
            f"edgeres {layout}": write_qdq(fp32, ranges, layout, folder / f"{layout}.onnx").path
            for layout in args.layouts.split(",")
        }
        if importlib.util.find_spec("nncf") is not None:
            int8["nncf"] = nncf_model(fp32, size, folder)
        else:
            print("skipped: the nncf row: pip install nncf", file=sys.stderr)
        result["timing"] = []
        for batch in (int(b) for b in args.batches.split(",")):
            x = np.random.default_rng(1).standard_normal((batch, 3, size, size), dtype=np.float32)
            reqs = requests({"OpenVINO f32": fp32, **int8}, x, args.threads, profile=False)
            calls = {"ORT FP32": ort_fp32(fp32, x, args.threads)} | {n: r.infer for n, r in reqs.items()}
            samples = time_interleaved(calls, args.rounds, args.block)
            result["timing"].append({"batch": batch, "ms": samples})
            del reqs, calls
        x = np.random.default_rng(1).standard_normal((1, 3, size, size), dtype=np.float32)
        result["profile"] = profile(requests(int8, x, args.threads, profile=True), args.profile_runs)
    result["system"] = collect().to_dict()
    print(f"\n{args.model}, {args.threads} threads, best (median) of {args.rounds} interleaved rounds")
    print("| model | batch | ms | of ORT FP32 | of OpenVINO f32 |\n| --- | ---: | ---: | ---: | ---: |")
    for row in result["timing"]:
        best = {n: min(v) for n, v in row["ms"].items()}
        med = {n: statistics.median(v) for n, v in row["ms"].items()}
        for name in row["ms"]:
            print(
                f"| {name} | {row['batch']} | {best[name]:.3f} ({med[name]:.3f}) "
                f"| {best[name] / best['ORT FP32']:.3f} ({med[name] / med['ORT FP32']:.3f}) "
                f"| {best[name] / best['OpenVINO f32']:.3f} ({med[name] / med['OpenVINO f32']:.3f}) |"
            )
    print("\nper-layer counters at batch 1 (median ms over the runs; layers of that kind)")
    print("| model | total ms | layer type and kernel: ms (layers) |\n| --- | ---: | --- |")
    for name, prof in result["profile"].items():
        kinds = "; ".join(
            f"{k} {v['ms']:.3f} ({v['layers']})" for k, v in list(prof["by_kernel"].items())[:6]
        )
        print(f"| {name} | {prof['total_ms']:.3f} | {kinds} |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
