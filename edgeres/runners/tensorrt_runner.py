"""Run a TensorRT engine (``.engine``/``.plan``/``.trt``) on a CUDA GPU, or a Jetson's GPU/DLA.

Activation checks the engine's sidecar (``model.engine.json``) against this TensorRT and
GPU *before* TensorRT deserializes anything, so a foreign engine gives one clear line. I/O
lives in torch CUDA tensors (device buffers for the largest batch of the profile, pinned
host staging buffers) and runs on one CUDA stream with ``set_tensor_address`` and
``execute_async_v3``, the name-based API of TensorRT 10 and 11. ``cuda_graph=True``
captures each small batch size once as a CUDA graph and replays it, never straight after a
shape change (see :class:`~edgeres.runners.tensorrt_io.GraphPlan`). :attr:`compute_ms`
is the GPU time of the last call's engine run alone (CUDA events), for benchmarks.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeres.engine.sidecar import (
    REBUILD_HINT,
    EngineSidecar,
    check_compatible,
    gpu_info,
    read_sidecar,
    sidecar_path,
)
from edgeres.engine.trt import ROUTER, Collector, get_trt_logger, import_tensorrt
from edgeres.errors import EdgeresError, UsageError
from edgeres.runners.base import Runner, Shape
from edgeres.runners.tensorrt_io import CUDA_GRAPH_MAX_BATCH, GraphPlan, input_geometry, numpy_dtype

if TYPE_CHECKING:
    from edgeres.runners.registry import RunnerArgs

__all__ = ["CUDA_GRAPH_MAX_BATCH", "TensorRTRunner", "create"]

log = logging.getLogger(__name__)


def create(args: RunnerArgs) -> TensorRTRunner:
    """The tensorrt backend's factory: the engine at ``args.source`` (its device is already a GPU).

    A file another backend claims (``.onnx``, an OpenVINO ``.xml``) is never an engine: a
    :class:`UsageError` before TensorRT is asked to deserialize it.
    """
    if args.owner is not None and args.owner != "tensorrt":
        raise UsageError(
            f"the tensorrt backend runs TensorRT engines, not '{Path(args.source).name}'; "
            "build one with edgeres build-engine, or use backend auto"
        )
    return TensorRTRunner(args.source, device=args.device)


class TensorRTRunner(Runner):
    """Runs the engine at ``path`` on ``device`` (``cuda`` or ``cuda:N``)."""

    name = "tensorrt"

    def __init__(
        self, path: str | os.PathLike[str], *, device: str = "cuda", cuda_graph: bool = False
    ) -> None:
        super().__init__()
        self.path = Path(path)
        kind, _, index = str(device).lower().partition(":")
        if kind != "cuda" or (index and not index.isdigit()):
            raise UsageError(f"a TensorRT engine runs on a CUDA device (cuda, cuda:1), not '{device}'")
        self._index = int(index or 0)
        self.cuda_graph = cuda_graph
        self.sidecar: EngineSidecar | None = None
        self._s: dict[str, Any] = {}
        self._compute_ms: float | None = None

    # -- lifetime ---------------------------------------------------------------------------------
    def _activate(self) -> None:
        if not self.path.is_file():
            raise UsageError(f"engine file '{self.path}' does not exist")
        trt = import_tensorrt()
        sidecar = read_sidecar(self.path)
        torch = _cuda_torch(self._index)
        gpu_name, cc = gpu_info(self._index)
        if sidecar is None:
            log.warning(
                "%s has no sidecar %s, so edgeres cannot check it was built for TensorRT %s on %s; "
                "TensorRT decides",
                self.path.name,
                sidecar_path(self.path).name,
                trt.__version__,
                gpu_name or "this GPU",
            )
        else:
            check_compatible(sidecar, str(trt.__version__), gpu_name, cc, engine=self.path.name)
        device = torch.device("cuda", self._index)
        with torch.cuda.device(device), ROUTER.collect() as trt_log:
            runtime = _runtime(trt, trt_log)
            if sidecar is not None and sidecar.dla_core is not None:
                runtime.DLA_core = sidecar.dla_core
            try:
                engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
            except (RuntimeError, TypeError):
                engine = None
            if engine is None:
                raise EdgeresError(_load_error(self.path, trt.__version__, trt_log.errors, sidecar is None))
            self._s = _bind(trt, torch, device, engine, self.path)
        self._s.update(
            runtime=runtime, torch=torch, graphs={}, plan=GraphPlan(self.cuda_graph, CUDA_GRAPH_MAX_BATCH)
        )
        self.sidecar = sidecar

    def _deactivate(self) -> None:
        self._s.pop("graphs", None)  # graphs before the context they captured, context before engine
        for key in ("context", "engine", "runtime"):
            self._s.pop(key, None)
        self._s = {}

    # -- description ------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        if not self._s:
            raise EdgeresError(
                "the tensorrt runner is not active; use it in a `with` block or call activate()"
            )
        return self._s

    @property
    def input_name(self) -> str:
        return str(self._state()["input"])

    @property
    def input_shape(self) -> Shape:
        s = self._state()
        lo, hi = s["batch_range"]
        return (lo if lo == hi else None, *s["chw"])

    @property
    def batch_range(self) -> tuple[int, int]:
        """The smallest and largest batch the engine's optimization profile takes."""
        lo, hi = self._state()["batch_range"]
        return int(lo), int(hi)

    @property
    def device(self) -> str:
        return f"cuda:{self._index}"

    @property
    def precision(self) -> str:
        if self.sidecar is not None:
            return self.sidecar.precision
        return "unknown" if not self._s else "fp16" if self._s["in_dtype"] == np.float16 else "unknown"

    def describe(self) -> str:
        dla = self.sidecar.dla_core if self.sidecar is not None else None
        where = f"{self.device}, DLA core {dla}" if dla is not None else self.device
        return f"{self.name} on {where} ({self.precision})"

    @property
    def compute_ms(self) -> float | None:
        """GPU milliseconds of the last :meth:`infer`'s engine run (no copies), or None before one."""
        return self._compute_ms

    # -- inference --------------------------------------------------------------------------------
    def _check_batch(self, batch: np.ndarray) -> np.ndarray:
        batch = super()._check_batch(batch)
        lo, hi = self.batch_range
        if not lo <= batch.shape[0] <= hi:
            allowed = str(lo) if lo == hi else f"{lo} to {hi}"
            raise UsageError(
                f"a batch of {batch.shape[0]} does not fit engine {self.path.name}, "
                f"which takes batches of {allowed}; "
                "split the batch or rebuild the engine with a wider --batch MIN:OPT:MAX"
            )
        return batch

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        s = self._state()
        torch, stream, ctx, plan = s["torch"], s["stream"], s["context"], s["plan"]
        n = batch.shape[0]
        actions = plan.plan(n)
        with torch.cuda.device(s["device"]), torch.cuda.stream(stream), ROUTER.collect() as trt_log:
            s["host_in"][:n].copy_(torch.from_numpy(batch))
            s["dev_in"][:n].copy_(s["host_in"][:n], non_blocking=True)
            if "set_shape" in actions and not ctx.set_input_shape(s["input"], (n, *s["chw"])):
                plan.forget_shape()
                reason = trt_log.reason("no reason given")
                raise EdgeresError(
                    f"TensorRT refused batch shape {(n, *s['chw'])} for {self.path.name}: {reason}"
                )
            replay = actions[-1] == "replay"
            if "capture" in actions:
                s["graphs"][n] = self._capture(n)
                plan.captured(n, s["graphs"][n] is not None)
                replay = s["graphs"][n] is not None
            s["start"].record(stream)
            if replay:
                s["graphs"][n].replay()
            else:
                self._enqueue(trt_log)
            s["end"].record(stream)
            s["host_out"][:n].copy_(s["dev_out"][:n], non_blocking=True)
        stream.synchronize()
        self._compute_ms = float(s["start"].elapsed_time(s["end"]))
        out: np.ndarray = s["host_out"][:n].float().numpy().copy()
        return out

    def _enqueue(self, trt_log: Collector) -> None:
        s = self._s
        if not s["context"].execute_async_v3(s["stream"].cuda_stream):
            reason = trt_log.reason("no reason given")
            raise EdgeresError(f"TensorRT failed to run {self.path.name}: {reason}")

    def _capture(self, n: int) -> Any:
        """A CUDA graph of one engine run at batch ``n``, the context already set up for ``n``; None if
        capture fails."""
        s = self._s
        torch, stream, ctx = s["torch"], s["stream"], s["context"]
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
                ok = ctx.execute_async_v3(stream.cuda_stream)
            if not ok:
                raise RuntimeError("execute_async_v3 failed during capture")
        except RuntimeError as exc:
            log.warning(
                "batch %d of %s runs without a CUDA graph: capture failed (%s)", n, self.path.name, exc
            )
            return None
        return graph


