"""edgeres's INT8 models on OpenVINO against NNCF's own quantization of the same model, same images.

For one edgeres checkpoint trained on DATA it quantizes the FP32 ONNX with edgeres (the cpu
layout with 8-bit and 7-bit weights, the tensorrt layout) and with NNCF for OpenVINO
(``nncf.quantize`` of the model OpenVINO reads from the same ONNX: its defaults, and with
``overflow_fix=ENABLE``, NNCF's 7-bit weights for CPUs without VNNI), all from the same 512
calibration images that ``edgeres quantize`` picks, then runs every model on OpenVINO's CPU
plugin on the images ``edgeres train`` held out. It prints, per model: top-1, agreement with
FP32 (OpenVINO f32), agreement with the same file on ONNX Runtime (the edgeres models), and
with ``--time`` the median latency at batch 1 and 16 (all models interleaved in rounds),
as one table, and writes JSON::

    python benchmarks/openvino_nncf.py runs/r20/best.pt --data ../shared/data/cifar10/train \\
        --time --out openvino_nncf.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import held_out

from edgeres.data import BatchReader
from edgeres.evaluate import agreement
from edgeres.quantize.workflow import QuantizeOptions, quantize
from edgeres.runners import OnnxRuntimeRunner, Runner
from edgeres.sysinfo import collect


def nncf_models(fp32: Path, reader: BatchReader, folder: Path) -> dict[str, Path]:
    """NNCF's INT8 IRs of ``fp32``: its defaults, and with its overflow fix on every layer."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    items: list[np.ndarray] = []
    reader.rewind()
    while (batch := reader.get_next()) is not None:
        items += [image[None] for image in next(iter(batch.values()))]
    dataset = nncf.Dataset(items)
    out = {}
    for name, fix in (("nncf", None), ("nncf overflow-fix", OverflowFix.ENABLE)):
        model = ov.Core().read_model(str(fp32))
        start = time.perf_counter()
        quantized = nncf.quantize(
            model,
            dataset,
            subset_size=len(items),
            advanced_parameters=AdvancedQuantizationParameters(overflow_fix=fix) if fix else None,
        )
        print(f"{name}: quantized in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
        path = folder / f"{name.replace(' ', '-')}.xml"
        ov.save_model(quantized, str(path))
        out[name] = path
    return out


def time_all(runners: dict[str, Runner], x: np.ndarray, budget_s: float, rounds: int) -> dict[str, float]:
    """Median ms per batch of each runner, interleaved in ``rounds`` rounds of ``budget_s`` each."""
    iters = {}
    for name, runner in runners.items():
        runner.infer(x)
        t0 = time.perf_counter()
        runner.infer(x)
        iters[name] = max(1, round(budget_s / rounds / (time.perf_counter() - t0)))
    samples: dict[str, list[float]] = {n: [] for n in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            t0 = time.perf_counter()
            for _ in range(iters[name]):
                runner.infer(x)
            samples[name].append((time.perf_counter() - t0) / iters[name] * 1e3)
    return {n: statistics.median(s) for n, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", type=Path, help="An edgeres checkpoint trained on --data.")
    parser.add_argument("--data", required=True)
    parser.add_argument("--calib-size", type=int, default=512)
    parser.add_argument("--eval-size", type=int, help="A stratified sample of the held-out images.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--time", action="store_true", help="Also time every model at batch 1 and 16.")
    parser.add_argument("--budget", type=float, default=4.0, help="Seconds of timing per model and batch.")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from edgeres.runners.openvino_runner import OpenVinoRunner

    images = held_out(args.checkpoint, args.data, args.calib_size, args.eval_size)
    meta, split, chosen, run = images.meta, images.split, images.chosen, images.run

    def ov(path: Path, hint: str | None = None) -> OpenVinoRunner:
        return OpenVinoRunner(path, threads=args.threads, precision_hint=hint)

    rows: list[dict[str, Any]] = []
    medians: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models: dict[str, Path] = {}
        for bits in (8, 7):
            opts = QuantizeOptions(
                calib=args.data, target="all" if bits == 8 else "cpu", calib_size=args.calib_size,
                weight_bits=bits, progress=False, training_split=split,
            )  # fmt: skip
            report = quantize(args.checkpoint, folder / f"w{bits}.onnx", opts)
            models["fp32"] = report.fp32_onnx
            for t in report.targets:
                models[f"edgeres {t.target}" + (f" {bits}-bit" if t.target == "cpu" else "")] = t.path
        reader = BatchReader(
            chosen.calib_source, chosen.calib_indices, meta.preprocessing, "input", 32, progress=False
        )
        models |= nncf_models(models["fp32"], reader, folder)
        base = run(ov(models["fp32"], "f32"))
        ort_base = run(OnnxRuntimeRunner(models["fp32"], threads=args.threads))
        for name, path in models.items():
            result = base if name == "fp32" else run(ov(path, "f32" if name == "fp32" else None))
            row: dict[str, Any] = {"model": name, "top1": result.top1, "agreement": agreement(result, base)}
            if path.suffix == ".onnx":
                on_ort = run(OnnxRuntimeRunner(path, threads=args.threads))
                row["agreement_with_ort"] = agreement(result, on_ort)
                row["ort_agreement"] = agreement(on_ort, ort_base)
            rows.append(row)
            print(f"{name}: evaluated", file=sys.stderr, flush=True)
        if args.time:
            size = meta.preprocessing.input_size
            runners = {n: ov(p, "f32" if n == "fp32" else None).activate() for n, p in models.items()}
            for batch in (1, 16):
                x = np.random.default_rng(1).standard_normal((batch, 3, *size), dtype=np.float32)
                medians[batch] = time_all(runners, x, args.budget, 15)
            for runner in runners.values():
                runner.deactivate()
    machine = collect()
    features = ", ".join(machine.cpu_features)
    print(f"CPU: {machine.cpu_model} ({features}); {len(chosen.eval_indices)} held-out images")
    head = f"{'model (on OpenVINO)':<24}{'top-1':>9}{'agree fp32':>12}{'= on ORT':>10}{'ORT agree':>11}"
    head += "".join(f"{f'b{b} ms (x f32)':>17}" for b in medians)
    print(head)
    for r in rows:
        line = f"{r['model']:<24}{100 * r['top1']:>8.2f}%{100 * r['agreement']:>11.2f}%"
        for key, width in (("agreement_with_ort", 10), ("ort_agreement", 11)):
            line += f"{100 * r[key]:>{width - 1}.2f}%" if key in r else f"{'-':>{width}}"
        for t in medians.values():
            line += f"{t[r['model']]:>9.3f} ({t[r['model']] / t['fp32']:.2f})"
        print(line)
    if args.out:
        payload = {
            "machine": {
                "cpu": machine.cpu_model,
                "features": list(machine.cpu_features),
                "platform": platform.platform(),
            },
            "images": len(chosen.eval_indices),
            "results": rows,
            "median_ms": {str(b): t for b, t in medians.items()},
        }
        args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
