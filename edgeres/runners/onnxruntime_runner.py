"""Run an ONNX classifier with ONNX Runtime (CPU by default; CUDA or TensorRT providers when asked)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from edgeres.errors import EdgeresError, MissingDependencyError, UsageError, first_line
from edgeres.runners.base import Runner, Shape, format_shape

if TYPE_CHECKING:
    from edgeres.runners.registry import RunnerArgs

__all__ = ["PROVIDER_ALIASES", "OnnxRuntimeRunner", "create"]

PROVIDER_ALIASES: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
_FLOAT_TYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
}


class OnnxRuntimeRunner(Runner):
    """Runs ``path`` in an ONNX Runtime session with every graph optimization on (``optimize``).

    ``providers`` are execution-provider names or aliases (cpu, cuda, tensorrt), best
    first; without them ``device`` picks CPU or CUDA (with CPU as fallback for
    unsupported nodes). ``threads`` sets ``intra_op_num_threads``. Activation checks
    the model is an image classifier: one 4-D float input and one output.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        providers: Sequence[str] | None = None,
        device: str = "cpu",
        threads: int | None = None,
        disabled_optimizers: Sequence[str] = (),
        optimize: bool = True,
        spin: bool = True,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        #: ONNX Runtime graph optimizers to switch off, e.g. "WeightBiasQuantization", which would
        #: quantize a Conv that a Q/DQ model deliberately keeps in float.
        self.disabled_optimizers = tuple(disabled_optimizers)
        #: False runs every node as written: a Q/DQ model then does its integer math in float,
        #: exactly, without ONNX Runtime's INT8 kernels (the reference for what they compute).
        self.optimize = optimize
        #: False stops the intra-op threads spinning after a run: an idle session alive beside
        #: another one then leaves it the cores (timing several models in one process).
        self.spin = spin
        if threads is not None and threads < 1:
            raise UsageError(f"threads must be at least 1, got {threads}")
        self.providers = resolve_providers(providers, device)
        self.threads = threads
        self._session: ort.InferenceSession | None = None
        self._input: Any = None
        self._output_name = ""
        self._precision: str | None = None

    def _activate(self) -> None:
        if not self.path.is_file():
            raise UsageError(f"ONNX model '{self.path}' does not exist")
        options = ort.SessionOptions()
        options.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if self.optimize
            else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        )
        options.log_severity_level = 3  # errors only; ORT's warnings are not the user's business
        if not self.spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(
                str(self.path),
                sess_options=options,
                providers=self.providers,
                disabled_optimizers=list(self.disabled_optimizers) or None,
            )
        except Exception as exc:  # ORT raises its own types (InvalidProtobuf, Fail, InvalidGraph, ...)
            raise EdgeresError(
                f"'{self.path}' is not a valid ONNX model ({first_line(exc, limit=200)}); "
                "re-export it with edgeres"
            ) from exc
        self._input, self._output_name = _classifier_io(session, self.path)
        self._session = session

    def _deactivate(self) -> None:
        self._session = None

    def _require_session(self) -> ort.InferenceSession:
        if self._session is None:
            raise EdgeresError(
                "the onnxruntime runner is not active; use it in a `with` block or call activate()"
            )
        return self._session

    @property
    def input_name(self) -> str:
        self._require_session()
        return str(self._input.name)

    @property
    def input_shape(self) -> Shape:
        self._require_session()
        return tuple(d if isinstance(d, int) else None for d in self._input.shape)

    @property
    def device(self) -> str:
        first = self.providers[0] if self._session is None else self._session.get_providers()[0]
        return "cpu" if first == "CPUExecutionProvider" else "cuda"

    @property
    def precision(self) -> str:
        """fp32, fp16, int8 or int8+fp16, read from the graph (a Q/DQ model has a float input)."""
        if self._precision is None:
            if not self.path.is_file():
                return "fp32"
            import onnx

            from edgeres.precision import onnx_precision

            self._precision = onnx_precision(onnx.load(str(self.path), load_external_data=False))
        return self._precision

    @property
    def active_providers(self) -> list[str]:
        return list(self._require_session().get_providers())

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        session = self._require_session()
        x = batch.astype(_FLOAT_TYPES[self._input.type], copy=False)
        (out,) = session.run([self._output_name], {self._input.name: x})
        return np.asarray(out)


def create(args: RunnerArgs) -> OnnxRuntimeRunner:
    """The onnxruntime backend's factory: the ONNX file at ``args.source``."""
    if args.owner == "tensorrt":
        raise UsageError(f"'{args.source}' is a TensorRT engine; run it with the tensorrt backend")
    return OnnxRuntimeRunner(args.source, providers=args.providers, device=args.device, threads=args.threads)


def resolve_providers(providers: Sequence[str] | None, device: str = "cpu") -> list[str]:
    """Full provider names for aliases, checked against what this onnxruntime build offers."""
    available = ort.get_available_providers()
    if providers is None:
        kind = device.split(":")[0].lower()
        if kind == "cpu":
            providers = ["cpu"]
        elif kind == "cuda":
            providers = ["cuda", "cpu"]
        else:
            raise UsageError(f"unknown device '{device}' for onnxruntime; use cpu or cuda")
    names = [PROVIDER_ALIASES.get(p.lower(), p) for p in providers]
    if not names:
        raise UsageError("no onnxruntime execution provider given; use cpu, cuda or tensorrt")
    for name in names:
        if name not in available:
            hint = ""
            if name in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
                hint = "; install onnxruntime-gpu (and its CUDA/TensorRT libraries) or use cpu"
            raise MissingDependencyError(
                f"onnxruntime provider {name} is not available here (have: {', '.join(available)}){hint}"
            )
    return names


def _classifier_io(session: ort.InferenceSession, path: Path) -> tuple[Any, str]:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    good_input = len(inputs) == 1 and inputs[0].type in _FLOAT_TYPES and len(inputs[0].shape or ()) == 4
    if not good_input:
        described = (
            ", ".join(f"{i.name}: {i.type} {format_shape(_dims(i.shape or ()))}" for i in inputs) or "none"
        )
        raise UsageError(
            f"model {path.name} is not an image classifier: it has inputs {described}; "
            "edgeres needs one 4-D float input (N, C, H, W)"
        )
    if len(outputs) != 1 or len(outputs[0].shape or ()) not in (0, 2):
        described = ", ".join(f"{o.name}: {format_shape(_dims(o.shape or ()))}" for o in outputs) or "none"
        raise UsageError(
            f"model {path.name} is not an image classifier: it has outputs {described}; "
            "edgeres needs one (N, classes) output"
        )
    return inputs[0], str(outputs[0].name)


def _dims(shape: Sequence[Any]) -> list[int | str | None]:
    return [d if isinstance(d, (int, str)) else None for d in shape]