def _runtime(trt: Any, trt_log: Collector) -> Any:
    """``trt.Runtime`` with the process's one logger; pybind11 raises TypeError when it returns null."""
    try:
        runtime = trt.Runtime(get_trt_logger(trt))
    except (TypeError, RuntimeError):
        runtime = None
    if runtime is None:
        raise EdgeresError(
            f"TensorRT {trt.__version__} could not start its runtime "
            f"({trt_log.reason('CUDA initialization failed', first=True)}); check the GPU driver and CUDA"
        )
    return runtime


def _cuda_torch(index: int) -> Any:
    import torch

    if not torch.cuda.is_available():
        raise EdgeresError(
            f"the TensorRT runner needs a CUDA GPU and a CUDA build of PyTorch; torch {torch.__version__} "
            "sees no CUDA device here"
        )
    count = torch.cuda.device_count()
    if index >= count:
        raise UsageError(f"there is no cuda:{index}; this machine has cuda:0 to cuda:{count - 1}")
    return torch


def _load_error(path: Path, version: str, errors: list[str], no_sidecar: bool) -> str:
    reason = errors[-1] if errors else "not a TensorRT engine, or a damaged one"
    if no_sidecar:
        return (
            f"TensorRT {version} cannot load {path.name} ({reason}), and it has no sidecar "
            f"{sidecar_path(path).name} telling where it was built; {REBUILD_HINT}"
        )
    return f"TensorRT {version} cannot load {path.name} ({reason}); {REBUILD_HINT}"


