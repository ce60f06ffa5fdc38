"""Peak memory and time of streaming calibration against one plain FP32 inference pass.

The script exports ``--model`` (random weights, BatchNorm statistics randomized so activations
look trained-ish) to a temporary ONNX, writes generated JPEGs (smooth random images) to a
temporary folder, and for each N in ``--sizes`` runs, each in a fresh subprocess so that peak
RSS (VmHWM) belongs to that run alone:

``calibrate``  :func:`collect_statistics` + :func:`compute_ranges` over the first N images;
``fp32``       one plain ONNX Runtime pass over the same images, same reader, same batch size
               (run with ORT's default thread spinning and without; the faster one counts);
``load``       the reader alone (JPEG decoding and preprocessing, which both passes include).

Targets: peak RSS under 1.5 GB for 512 images; calibration under 2x the FP32 pass. Run it
alone on the machine::

    python benchmarks/calibration_memory.py --sizes 64,512 --out calibration_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import SIZES, export_random, vm_kb

FP32_RUNS = ("fp32", "fp32-nospin")


def write_images(folder: Path, count: int, side: int) -> None:
    """Smooth random RGB images (upscaled 8x8 noise plus grain), as JPEGs of ``side`` pixels."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        big = np.asarray(small.resize((side, side), Image.Resampling.BICUBIC), dtype=np.int16)
        grain = rng.integers(-12, 13, big.shape, dtype=np.int16)
        Image.fromarray(np.clip(big + grain, 0, 255).astype(np.uint8)).save(
            folder / f"{i:05d}.jpg", quality=90
        )


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this (fresh) process; returns what the parent tabulates."""
    import onnxruntime as ort

    from edgeres.data import BatchReader, folder_source
    from edgeres.metadata import Preprocessing
    from edgeres.quantize.collect import collect_statistics, compute_ranges
    from edgeres.quantize.settings import CalibrationSettings

    size = SIZES[args.model]
    pre = Preprocessing(input_size=(size, size))
    reader = BatchReader(folder_source(args.images), np.arange(args.n), pre, "input", batch_size=32)
    baseline_mb = vm_kb("VmRSS") / 1024
    out: dict[str, Any] = {"what": args.child, "images": args.n}
    start = time.perf_counter()
    if args.child == "calibrate":
        settings = CalibrationSettings(args.method, batch_size=args.batch_size)
        if args.sample_per_image is not None:
            settings = settings.replace(sample_per_image=args.sample_per_image or None)
        stats = collect_statistics(args.onnx, reader, settings, progress=False)
        ranges = compute_ranges(stats, settings)
        out.update(
            batch_size=stats.batch_size,
            tensors=len(ranges),
            fetched=len(stats.histograms) - len(stats.derived),
        )
    elif args.child in ("fp32", "fp32-nospin"):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if args.child == "fp32-nospin":  # as calibration runs it; faster when another process is busy
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(args.onnx, options, providers=["CPUExecutionProvider"])
        start = time.perf_counter()  # session creation is not inference
        step = args.batch_size
        for feed in reader:
            x = feed["input"]
            for i in range(0, len(x), step):
                session.run(None, {"input": x[i : i + step]})
        out["batch_size"] = step
    else:
        for _ in reader:
            pass
    out["seconds"] = time.perf_counter() - start
    out["peak_rss_mb"] = vm_kb("VmHWM") / 1024
    out["baseline_rss_mb"] = baseline_mb
    return out


def run_child(
    args: argparse.Namespace, what: str, n: int, onnx_path: Path, images: Path, batch: int | None
) -> Any:
    cmd = [sys.executable, __file__, "--child", what, "--n", str(n), "--onnx", str(onnx_path)]
    cmd += ["--images", str(images), "--model", args.model, "--method", args.method]
    if args.sample_per_image is not None:
        cmd += ["--sample-per-image", str(args.sample_per_image)]
    if batch is not None:
        cmd += ["--batch-size", str(batch)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet50", choices=sorted(SIZES))
    parser.add_argument("--sizes", default="64,512,2048", help="numbers of images, comma-separated")
    parser.add_argument("--method", default="percentile")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: calibration's automatic choice"
    )
    parser.add_argument(
        "--sample-per-image",
        type=int,
        default=None,
        help="values per tensor and image that go into the histograms (0: all; default: the settings')",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument(
        "--child", choices=("calibrate", "fp32", "fp32-nospin", "load"), help=argparse.SUPPRESS
    )
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--onnx", help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgeres-calib-bench-") as tmp:
        folder = Path(tmp)
        onnx_path = export_random(args.model, folder)
        side = SIZES[args.model]
        write_images(folder / "images", max(sizes), 256 if side == 224 else side)
        print(f"{args.model}: {onnx_path.stat().st_size / 1e6:.0f} MB ONNX, {max(sizes)} JPEGs", flush=True)
        for n in sizes:
            images = folder / "images"
            batch = run_child(args, "calibrate", 1, onnx_path, images, args.batch_size)["batch_size"]
            # FP32 before and after calibration, with ORT's default (idle threads spin) and with
            # calibration's setting (no spinning): the faster counts, so the ratio errs high.
            before = run_child(args, FP32_RUNS[0], n, onnx_path, images, batch)
            calib = run_child(args, "calibrate", n, onnx_path, images, batch)
            after = run_child(args, FP32_RUNS[1], n, onnx_path, images, batch)
            fp32 = min(before, after, key=lambda r: r["seconds"])
            load = run_child(args, "load", n, onnx_path, images, None)
            net = (calib["seconds"] - load["seconds"]) / max(fp32["seconds"] - load["seconds"], 1e-9)
            rows.append(
                {
                    "images": n,
                    "batch_size": calib["batch_size"],
                    "tensors": calib["tensors"],
                    "fetched_tensors": calib["fetched"],
                    "calibrate_s": round(calib["seconds"], 2),
                    "fp32_pass_s": round(fp32["seconds"], 2),
                    "load_s": round(load["seconds"], 2),
                    "time_ratio": round(calib["seconds"] / fp32["seconds"], 2),
                    "time_ratio_without_loading": round(net, 2),
                    "calibrate_peak_rss_mb": round(calib["peak_rss_mb"]),
                    "fp32_peak_rss_mb": round(fp32["peak_rss_mb"]),
                    "rss_before_run_mb": round(calib["baseline_rss_mb"]),
                    "fp32_variant": fp32["what"],
                    "load_average": round(os.getloadavg()[0], 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    header = (
        "images",
        "batch",
        "calibrate s",
        "fp32 pass s",
        "load s",
        "ratio",
        "ratio-load",
        "peak RSS MB",
        "fp32 RSS MB",
    )
    keys = ["images", "batch_size", "calibrate_s", "fp32_pass_s", "load_s", "time_ratio"]
    keys += ["time_ratio_without_loading", "calibrate_peak_rss_mb", "fp32_peak_rss_mb"]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    if args.out:
        import onnxruntime
        import torch

        env = {
            "model": args.model,
            "method": args.method,
            "sample_per_image": args.sample_per_image,  # None: the settings' default
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
            "torch": torch.__version__,
        }
        args.out.write_text(json.dumps({"environment": env, "results": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
