"""Check an exported ONNX model against the PyTorch model it came from.

Both run the same inputs: ``n_random`` standard-normal images (the range of
normalized pixels) and, when given, real preprocessed images. For each set the
rules are:

* the largest absolute logit difference must be within ``atol × max(1, s)``,
  where ``s`` is the largest absolute PyTorch logit of the set. Logits of
  trained ImageNet models reach 20-40, and fp32 rounding after BatchNorm folding
  grows with them, so the tolerance is relative for large logits and absolute
  (``atol``) for logits of order 1;
* top-1 agreement is reported, not separately required: with every logit within
  the tolerance ``t``, the two backends can only pick different classes where
  PyTorch's top two logits are within ``2t`` of each other, a tie for practical
  purposes, which random inputs produce now and then.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from edgeres.errors import UsageError
from edgeres.metadata import ModelMeta
from edgeres.runners.base import Runner
from edgeres.runners.onnxruntime_runner import OnnxRuntimeRunner
from edgeres.runners.torch_runner import TorchRunner

__all__ = ["InputCheck", "Verification", "compare_logits", "verify_export"]


@dataclass(frozen=True)
class InputCheck:
    """Agreement on one set of inputs."""

    name: str
    count: int
    max_abs_diff: float
    logit_scale: float
    tolerance: float
    top1_agreement: float

    @property
    def ok(self) -> bool:
        return bool(self.max_abs_diff <= self.tolerance)

    def summary(self) -> str:
        return (
            f"{self.name} ({self.count}): max |diff| {self.max_abs_diff:.2e} "
            f"(tolerance {self.tolerance:.1e}), top-1 agreement {self.top1_agreement:.1%}"
        )


@dataclass(frozen=True)
class Verification:
    """PyTorch vs ONNX Runtime on random and (optionally) real inputs."""

    random: InputCheck
    real: InputCheck | None
    atol: float

    @property
    def checks(self) -> tuple[InputCheck, ...]:
        return (self.random,) if self.real is None else (self.random, self.real)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def max_abs_diff(self) -> float:
        return max(c.max_abs_diff for c in self.checks)

    def summary(self) -> str:
        verdict = "match" if self.ok else "MISMATCH"
        return f"PyTorch vs ONNX Runtime {verdict}: " + "; ".join(c.summary() for c in self.checks)


def compare_logits(name: str, expected: np.ndarray, actual: np.ndarray, atol: float) -> InputCheck:
    """Apply the module's rules to two (N, classes) logit arrays."""
    if expected.shape != actual.shape:
        raise UsageError(f"logit shapes differ: PyTorch {expected.shape}, ONNX {actual.shape}")
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    diff = float(np.max(np.abs(expected.astype(np.float64) - actual))) if expected.size else 0.0
    agree = float(np.mean(expected.argmax(axis=1) == actual.argmax(axis=1))) if len(expected) else 1.0
    if not np.all(np.isfinite(actual)):
        diff = float("inf")
    return InputCheck(name, len(expected), diff, scale, atol * max(1.0, scale), agree)


def run_all(runner: Runner, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Logits for ``inputs`` in chunks; a model with a fixed batch size gets chunks of that size."""
    fixed = runner.input_shape[0] if runner.input_shape else None
    step = fixed or batch_size
    outs = []
    for start in range(0, len(inputs), step):
        chunk = inputs[start : start + step]
        if fixed is not None and len(chunk) < fixed:
            pad = np.zeros((fixed - len(chunk), *chunk.shape[1:]), dtype=chunk.dtype)
            outs.append(runner.infer(np.concatenate([chunk, pad]))[: len(chunk)])
        else:
            outs.append(runner.infer(chunk))
    return np.concatenate(outs)


def verify_export(
    model: nn.Module,
    onnx_path: str | os.PathLike[str],
    meta: ModelMeta,
    real_inputs: np.ndarray | None = None,
    *,
    atol: float = 1e-3,
    n_random: int = 8,
    seed: int = 0,
    threads: int | None = None,
) -> Verification:
    """Run ``model`` (unfolded, fp32) and ``onnx_path`` on the same inputs and compare."""
    if atol <= 0:
        raise UsageError(f"atol must be positive, got {atol}")
    if n_random < 1:
        raise UsageError(f"n_random must be at least 1, got {n_random}")
    h, w = meta.preprocessing.input_size
    rng = np.random.default_rng(seed)
    random_inputs = rng.standard_normal((n_random, 3, h, w), dtype=np.float32)
    if real_inputs is not None:
        real_inputs = np.asarray(real_inputs, dtype=np.float32)
        if real_inputs.ndim != 4 or real_inputs.shape[1:] != (3, h, w) or len(real_inputs) == 0:
            raise UsageError(
                f"real inputs have shape {real_inputs.shape}; "
                f"they must be preprocessed images (N, 3, {h}, {w})"
            )
    device = next((str(p.device) for p in model.parameters()), "cpu")
    torch_runner = TorchRunner(model, device=device, threads=threads)
    ort_runner = OnnxRuntimeRunner(Path(onnx_path), threads=threads)
    with torch_runner, ort_runner:
        random = compare_logits(
            "random", run_all(torch_runner, random_inputs), run_all(ort_runner, random_inputs), atol
        )
        real = None
        if real_inputs is not None:
            real = compare_logits(
                "real", run_all(torch_runner, real_inputs), run_all(ort_runner, real_inputs), atol
            )
    return Verification(random=random, real=real, atol=atol)
