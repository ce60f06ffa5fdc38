"""Agreement with FP32 (and speed) of the cpu layout's number formats, on this CPU and exactly.

ONNX Runtime's u8s8 kernels on x86 CPUs without VNNI (AVX2, AVX-512 without VNNI) add pairs of
u8 x s8 products in int16, which saturates (its documentation suggests 7-bit weights,
``reduce_range``, or u8u8 there). This writes one FP32 ONNX's calibrated ranges (a calibration
cache from ``edgeres quantize``) in the cpu layout with 8-bit weights (u8s8), with 7-bit weights,
as u8u8 and s8s8, and in the tensorrt layout, and runs each on the same images:

- ``ort``: ONNX Runtime's CPU provider with its INT8 kernels, on this machine;
- ``exact``: ONNX Runtime with graph optimizations off, so each QuantizeLinear/DequantizeLinear
  runs as written and the integer math is done in float without overflow: what a CPU whose
  kernels do not saturate (VNNI, AMX, Arm dot product) computes;
- ``openvino``: OpenVINO's CPU plugin (f32 hint), where installed.

It prints the top-1 agreement with FP32 and, with ``--time``, the median latency of each format
on ONNX Runtime at batch 1 and 16 (interleaved blocks; run it on a quiet machine), as one table,
and writes JSON::

    edgeres quantize r20.fp32.onnx --calib ../shared/data/cifar10/train --calib-cache r20.calib.json
    python benchmarks/cpu_layout_formats.py r20.fp32.onnx r20.calib.json \\
        --data ../shared/data/cifar10/train --size 2000 --time --out cpu_layout_formats.json

Give ``--held-out CHECKPOINT`` to compare on the images ``edgeres train`` held out (the ones
``edgeres quantize`` of that checkpoint evaluates on, never calibrated on), or ``--indices`` (a
JSON list).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from latency_int8_cpu import time_configs, wait_until_quiet

from edgeres.data import align_labels, open_source, stratified_sample
from edgeres.errors import EdgeresError, first_line
from edgeres.evaluate import EvalResult, agreement, evaluate
from edgeres.export.onnx_meta import read_onnx_meta
from edgeres.quantize.cache import load_cache
from edgeres.quantize.layouts import LAYOUTS, QdqLayout
from edgeres.quantize.qdq import write_qdq_layout
from edgeres.quantize.workflow import faithful_to
from edgeres.runners import OnnxRuntimeRunner, Runner
from edgeres.sysinfo import collect


def layouts() -> dict[str, QdqLayout]:
    cpu = LAYOUTS["cpu"]
    return {
        "cpu u8s8": cpu,
        "cpu u8s8 7-bit": dataclasses.replace(cpu, name="cpu-7bit", reduce_range=True),
        "cpu u8u8": dataclasses.replace(
            cpu,
            name="cpu-u8u8",
            weight_type="QUInt8",
            extra_options={**cpu.extra_options, "WeightSymmetric": False},
        ),
        "cpu s8s8": dataclasses.replace(cpu, name="cpu-s8s8", activation_type="QInt8"),
        "tensorrt": LAYOUTS["tensorrt"],
    }


def engines(target: str) -> dict[str, Any]:
    """Runner factories by engine name, for a model of ``target``."""
    made: dict[str, Any] = {
        "ort": lambda p: OnnxRuntimeRunner(p, disabled_optimizers=faithful_to(target)),
        "exact": lambda p: OnnxRuntimeRunner(p, optimize=False),
    }
    if importlib.util.find_spec("openvino") is not None:
        from edgeres.runners.openvino_runner import OpenVinoRunner

        made["openvino"] = lambda p: OpenVinoRunner(p, precision_hint="f32")
    return made


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "fp32", type=Path, help="FP32 ONNX exported by edgeres (its metadata gives the preprocessing)."
    )
    parser.add_argument("cache", type=Path, help="Its calibration cache (edgeres quantize --calib-cache).")
    parser.add_argument("--data", required=True, help="Labelled images to compare on.")
    parser.add_argument("--size", type=int, default=2000, help="A class-stratified sample of this many.")
    parser.add_argument("--indices", type=Path, help="JSON list of image indices to compare on instead.")
    parser.add_argument("--held-out", type=Path, help="Compare on this checkpoint's held-out images.")
    parser.add_argument("--time", action="store_true", help="Also time each format on ONNX Runtime.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="Write the results as JSON.")
    args = parser.parse_args()

    meta = read_onnx_meta(args.fp32)
    ranges, _ = load_cache(args.cache)
    source = open_source(args.data)
    classes = align_labels(source, meta.class_names, meta.num_classes)
    if args.held_out:
        from edgeres.data.holdout import TrainingSplit
        from edgeres.loading import load_model
        from edgeres.quantize.selection import select_images

        split = TrainingSplit.from_checkpoint(load_model(args.held_out).extra)
        chosen = select_images(args.data, args.data, calib_size=512, split=split)
        assert chosen.eval_indices is not None
        indices = chosen.eval_indices
    elif args.indices:
        indices = np.asarray(json.loads(args.indices.read_text()), dtype=np.int64)
    else:
        indices = stratified_sample(source.labels, args.size, seed=0)

    def run(runner: Runner) -> EvalResult:
        return evaluate(runner, source, indices, meta.preprocessing, progress=False, classes=classes)

    base = run(OnnxRuntimeRunner(args.fp32))
    rows: list[dict[str, Any]] = []
    timings: dict[int, dict[str, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths: dict[str, Path] = {"fp32": args.fp32}
        for label, layout in layouts().items():
            path = write_qdq_layout(args.fp32, ranges, layout, Path(tmp) / f"{layout.name}.onnx").path
            paths[label] = path
            target = "tensorrt" if layout.name == "tensorrt" else "cpu"
            results: dict[str, EvalResult | None] = {}
            row: dict[str, Any] = {"layout": label, "errors": {}}
            for name, make in engines(target).items():
                try:
                    results[name] = run(make(path))
                except EdgeresError as exc:  # OpenVINO compiles not every variant
                    results[name] = None
                    row["errors"][name] = first_line(exc, limit=200)
            row["top1"] = {n: r.top1 if r else None for n, r in results.items()}
            row["agreement"] = {n: agreement(r, base) if r else None for n, r in results.items()}
            ort, exact = results["ort"], results["exact"]
            row["ort_vs_exact"] = agreement(ort, exact) if ort and exact else None
            rows.append(row)
        if args.time:
            timed = {k: v for k, v in paths.items() if k != "tensorrt"}
            for batch in (1, 16):
                wait_until_quiet(120.0)
                size = meta.preprocessing.input_size[0]  # square inputs: time_configs takes one side
                timings[batch] = time_configs(timed, batch, size, args.threads, 6.0 * len(timed), 15)
    machine = collect()
    print(
        f"CPU: {machine.cpu_model} ({', '.join(machine.cpu_features) or 'no listed features'}); "
        f"{len(indices)} images; FP32 top-1 {100 * (base.top1 or 0.0):.2f}%"
    )
    names = list(rows[0]["agreement"])
    head = f"{'layout':<16}{'top-1 ort':>10}" + "".join(f"{'agree ' + n:>15}" for n in names)
    head += f"{'ort=exact':>11}"
    if timings:
        head += "".join(f"{f'b{b} ms (x fp32)':>18}" for b in timings)
    print(head)
    for r in rows:
        line = f"{r['layout']:<16}{100 * r['top1']['ort']:>9.2f}%"
        line += "".join(_pct(r["agreement"][n], 15) for n in names)
        line += _pct(r["ort_vs_exact"], 11)
        for t in timings.values():
            if r["layout"] in t:
                ms = t[r["layout"]][1]
                line += f"{ms:>10.3f} ({ms / t['fp32'][1]:.2f})"
            else:
                line += f"{'-':>18}"
        print(line)
    for r in rows:
        for name, error in r["errors"].items():
            print(f"{r['layout']} on {name}: {error}")
    if timings:
        print("FP32 on ONNX Runtime: " + ", ".join(f"b{b} {t['fp32'][1]:.3f} ms" for b, t in timings.items()))
    if args.out:
        payload = {
            "machine": {
                "cpu": machine.cpu_model,
                "features": list(machine.cpu_features),
                "platform": platform.platform(),
            },
            "images": len(indices),
            "fp32_top1": base.top1,
            "results": rows,
            "median_ms": {str(b): {k: v[1] for k, v in t.items()} for b, t in timings.items()},
        }
        args.out.write_text(json.dumps(payload, indent=2))


def _pct(value: float | None, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{100 * value:>{width - 1}.2f}%"


if __name__ == "__main__":
    main()
