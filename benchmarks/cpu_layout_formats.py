"""Agreement with FP32 of the cpu layout's number formats on this CPU: u8s8 (edgeres's), u8u8, s8s8.

ONNX Runtime's u8s8 kernels on x86 CPUs without VNNI (AVX2, AVX-512 without VNNI) can saturate
their int16 pair sums (its documentation suggests reduce_range or u8u8 there). This writes the
FP32 ONNX's calibrated ranges (a calibration cache from ``edgeres quantize``) in the cpu layout
and in two variants of it, plus the tensorrt layout, runs each on ONNX Runtime's CPU provider
on the same images, and prints the top-1 agreement with FP32. It prints one table and writes
JSON::

    edgeres quantize r20.fp32.onnx --calib ../shared/data/cifar10/train --calib-cache r20.calib.json
    python benchmarks/cpu_layout_formats.py r20.fp32.onnx r20.calib.json \\
        --data ../shared/data/cifar10/train --size 2000 --out cpu_layout_formats.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
from pathlib import Path
from typing import Any

from edgeres.data import align_labels, open_source, stratified_sample
from edgeres.evaluate import EvalResult, agreement, evaluate
from edgeres.export.onnx_meta import read_onnx_meta
from edgeres.quantize.cache import load_cache
from edgeres.quantize.layouts import LAYOUTS, QdqLayout
from edgeres.quantize.qdq import write_qdq_layout
from edgeres.quantize.workflow import faithful_to
from edgeres.runners import OnnxRuntimeRunner
from edgeres.sysinfo import collect


def layouts() -> dict[str, QdqLayout]:
    cpu = LAYOUTS["cpu"]
    return {
        "cpu (u8s8)": cpu,
        "cpu u8u8": dataclasses.replace(
            cpu,
            name="cpu-u8u8",
            weight_type="QUInt8",
            extra_options={**cpu.extra_options, "WeightSymmetric": False},
        ),
        "cpu s8s8": dataclasses.replace(cpu, name="cpu-s8s8", activation_type="QInt8"),
        "tensorrt": LAYOUTS["tensorrt"],
    }


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
    parser.add_argument("--out", type=Path, help="Write the results as JSON.")
    args = parser.parse_args()

    meta = read_onnx_meta(args.fp32)
    ranges, _ = load_cache(args.cache)
    source = open_source(args.data)
    classes = align_labels(source, meta.class_names, meta.num_classes)
    indices = stratified_sample(source.labels, args.size, seed=0)

    def run(path: Path, target: str) -> EvalResult:
        runner = OnnxRuntimeRunner(path, disabled_optimizers=faithful_to(target))
        return evaluate(runner, source, indices, meta.preprocessing, progress=False, classes=classes)

    base = run(args.fp32, "fp32")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, layout in layouts().items():
            path = write_qdq_layout(args.fp32, ranges, layout, Path(tmp) / f"{layout.name}.onnx").path
            result = run(path, "tensorrt" if layout.name == "tensorrt" else "cpu")
            rows.append({"layout": label, "agreement": agreement(result, base), "top1": result.top1})
    machine = collect()
    print(f"CPU: {machine.cpu_model}; {len(indices)} images; FP32 top-1 {100 * (base.top1 or 0.0):.2f}%")
    print(f"{'layout':<14}{'top-1':>9}{'agree':>9}")
    for r in rows:
        print(f"{r['layout']:<14}{100 * r['top1']:>8.2f}%{100 * r['agreement']:>8.2f}%")
    if args.out:
        payload = {"machine": {"cpu": machine.cpu_model, "platform": platform.platform()}, "results": rows}
        args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
