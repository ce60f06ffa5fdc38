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

from typing import TYPE_CHECKING

from edgeres._lazy import lazy_exports

# The type checker's view of _EXPORTS (tests/test_lazy_exports.py keeps the two equal).
if TYPE_CHECKING:
    from edgeres.quantize.workflow import QuantizeOptions, QuantizeReport, quantize  # noqa: F401

_EXPORTS = {
    "QuantizeOptions": "edgeres.quantize.workflow",
    "QuantizeReport": "edgeres.quantize.workflow",
    "quantize": "edgeres.quantize.workflow",
}

__all__ = [*_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
