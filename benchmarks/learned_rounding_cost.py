"""What learned rounding costs: ``edgeres quantize`` with ``--rounding nearest`` and ``adaround``.

Each quantize runs in a process of its own (no evaluation; bias correction as by default), so
its peak resident memory is its own (``getrusage``), and the table gives the wall time of each,
learned rounding's own seconds and layers, and both peaks. The model is a checkpoint or ONNX,
or with ``--arch`` a randomly initialized edgeres model (BatchNorm statistics randomized, so
activations vary) at ``--size``, exported to ONNX first (``--checkpoint``: quantize exports it,
and the export's memory counts); images smaller than the input are upscaled, so CIFAR-10
serves a ResNet-50 at 224::

    python benchmarks/learned_rounding_cost.py runs/r20/best.pt --data ../shared/data/cifar10/train
    python benchmarks/learned_rounding_cost.py --arch resnet50 --size 224 \\
        --data ../shared/data/cifar10/train --target tensorrt --out rounding_cost.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any


def _random_checkpoint(arch: str, size: int, folder: Path) -> Path:
    import torch

    from edgeres.checkpoint import save_checkpoint
    from edgeres.data import open_source
    from edgeres.export.fold import randomize_batchnorm
    from edgeres.metadata import ModelMeta, Preprocessing
    from edgeres.models import get_model

    torch.manual_seed(0)
    net = get_model(arch, num_classes=10)
    randomize_batchnorm(net, seed=0)
    classes = tuple(open_source(ARGS.data).class_names or ())
    meta = ModelMeta(arch=arch, num_classes=10, class_names=classes or None,
                     preprocessing=Preprocessing(input_size=(size, size), resize=size))  # fmt: skip
    if ARGS.checkpoint:
        return save_checkpoint(net, meta, folder / f"{arch}-{size}.pt")
    from edgeres.export.onnx_export import export_onnx

    # exported here, so each quantize process measures quantization, not the export
    return export_onnx(net.eval(), meta, folder / f"{arch}-{size}.onnx").path


def _quantize(model: str, data: str, target: str, rounding: str, iterations: int, threads: int | None,
              out: str, queue: Any, calib_size: int = 512) -> None:  # fmt: skip
    from edgeres.quantize.adaround import RoundingSettings
    from edgeres.quantize.workflow import QuantizeOptions, quantize

    start = time.perf_counter()
    report = quantize(
        model,
        Path(out) / f"m.{rounding}.onnx",
        QuantizeOptions(
            calib=data,
            calib_size=calib_size,
            target=target,
            progress=False,
            threads=threads,
            rounding=rounding,  # type: ignore[arg-type]
            rounding_settings=RoundingSettings(iterations=iterations),
        ),
    )
    seconds = time.perf_counter() - start
    t = report.targets[0]
    queue.put(
        {
            "rounding": rounding,
            "seconds": seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rounding_seconds": (t.rounding or {}).get("seconds"),
            "layers": (t.rounding or {}).get("layers"),
            "flipped": (t.rounding or {}).get("flipped"),
            "error_reduction": (t.rounding or {}).get("error_reduction"),
            "calib_images": report.calib_images,
        }
    )


ARGS: Any = None


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", nargs="?", help="A checkpoint or FP32 ONNX (or give --arch).")
    parser.add_argument("--arch", help="A randomly initialized edgeres model instead, e.g. resnet50.")
    parser.add_argument("--size", type=int, default=224, help="Input size for --arch.")
    parser.add_argument("--data", required=True)
    parser.add_argument("--target", default="tensorrt", choices=("cpu", "tensorrt"))
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--calib-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only", choices=("nearest", "adaround"), help="Run one of the two.")
    parser.add_argument(
        "--checkpoint", action="store_true", help="With --arch: give quantize a checkpoint (export included)."
    )
    parser.add_argument("--out", type=Path)
    ARGS = args = parser.parse_args()
    if (args.model is None) == (args.arch is None):
        parser.error("give MODEL or --arch")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = str(_random_checkpoint(args.arch, args.size, Path(tmp))) if args.arch else args.model
        ctx = mp.get_context("spawn")
        for rounding in [args.only] if args.only else ["nearest", "adaround"]:
            queue = ctx.Queue()
            proc = ctx.Process(
                target=_quantize,
                args=(
                    model,
                    args.data,
                    args.target,
                    rounding,
                    args.iterations,
                    args.threads,
                    tmp,
                    queue,
                    args.calib_size,
                ),
            )
            proc.start()
            row = queue.get()
            proc.join()
            rows.append(row)
            print(json.dumps(row), flush=True)
    name = f"{args.arch} {args.size}x{args.size} (random weights)" if args.arch else args.model
    images = rows[0]["calib_images"]
    print(f"\n{name}, {args.target} layout, {images} calibration images, {args.iterations} steps per layer")
    print(
        f"{'rounding':<10}{'quantize s':>12}{'rounding s':>12}{'layers':>8}{'flipped':>9}{'err. cut':>10}"
        f"{'peak RSS MB':>13}"
    )
    for r in rows:
        rs = "-" if r["rounding_seconds"] is None else f"{r['rounding_seconds']:.0f}"
        fl = "-" if r["flipped"] is None else f"{100 * r['flipped']:.1f}%"
        cut = "-" if r["error_reduction"] is None else f"{100 * r['error_reduction']:.0f}%"
        print(f"{r['rounding']:<10}{r['seconds']:>12.0f}{rs:>12}{r['layers'] or '-':>8}{fl:>9}{cut:>10}"
              f"{r['peak_rss_mb']:>13.0f}")  # fmt: skip
    if args.out:
        from edgeres.sysinfo import collect

        machine = collect()
        args.out.write_text(
            json.dumps(
                {
                    "machine": {"cpu": machine.cpu_model, "platform": platform.platform()},
                    "model": name,
                    "target": args.target,
                    "iterations": args.iterations,
                    "results": rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
