"""What bias correction costs: ``edgeres quantize`` with and without it, against calibration alone.

For one checkpoint or FP32 ONNX it runs, ``--repeats`` times in alternating order, (a) the
calibration pass alone (``collect_statistics`` over the calibration images), (b) quantize
without bias correction and (c) quantize with it (no evaluation), and prints the median
seconds of each and the ratio (c - b) / a: bias correction's extra time in calibration passes.
It prints one table and writes JSON::

    python benchmarks/bias_correction_cost.py runs/r20/best.pt --data ../shared/data/cifar10/train
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from edgeres.data import BatchReader
from edgeres.data.holdout import TrainingSplit
from edgeres.loading import load_model
from edgeres.quantize.collect import collect_statistics
from edgeres.quantize.selection import select_images
from edgeres.quantize.settings import CalibrationSettings
from edgeres.quantize.workflow import QuantizeOptions, quantize


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", required=True)
    parser.add_argument("--target", default="cpu", choices=("cpu", "tensorrt"))
    parser.add_argument("--calib-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    loaded = load_model(args.model)
    split = TrainingSplit.from_checkpoint(loaded.extra)
    seconds: dict[str, list[float]] = {"calibration": [], "quantize": [], "quantize + bias correction": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        fp32: list[Path] = []

        def run(corrected: bool) -> float:
            opts = QuantizeOptions(
                calib=args.data, target=args.target, calib_size=args.calib_size, progress=False,
                bias_correction=corrected, training_split=split,
            )  # fmt: skip
            start = time.perf_counter()
            report = quantize(args.model, folder / f"q{int(corrected)}.onnx", opts)
            elapsed = time.perf_counter() - start
            for path in folder.glob("q*.calib.json"):
                path.unlink()  # calibrate afresh every time
            fp32[:] = [report.fp32_onnx]
            return elapsed

        def calibrate() -> float:
            chosen = select_images(args.data, None, calib_size=args.calib_size, split=split)
            reader = BatchReader(
                chosen.calib_source, chosen.calib_indices, loaded.meta.preprocessing, "input", 32
            )
            start = time.perf_counter()
            collect_statistics(fp32[0], reader, CalibrationSettings(), progress=False)
            return time.perf_counter() - start

        run(False)  # warm up: export, the decoded-image cache
        for i in range(args.repeats):
            order = [False, True] if i % 2 == 0 else [True, False]
            for corrected in order:
                name = "quantize + bias correction" if corrected else "quantize"
                seconds[name].append(run(corrected))
            seconds["calibration"].append(calibrate())
    med = {k: statistics.median(v) for k, v in seconds.items()}
    extra = med["quantize + bias correction"] - med["quantize"]
    print(f"{'step':<30}{'median s':>10}   runs")
    for name, values in seconds.items():
        print(f"{name:<30}{med[name]:>10.2f}   " + ", ".join(f"{v:.2f}" for v in values))
    print(f"bias correction adds {extra:.2f} s = {extra / med['calibration']:.2f} calibration passes")
    if args.out:
        payload = {"seconds": seconds, "median": med, "extra_passes": extra / med["calibration"]}
        args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
