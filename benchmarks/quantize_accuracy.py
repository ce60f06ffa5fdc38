"""INT8 against FP32 accuracy with default settings, for trained checkpoints and every target.

For each checkpoint this runs `edgeres quantize` as a library call, exactly as the CLI does
with its defaults (percentile 99.999, 512 class-stratified calibration images, every
target, or ``--target``), evaluating on the images held out from calibration (the validation split that
`edgeres train` recorded in the checkpoint). It prints one table and writes JSON::

    python benchmarks/quantize_accuracy.py runs/r20/best.pt runs/r56/best.pt \\
        --data ../shared/data/cifar10/train --out quantize_accuracy.json

``--bias-correction both`` quantizes each checkpoint twice, without and with bias correction,
from the same calibration images (the same seed), so the two rows differ only by it.
``--weight-bits both`` adds the cpu layout with 7-bit weights (the tensorrt layout has 8 only).
``--rounding both`` adds learned rounding (``--rounding adaround``) to every row's settings; its
time is the ``seconds`` column (the whole quantize call, evaluation included).
``--seeds 0,1,2,3,4`` calibrates on five samples of the training images (quantize's ``--seed``;
the evaluation images stay the same) and prints each configuration's mean and range: a top-1
change of a few images is then told from a loss. ``--method auto`` runs quantize's auto.
Accuracy is measured on ONNX Runtime's CPU kernels on this machine; on an x86 CPU without VNNI
they saturate 8-bit cpu-layout sums (the table's caveat column says so), see
``benchmarks/cpu_layout_formats.py`` for the same models computed exactly.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from edgeres.quantize.adaround import RoundingSettings
from edgeres.quantize.settings import CalibrationSettings
from edgeres.quantize.workflow import QuantizeOptions, quantize
from edgeres.report.tables import signed
from edgeres.sysinfo import collect


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--data", required=True, help="Calibration and evaluation data (the training data).")
    parser.add_argument("--calib-size", type=int, default=512)
    parser.add_argument("--method", default="percentile", help="A calibration method, or auto (as quantize).")
    parser.add_argument(
        "--bias-correction", choices=("off", "on", "both"), default="on", help="Without, with, or both."
    )
    parser.add_argument("--weight-bits", choices=("8", "7", "both"), default="8")
    parser.add_argument("--rounding", choices=("nearest", "adaround", "both"), default="nearest")
    parser.add_argument("--iterations", type=int, default=None, help="Adam steps per layer for adaround.")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--seeds",
        default="0",
        help="Calibration samples to draw, e.g. 0,1,2,3: one row each, then their spread.",
    )
    parser.add_argument(
        "--target", choices=("cpu", "tensorrt", "openvino", "all"), help="[default: all for 8 bits]"
    )
    parser.add_argument("--out", type=Path, help="Write the results as JSON.")
    args = parser.parse_args()
    corrections = {"off": (False,), "on": (True,), "both": (False, True)}[args.bias_correction]
    widths = {"8": (8,), "7": (7,), "both": (8, 7)}[args.weight_bits]
    roundings = ("nearest", "adaround") if args.rounding == "both" else (args.rounding,)
    learned = RoundingSettings() if args.iterations is None else RoundingSettings(iterations=args.iterations)

    rows = []
    if args.target == "tensorrt":
        widths = (8,)  # the tensorrt layout has 8-bit weights only
    seeds = [int(seed) for seed in args.seeds.split(",")]
    runs = (
        (c, b, w, r, s)
        for c in args.checkpoints
        for s in seeds
        for r in roundings
        for b in corrections
        for w in widths
    )
    for ckpt, corrected, bits, rounding, seed in runs:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            options = QuantizeOptions(
                calib=args.data,
                target=("cpu" if bits == 7 else (args.target or "all")),
                settings=CalibrationSettings(method="percentile" if args.method == "auto" else args.method),
                auto_method=args.method == "auto",
                calib_size=args.calib_size,
                eval_data=args.data,
                progress=False,
                bias_correction=corrected,
                weight_bits=bits,
                rounding=rounding,
                rounding_settings=learned,
                threads=args.threads,
                seed=seed,
            )
            report = quantize(ckpt, Path(tmp) / "q.onnx", options)
            seconds = time.perf_counter() - start
        for t in report.targets:
            rows.append(
                {
                    "model": f"{report.meta.arch} ({ckpt})",
                    "target": t.target,
                    "seed": seed,
                    "bias_correction": corrected,
                    "rounding": rounding,
                    "rounding_seconds": (t.rounding or {}).get("seconds"),
                    "weight_bits": t.weight_bits,
                    "caveat": t.caveat,
                    "method": report.method,
                    "calib_images": report.calib_images,
                    "eval_images": report.eval_images,
                    "fp32_top1": report.fp32_top1,
                    "int8_top1": t.top1,
                    "drop_points": t.drop,
                    "agreement": t.agreement,
                    "seconds": seconds,
                    "note": report.selection_note,
                }
            )
    width = max([len("model"), *(len(r["model"]) for r in rows)]) + 2
    print(
        f"{'model':<{width}}{'target':<10}{'seed':>5}{'bits':>5}{'rounding':>10}{'bias corr.':>11}"
        f"{'images':>7}{'FP32':>9}{'INT8':>9}{'Δ top-1':>9}{'agree':>9}{'flips':>7}  caveat"
    )
    for r in rows:
        flips = round((1 - r["agreement"]) * r["eval_images"])
        print(
            f"{r['model']:<{width}}{r['target']:<10}{r['seed']:>5}{r['weight_bits']:>5}{r['rounding']:>10}"
            f"{'on' if r['bias_correction'] else 'off':>11}"
            f"{r['eval_images']:>7}{100 * r['fp32_top1']:>8.2f}%{100 * r['int8_top1']:>8.2f}%"
            f"{signed(-r['drop_points']):>9}{100 * r['agreement']:>8.2f}%{flips:>7}"
            f"  {'saturates here' if r['caveat'] else '-'}"
            + (f"  (rounding {r['rounding_seconds']:.0f} s)" if r["rounding_seconds"] else "")
        )
    if len(seeds) > 1:
        _print_spread(rows)
    if args.out:
        machine = collect()
        args.out.write_text(
            json.dumps(
                {"machine": {"cpu": machine.cpu_model, "platform": platform.platform()}, "results": rows},
                indent=2,
            )
        )


def _print_spread(rows: list[dict]) -> None:
    """Mean and range over the calibration samples of each configuration: noise against a real loss."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        key = (r["model"], r["target"], r["weight_bits"], r["rounding"], r["bias_correction"])
        groups.setdefault(key, []).append(r)
    print(f"\nover {len(next(iter(groups.values())))} calibration samples: mean (min to max)")
    for (model, target, bits, rounding, corrected), group in groups.items():
        drops = [-r["drop_points"] for r in group]
        agree = [100 * r["agreement"] for r in group]
        print(
            f"{model}  {target} {bits}-bit {rounding} bias corr. {'on' if corrected else 'off'}:"
            f"  Δ top-1 {signed(statistics.mean(drops))} ({signed(min(drops))} to {signed(max(drops))}),"
            f"  agreement {statistics.mean(agree):.2f}% ({min(agree):.2f} to {max(agree):.2f})"
        )


if __name__ == "__main__":
    main()
