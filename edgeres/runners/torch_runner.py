"""Run a PyTorch module: eval mode, ``torch.inference_mode``, fp32 on CPU/GPU or fp16 on GPU."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from edgeres.errors import EdgeresError, UsageError
from edgeres.runners.base import Runner, Shape

if TYPE_CHECKING:
    from edgeres.runners.registry import RunnerArgs

__all__ = ["TorchRunner", "create"]

PRECISIONS: tuple[str, ...] = ("fp32", "fp16")


class TorchRunner(Runner):
    """Runs ``module`` on ``device``; the caller's module is never moved, cast or left in eval mode.

    When the module already sits on ``device`` in fp32 it is used as it is (eval mode
    while active, its train/eval mode restored afterwards); otherwise a copy is moved
    or cast. ``threads`` sets torch's intra-op threads while active. ``input_size``
    (H, W) fixes the spatial dims of :attr:`input_shape`; they are dynamic otherwise.
    """

    name = "torch"

    def __init__(
        self,
        module: nn.Module,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        input_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise UsageError(f"TorchRunner needs an nn.Module, got {type(module).__name__}")
        if precision not in PRECISIONS:
            raise UsageError(
                f"unknown precision '{precision}' for torch; choose one of {', '.join(PRECISIONS)}"
            )
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise UsageError(f"unknown device '{device}'; use cpu or cuda (cuda:N)") from None
        if dev.type not in ("cpu", "cuda"):
            raise UsageError(f"the torch runner runs on cpu or cuda, not '{device}'")
        if precision == "fp16" and dev.type != "cuda":
            raise UsageError("fp16 needs a CUDA device; use --precision fp32 on the CPU")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise EdgeresError("CUDA is not available to PyTorch here; use --device cpu")
        if threads is not None and threads < 1:
            raise UsageError(f"threads must be at least 1, got {threads}")
        self.module = module
        self._device = dev
        self._precision = precision
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        self._threads = threads
        h_w: tuple[int | None, int | None] = (None, None)
        if input_size is not None:
            h_w = (int(input_size[0]), int(input_size[1]))
        self._input_shape: Shape = (None, _in_channels(module), *h_w)
        self._run: nn.Module | None = None
        self._was_training = False
        self._saved_threads: int | None = None

    @property
    def input_name(self) -> str:
        return "input"

    @property
    def input_shape(self) -> Shape:
        return self._input_shape

    @property
    def device(self) -> str:
        return str(self._device)

    @property
    def precision(self) -> str:
        return self._precision

    def _activate(self) -> None:
        if self._threads is not None:
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(self._threads)
        self._was_training = self.module.training
        if _already_on(self.module, self._device, self._dtype):
            self._run = self.module
        else:
            self._run = copy.deepcopy(self.module).to(device=self._device, dtype=self._dtype)
        self._run.eval()

    def _deactivate(self) -> None:
        if self._run is self.module:
            self.module.train(self._was_training)
        self._run = None
        if self._saved_threads is not None:
            torch.set_num_threads(self._saved_threads)
            self._saved_threads = None

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        assert self._run is not None
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(device=self._device, dtype=self._dtype)
            out = self._run(x)
            if not isinstance(out, torch.Tensor):
                raise EdgeresError(
                    f"the model returned a {type(out).__name__}, not a tensor of logits; "
                    "edgeres runs classifiers whose forward() returns (N, classes) logits"
                )
            result: np.ndarray = out.float().cpu().numpy()
        return result


def create(args: RunnerArgs) -> TorchRunner:
    """The torch backend's factory: an ``nn.Module`` as it is, or a PyTorch file loaded with ``arch``."""
    module = args.source
    if isinstance(module, Path):
        if args.owner is not None:
            raise UsageError(f"the torch backend runs PyTorch models, not '{module.name}'; use backend auto")
        from edgeres.loading import load_model

        module = load_model(module, args.arch).require_module()
    if not isinstance(module, nn.Module):
        raise UsageError(f"cannot run a {type(module).__name__}; give an nn.Module or a model file")
    return TorchRunner(module, device=args.device, precision=args.precision, threads=args.threads)


def _in_channels(module: nn.Module) -> int | None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return None


def _already_on(module: nn.Module, device: torch.device, dtype: torch.dtype) -> bool:
    tensors = [*module.parameters(), *module.buffers()]
    floats = [t for t in tensors if t.is_floating_point()]
    on_device = all(_same_device(t.device, device) for t in tensors)
    return on_device and all(t.dtype == dtype for t in floats)


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type == "cpu":
        return True
    return (a.index or 0) == (b.index or 0)
