"""Learned rounding of a whole model: every quantized layer in turn, its integers baked into the
float weights.

:func:`learn_rounding` takes the prepared float model and the plain Q/DQ model written from it,
learns each layer's integers (:func:`edgeres.quantize.adaround.learn_layer`) on its input from
the Q/DQ model with every earlier layer's learned integers in place, and writes the float model
with weights ``q * s``: quantizing it again (``write_qdq``, or TensorRT at build time) gives
the same scales and exactly the integers ``q``; :func:`check_integers` proves it on the
written Q/DQ model. Finished layers are handed to ``on_layer`` as they finish (the workflow
keeps them in the calibration cache) and ``stored`` layers are not learned again, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeres.errors import EdgeresError, UsageError
from edgeres.memory import release_free_memory
from edgeres.quantize.adaround import (
    LayerRounding,
    RoundingSettings,
    bits_of,
    integers_from_bits,
    learn_layer,
)
from edgeres.quantize.adaround_data import RoundingLayer, rounding_layers, set_layer_integers
from edgeres.quantize.adaround_walk import LayerSampler

__all__ = ["LearnedRounding", "NothingToRound", "check_integers", "learn_rounding", "qmax_for"]

log = logging.getLogger(__name__)


class NothingToRound(EdgeresError):
    """The Q/DQ model has no quantized Conv or Gemm whose weights learned rounding can choose."""


def qmax_for(weight_bits: int) -> int:
    """The largest weight integer of symmetric ``weight_bits`` weights as ONNX Runtime writes them."""
    return 127 if weight_bits == 8 else 64


@dataclass(frozen=True)
class LearnedRounding:
    """What :func:`learn_rounding` did."""

    layers: tuple[LayerRounding, ...]
    num_images: int
    seconds: float
    settings: RoundingSettings
    #: Layers whose integers came from a calibration cache instead of being learned here.
    reused_layers: int = 0
    #: The most the temporary files (activations crossing the current cut, FP32 targets) held, MB.
    temp_mb: float = 0.0
    #: Node -> the learned integers, (channels, inputs per channel).
    integers: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        learned = [r for r in self.layers if r.error_nearest is not None]
        gain = None
        if learned:
            before = sum(r.error_nearest or 0.0 for r in learned)
            after = sum(r.error_learned or 0.0 for r in learned)
            gain = 1.0 - after / before if before > 0 else 0.0
        return {
            "method": "adaround",
            "layers": len(self.layers),
            "images": self.num_images,
            "seconds": round(self.seconds, 3),
            "reused_layers": self.reused_layers,
            "temp_mb": round(self.temp_mb, 1),
            "flipped": float(np.mean([r.flipped for r in self.layers])) if self.layers else 0.0,
            #: Share of the summed output error (nearest rounding) that learned rounding removed.
            "error_reduction": gain,
            "settings": self.settings.to_dict(),
            "per_layer": [r.to_dict() for r in self.layers],
        }


def learn_rounding(
    fp32_onnx: str | os.PathLike[str],
    qdq_onnx: str | os.PathLike[str],
    images: Sequence[np.ndarray],
    output: str | os.PathLike[str],
    *,
    weight_bits: int = 8,
    settings: RoundingSettings | None = None,
    disabled_optimizers: Sequence[str] = (),
    threads: int | None = None,
    stored: Mapping[str, np.ndarray] | None = None,
    on_layer: Callable[[str, np.ndarray], None] | None = None,
    progress: bool = False,
) -> LearnedRounding:
    """Write ``fp32_onnx`` with learned-rounding weights to ``output``.

    ``fp32_onnx`` is the prepared float model, ``qdq_onnx`` the plain Q/DQ model written from it
    with ``weight_bits``; ``images`` are batches of model inputs (NCHW float32).
    ``disabled_optimizers`` make ONNX Runtime run the Q/DQ model as its target would.
    """
    import onnx
    from onnx import numpy_helper

    from edgeres.atomic import atomic_path
    from edgeres.progress import progress_bar

    settings = settings or RoundingSettings()
    start = time.perf_counter()
    fp32, qdq = onnx.load(str(fp32_onnx)), onnx.load(str(qdq_onnx))
    layers = rounding_layers(fp32, qdq, qmax_for(weight_bits))
    if not layers:
        raise NothingToRound(
            "learned rounding: the model has no quantized Conv or Gemm with symmetric int8 weights "
            "(are they all kept in float?); use --rounding nearest"
        )
    num_images = sum(len(b) for b in images)
    stored = dict(stored or {})
    if any(layer.node not in stored for layer in layers) and num_images < settings.min_images:
        if num_images == 0:
            raise UsageError("learned rounding needs calibration images: give --calib DIR")
        raise UsageError(
            f"learned rounding needs at least {settings.min_images} calibration images, got {num_images}: "
            f"give more images (--calib-size {settings.min_images} or more) or use --rounding nearest"
        )
    integers: dict[str, np.ndarray] = {}
    records: list[LayerRounding] = []
    reused = 0
    bar = progress_bar(total=len(layers), desc="learning rounding", unit="layer", enabled=progress)
    import torch

    torch_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)  # global: restored after
    wanted = [i for i, layer in enumerate(layers) if layer.node not in stored]
    sampler = LayerSampler(
        qdq, fp32, layers, images, max_patches=[_max_patches(layer, settings) for layer in layers],
        wanted=wanted, seed=settings.seed, disabled_optimizers=disabled_optimizers, threads=threads,
    )  # fmt: skip
    try:
        for i, layer in enumerate(layers):
            if layer.node in stored:
                q = integers_from_bits(layer, _checked_bits(layer, stored[layer.node]))
                records.append(LayerRounding(layer.node, int(q.size), _flipped(layer, q), None, None, 0.0, 0))
                reused += 1
            else:
                fetch = time.perf_counter()
                x, y = sampler.samples(i)
                fetch = time.perf_counter() - fetch
                q, record = learn_layer(layer, x, y, settings, i)
                del x, y
                records.append(record)
                log.debug(
                    "learned rounding: %s, %d weights, %.1f%% flipped, error %.4g -> %.4g (%.1f + %.1f s)",
                    layer.node, record.weights, 100 * record.flipped, record.error_nearest,
                    record.error_learned, fetch, record.seconds,
                )  # fmt: skip
            integers[layer.node] = q
            if on_layer is not None and layer.node not in stored:
                on_layer(layer.node, bits_of(layer, q))
            set_layer_integers(qdq, layer, q)
            release_free_memory()  # the layer's samples, or they add up as fragments across layers
            bar.update(1)
    finally:
        sampler.close()
        bar.close()
        torch.set_num_threads(torch_threads)
    for layer in layers:  # only now: the FP32 targets come from the float model as given
        _set_weights(fp32, layer, integers[layer.node], numpy_helper)
    with atomic_path(Path(output)) as tmp:
        onnx.save(fp32, str(tmp))
    result = LearnedRounding(
        tuple(records),
        num_images,
        time.perf_counter() - start,
        settings,
        reused_layers=reused,
        temp_mb=sampler.peak_bytes / 2**20,
        integers=integers,
    )
    reduction = result.to_dict()["error_reduction"]
    log.info(
        "learned rounding: %d layers on %d images, %.1f%% of weights rounded the other way%s (%.1f s)",
        len(records),
        num_images,
        100 * result.to_dict()["flipped"],
        f", output error {100 * reduction:.0f}% lower than nearest" if reduction is not None else "",
        result.seconds,
    )
    return result


def check_integers(fp32_onnx: str | os.PathLike[str], qdq_onnx: str | os.PathLike[str], done: LearnedRounding,
                   weight_bits: int) -> None:  # fmt: skip
    """Raise unless the Q/DQ model at ``qdq_onnx`` quantizes every layer to its learned integers."""
    import onnx

    fp32, qdq = onnx.load(str(fp32_onnx)), onnx.load(str(qdq_onnx))
    written = {layer.node: layer for layer in rounding_layers(fp32, qdq, qmax_for(weight_bits))}
    for node, want in done.integers.items():
        layer = written.get(node)
        if layer is None:
            raise EdgeresError(f"learned rounding: layer {node} is not quantized in the written model")
        got = written_integers(qdq, layer)
        if got.shape != want.shape or not np.array_equal(got, want):
            raise EdgeresError(
                f"learned rounding: the written model quantizes {node} to other integers than the learned "
                f"ones ({int(np.sum(got != want))} of {want.size} differ)"
            )


def written_integers(qdq: Any, layer: RoundingLayer) -> np.ndarray:
    """The integers ``qdq``'s DequantizeLinear of ``layer`` reads, (channels, inputs): stored int8, or
    float weights quantized by its QuantizeLinear as ONNX Runtime and TensorRT do (round half to even)."""
    from onnx import numpy_helper

    producers = {o: n for n in qdq.graph.node for o in n.output}
    inits = {t.name: t for t in qdq.graph.initializer}
    node = next(n for n in qdq.graph.node if n.name == layer.node)
    dq = producers[node.input[1]]
    if dq.input[0] in inits:
        q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.int32)
    else:
        qn = producers[dq.input[0]]
        w = numpy_helper.to_array(inits[qn.input[0]]).astype(np.float32)
        s = numpy_helper.to_array(inits[qn.input[1]]).astype(np.float32).reshape(-1)
        shape = [1] * w.ndim
        shape[layer.axis] = -1
        q = np.clip(np.rint(w / s.reshape(shape)), -128, 127).astype(np.int32)
    return np.moveaxis(q, layer.axis, 0).reshape(layer.w.shape)


def _set_weights(fp32: Any, layer: RoundingLayer, q: np.ndarray, numpy_helper: Any) -> None:
    for t in fp32.graph.initializer:
        if t.name == layer.weight:
            t.CopyFrom(numpy_helper.from_array(layer.weights(q), layer.weight))
            return
    raise EdgeresError(f"learned rounding: the weights of {layer.node} are not an initializer")


def _checked_bits(layer: RoundingLayer, up: np.ndarray) -> np.ndarray:
    up = np.asarray(up)
    if up.size != layer.w.size or not np.isin(up, (0, 1)).all():
        raise EdgeresError(
            f"the stored learned rounding of {layer.node} does not fit its weights "
            f"({up.size} values for {layer.w.size}); run quantize again with --calib"
        )
    return up.reshape(layer.w.shape).astype(np.uint8)


def _flipped(layer: RoundingLayer, q: np.ndarray) -> float:
    return float((q != layer.nearest).mean())


def _max_patches(layer: RoundingLayer, settings: RoundingSettings) -> int:
    per_patch = 4 * (layer.w.shape[1] * layer.groups + layer.w.shape[0])
    return max(1, settings.memory_mb * 2**20 // per_patch)