def _bind(trt: Any, torch: Any, device: Any, engine: Any, path: Path) -> dict[str, Any]:
    """Execution context, stream, events and buffers for ``engine``'s one input and one output."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if n not in inputs]
    if len(inputs) != 1 or len(outputs) != 1:
        raise UsageError(
            f"engine {path.name} has inputs {inputs} and outputs {outputs}; "
            "edgeres runs classifiers with one of each"
        )
    (inp,), (out,) = inputs, outputs
    shape = tuple(int(d) for d in engine.get_tensor_shape(inp))  # -1 for each dynamic dimension
    profile = engine.get_tensor_profile_shape(inp, 0) if any(d < 0 for d in shape) else None
    c, h, w, (lo, hi) = input_geometry(shape, profile, engine=path.name, name=inp)
    context = engine.create_execution_context()
    if context is None:
        raise EdgeresError(
            f"TensorRT could not create an execution context for {path.name} (out of GPU memory?)"
        )
    chw = (c, h, w)
    in_dtype, out_dtype = (
        numpy_dtype(engine.get_tensor_dtype(t), engine=path.name, tensor=f"{role} {t}")
        for role, t in (("input", inp), ("output", out))
    )
    if not context.set_input_shape(inp, (hi, *chw)):
        raise EdgeresError(f"TensorRT refused input shape {(hi, *chw)} for {path.name}; {REBUILD_HINT}")
    out_shape = tuple(int(d) for d in context.get_tensor_shape(out))
    t_in, t_out = (torch.from_numpy(np.empty(0, dt)).dtype for dt in (in_dtype, out_dtype))
    dev_in = torch.empty((hi, *chw), dtype=t_in, device=device)
    dev_out = torch.empty(out_shape, dtype=t_out, device=device)
    context.set_tensor_address(inp, dev_in.data_ptr())
    context.set_tensor_address(out, dev_out.data_ptr())
    return {
        "engine": engine,
        "context": context,
        "device": device,
        "input": inp,
        "output": out,
        "chw": chw,
        "batch_range": (lo, hi),
        "in_dtype": in_dtype,
        "stream": torch.cuda.Stream(device=device),
        "start": torch.cuda.Event(enable_timing=True),
        "end": torch.cuda.Event(enable_timing=True),
        "dev_in": dev_in,
        "dev_out": dev_out,
        "host_in": torch.empty((hi, *chw), dtype=t_in, pin_memory=True),
        "host_out": torch.empty(out_shape, dtype=t_out, pin_memory=True),
    }
