"""Peak memory and time of bias correction alone, on a model exported with random weights.

The script exports ``--model`` (fixed random weights and BatchNorm statistics), quantizes it
once for ``--target`` without bias correction (``edgeres quantize`` on ``--data``), and then
runs :func:`edgeres.quantize.bias_correction.correct_biases` of that Q/DQ model ``--repeats``
times, each in a fresh subprocess, over ``--images`` calibration images, and reports the
process's peak RSS (VmHWM) and what bias correction added to it after the imports. It
prints one table and writes JSON::

    python benchmarks/bias_correction_memory.py --model resnet50 --data ../shared/data/cifar10/train \\
        --images 32 --out bias_correction_memory.json

To compare two versions, run it once on each checkout, on a quiet machine for the times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import SIZES, export_random, vm_kb


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One bias correction in this (fresh) process; the baseline is taken after its imports."""
    import onnx  # noqa: F401  (imported before the baseline: their code is no part of the figure)
    import onnxruntime  # noqa: F401
    import torch  # noqa: F401

    from edgeres.data import BatchReader, open_source
    from edgeres.metadata import Preprocessing
    from edgeres.quantize.bias_correction import correct_biases
    from edgeres.quantize.targets import faithful_to

    size = SIZES[args.model]
    source = open_source(args.data)
    reader = BatchReader(source, np.arange(args.images), Preprocessing(input_size=(size, size)), "input", 16)
    before = vm_kb("VmRSS") / 1024
    start = time.perf_counter()
    done = correct_biases(
        args.onnx, args.qdq, reader, Path(args.qdq).with_name("corrected.onnx"),
        disabled_optimizers=faithful_to(args.target), threads=args.threads,
    )  # fmt: skip
    return {
        "seconds": time.perf_counter() - start,
        "peak_rss_mb": vm_kb("VmHWM") / 1024,
        "rss_before_mb": before,
        "added_mb": vm_kb("VmHWM") / 1024 - before,
        "layers": len(done.layers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet50", choices=sorted(SIZES))
    parser.add_argument("--data", required=True, help="Images to calibrate and correct on.")
    parser.add_argument("--target", default="tensorrt", choices=("cpu", "tensorrt"))
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--onnx", help=argparse.SUPPRESS)
    parser.add_argument("--qdq", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    from edgeres.quantize.qdq import prepare_onnx
    from edgeres.quantize.workflow import QuantizeOptions, quantize

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        onnx = export_random(args.model, folder)
        opts = QuantizeOptions(
            calib=args.data, calib_size=args.images, target=args.target, progress=False, bias_correction=False
        )
        qdq = folder / "q.onnx"
        quantize(str(onnx), qdq, opts)
        # the float model quantize really quantized (BatchNorm folded), as quantize passes it
        onnx = prepare_onnx(onnx, folder / "prepared.onnx")
        for _ in range(args.repeats):
            cmd = [sys.executable, __file__, "--child", "--onnx", str(onnx), "--qdq", str(qdq)]
            cmd += ["--model", args.model, "--data", args.data, "--target", args.target]
            cmd += ["--images", str(args.images)] + (["--threads", str(args.threads)] if args.threads else [])
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    head = f"{'model':<10}{'target':<10}{'images':>7}{'layers':>8}"
    print(head + f"{'peak RSS MB':>13}{'added MB':>10}{'seconds':>9}")
    for r in runs:
        print(
            f"{args.model:<10}{args.target:<10}{args.images:>7}{r['layers']:>8}"
            f"{r['peak_rss_mb']:>13.0f}{r['added_mb']:>10.0f}{r['seconds']:>9.1f}"
        )
    median = statistics.median(r["peak_rss_mb"] for r in runs)
    print(f"median peak RSS {median:.0f} MB")
    if args.out:
        payload = {"model": args.model, "target": args.target, "images": args.images, "runs": runs}
        args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
