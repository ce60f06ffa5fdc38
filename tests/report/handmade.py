"""Hand-made result files with known numbers, shaped like the commands' --json output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ENVIRONMENT = {
    "python": "3.11.7",
    "platform": "Linux x86_64",
    "cpu_model": "Test CPU",
    "cpu_count": 4,
    "cpu_features": ["avx2"],
    "libraries": {"onnxruntime": "1.20.0", "tensorrt": None},
    "cuda_devices": [{"index": 0, "name": "Test GPU", "compute_capability": "8.7", "memory_gib": 8.0}],
    "cuda_driver": "12.6",
    "onnxruntime_providers": ["CPUExecutionProvider"],
    "jetson": {},
    "threads": 2,
}


def row(
    model: str,
    batch: int,
    mean: float,
    *,
    precision: str = "fp32",
    device: str = "cpu",
    backend: str = "onnxruntime",
    cv: float = 0.01,
    error: str | None = None,
) -> dict[str, Any]:
    if error is not None:
        return {
            "model": model,
            "backend": backend,
            "device": device,
            "precision": precision,
            "batch": batch,
            "iterations": 0,
            "error": error,
        }
    return {
        "model": model,
        "backend": backend,
        "device": device,
        "precision": precision,
        "batch": batch,
        "iterations": 50,
        "threads": 2,
        "mean_ms": mean,
        "median_ms": mean,
        "p90_ms": mean,
        "p95_ms": mean,
        "p99_ms": mean * 1.1,
        "min_ms": mean * 0.9,
        "max_ms": mean * 1.2,
        "std_ms": mean * cv,
        "throughput": batch / (mean / 1000),
        "cv": cv,
        "noisy": cv > 0.1,
        "compute_mean_ms": None,
        "compute_median_ms": None,
        "compute_p99_ms": None,
        "compute_min_ms": None,
        "compute_max_ms": None,
        "error": None,
    }


def bench(path: Path, rows: list[dict[str, Any]]) -> Path:
    data = {"environment": ENVIRONMENT, "settings": {"batches": [1]}, "noisy_cv": 0.1, "results": rows}
    path.write_text(json.dumps(data))
    return path


def result(per_class: dict[str, tuple[int, int]]) -> dict[str, Any]:
    correct = sum(c for c, _ in per_class.values())
    total = sum(t for _, t in per_class.values())
    return {
        "num_images": total,
        "num_labelled": total,
        "top1": correct / total,
        "top5": 1.0,
        "skipped": 0,
        "per_class": {n: {"correct": c, "total": t, "accuracy": c / t} for n, (c, t) in per_class.items()},
    }


def evaluation(
    path: Path,
    model: str,
    per_class: dict[str, tuple[int, int]],
    *,
    reference: tuple[str, dict[str, tuple[int, int]], float] | None = None,
    **keys: Any,
) -> Path:
    data: dict[str, Any] = {"model": model, **keys, "result": result(per_class)}
    if reference is not None:
        ref_model, ref_classes, agreement = reference
        data["reference"] = {"model": ref_model, "result": result(ref_classes), "agreement": agreement}
    path.write_text(json.dumps(data))
    return path


def quantize(path: Path, fp32: str, targets: list[dict[str, Any]], *, fp32_top1: float = 0.9) -> Path:
    data = {
        "fp32_onnx": fp32,
        "meta": {"arch": "resnet8"},
        "method": "percentile",
        "cache": "c.json",
        "calib_images": 64,
        "reused_cache": False,
        "fp32_top1": fp32_top1,
        "fp32_top5": 1.0,
        "eval_images": 100,
        "selection_note": "",
        "method_scores": {},
        "targets": [
            {"num_quantized_nodes": 10, "excluded_nodes": [], "top5": 1.0, "per_class": {}, **t}
            for t in targets
        ],
    }
    path.write_text(json.dumps(data))
    return path


def rewrite_meta(path: Path, **meta: Any) -> None:
    """A quantize file's model metadata changed (e.g. another architecture)."""
    data = json.loads(path.read_text())
    data["meta"].update(meta)
    path.write_text(json.dumps(data))
