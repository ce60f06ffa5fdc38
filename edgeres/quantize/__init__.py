"""INT8 post-training quantization.

The stages, each its own module:

* :mod:`~edgeres.quantize.selection`: which images calibrate, tune and measure;
* :mod:`~edgeres.quantize.collect` with :mod:`~edgeres.quantize.histogram`: one streaming
  pass that keeps a |x| histogram per activation tensor;
* :mod:`~edgeres.quantize.methods`: ranges from the histograms (percentile, entropy, mse,
  minmax), configured by :class:`~edgeres.quantize.settings.CalibrationSettings`;
* :mod:`~edgeres.quantize.cache`: the ranges as a JSON calibration cache;
* :mod:`~edgeres.quantize.qdq` with :mod:`~edgeres.quantize.layouts`: the Q/DQ model for
  TensorRT or for ONNX Runtime's CPU kernels, written by ONNX Runtime's quantizer;
* :mod:`~edgeres.quantize.tuning`: ``--method auto`` and ``--max-drop``;
* :mod:`~edgeres.quantize.workflow`: all of it as one call, :func:`quantize`.

Importing this package loads neither onnx nor onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeres.quantize.workflow import QuantizeOptions, QuantizeReport, quantize

__all__ = ["QuantizeOptions", "QuantizeReport", "quantize"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from edgeres.quantize import workflow

        return getattr(workflow, name)
    raise AttributeError(f"module 'edgeres.quantize' has no attribute {name!r}")
