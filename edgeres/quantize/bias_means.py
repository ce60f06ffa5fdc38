"""Bias correction's one pass: the mean of each quantized layer's input over the calibration images.

The Q/DQ model gets a ReduceMean over the batch on every wanted tensor, so one feature map per
layer is kept however many images pass; ONNX Runtime runs it as the target would (its
``disabled_optimizers``). A model exported for a fixed batch size is fed batches of that size.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeres.errors import EdgeresError

if TYPE_CHECKING:
    from edgeres.quantize.bias_correction import _Layer

__all__ = ["cpu_session", "fixed_batches", "input_means"]

_SUFFIX = "__edgeres_bias_mean"


def input_means(
    qdq: Any,
    layers: list[_Layer],
    batches: Iterable[Mapping[str, np.ndarray]],
    disabled_optimizers: tuple[str, ...],
    threads: int | None,
) -> tuple[dict[str, np.ndarray], int]:
    """Each layer input's mean over the images (one feature map each), from one pass of ``qdq``."""
    import onnx
    from onnx import helper

    model = onnx.ModelProto()
    model.CopyFrom(qdq)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    wanted = sorted({layer.data for layer in layers})
    for i, name in enumerate(wanted):
        out = name + _SUFFIX
        if opset >= 18:
            axes = f"{_SUFFIX}_axes_{i}"
            model.graph.initializer.append(helper.make_tensor(axes, onnx.TensorProto.INT64, [1], [0]))
            node = helper.make_node("ReduceMean", [name, axes], [out], keepdims=0)
        else:
            node = helper.make_node("ReduceMean", [name], [out], axes=[0], keepdims=0)
        model.graph.node.append(node)
        model.graph.output.append(helper.make_empty_tensor_value_info(out))
    session = cpu_session(model, disabled_optimizers, threads)
    input_name = session.get_inputs()[0].name
    sums: dict[str, np.ndarray] = {}
    count = 0
    for batch in batches:
        for x in fixed_batches(session, next(iter(batch.values()))):
            outs = session.run([n + _SUFFIX for n in wanted], {input_name: x})
            n = len(x)
            for name, mean in zip(wanted, outs, strict=True):
                acc = mean.astype(np.float64) * n
                sums[name] = sums[name] + acc if name in sums else acc
            count += n
    if count == 0:
        raise EdgeresError("bias correction got no calibration images")
    return {name: s / count for name, s in sums.items()}, count


def cpu_session(
    model: Any, disabled_optimizers: Sequence[str] = (), threads: int | None = None, *, arena: bool = True
) -> Any:
    """An ONNX Runtime CPU session of ``model`` (a ModelProto), run as its target would
    (``disabled_optimizers``), with ``threads`` intra-op threads. ``arena`` False gives memory back
    after each run (ONNX Runtime's arena otherwise keeps its largest batch's activations)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not arena:
        options.enable_cpu_mem_arena = False
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory(prefix="edgeres-session-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(model, str(path))
        return ort.InferenceSession(
            str(path),
            sess_options=options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(disabled_optimizers) or None,
        )


def fixed_batches(session: Any, batch: np.ndarray) -> list[np.ndarray]:
    """``batch`` as the session takes it: whole, or cut to the one batch size a model was exported
    for (a remainder is left out)."""
    dim = session.get_inputs()[0].shape[0]
    step = dim if isinstance(dim, int) and dim > 0 else len(batch)
    return [batch[s : s + step] for s in range(0, len(batch) - step + 1, step)]
