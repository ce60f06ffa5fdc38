"""The table of calibration methods: a method registered once is offered everywhere and runs.

Two kinds plug in. A histogram method turns one tensor's histogram into a range; a data method
is given the FP32 model and the calibration batches (for methods that must run the model).
The methods below are registered by the tests and removed again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgeres.errors import UsageError
from edgeres.quantize.histogram import StreamingHistogram
from edgeres.quantize.methods import compute_range
from edgeres.quantize.ranges import TensorRange
from edgeres.quantize.settings import (
    METHOD_SPECS,
    CalibrationSettings,
    get_method,
    method_choices,
    method_names,
    register_method,
)


def halfmax_method(hist: StreamingHistogram, name: str, settings: CalibrationSettings) -> TensorRange:
    """A made-up histogram method: half the observed range."""
    return TensorRange(name, float(hist.min) / 2, float(hist.max) / 2)


#: The batches the data method was given, to check it saw the calibration images.
SEEN: list[int] = []


def direct_minmax(fp32: Path, batches, settings: CalibrationSettings):
    """A made-up data method: runs the model itself (here: edgeres's collector) and takes minmax."""
    from edgeres.quantize.collect import collect_statistics

    class Counting:
        def __init__(self, inner) -> None:
            self.inner = inner

        def get_next(self):
            batch = self.inner.get_next()
            if batch is not None:
                SEEN.append(len(next(iter(batch.values()))))
            return batch

        def rewind(self) -> None:
            self.inner.rewind()

    return collect_statistics(
        fp32, Counting(batches), settings.replace(method="minmax"), progress=False
    ).ranges()


@pytest.fixture
def registered() -> Iterator[None]:
    register_method("halfmax", f"{__name__}:halfmax_method", "half the observed range")
    register_method(
        "direct-minmax", f"{__name__}:direct_minmax", "minmax, computed by running the model", kind="data"
    )
    try:
        yield
    finally:
        del METHOD_SPECS["halfmax"], METHOD_SPECS["direct-minmax"]


def test_the_built_in_methods_in_their_order() -> None:
    assert method_names() == ("minmax", "percentile", "entropy", "mse")
    assert method_names(kind="data") == ()
    assert method_choices()[-1] == "auto"


def test_a_registered_histogram_method_is_offered_and_computed(registered: None) -> None:
    assert "halfmax" in method_choices() and "halfmax" in method_names(kind="histogram")
    assert CalibrationSettings(method="halfmax").method == "halfmax"
    hist = StreamingHistogram(64)
    hist.update(np.array([-3.0, 1.0, 4.0], dtype=np.float32))
    r = compute_range(hist, "halfmax", "x")
    assert (r.lo, r.hi) == (-1.5, 2.0)
    with pytest.raises(UsageError, match="needs the model and images, not a histogram"):
        compute_range(hist, "direct-minmax", "x")


def test_names_are_registered_once_and_unknown_ones_refused(registered: None) -> None:
    with pytest.raises(ValueError, match="registered already"):
        register_method("halfmax", f"{__name__}:halfmax_method", "again")
    with pytest.raises(ValueError, match="reserved"):
        register_method("auto", f"{__name__}:halfmax_method", "auto is --method auto")
    with pytest.raises(UsageError, match="unknown calibration method 'kl'; choose one of minmax, percentile"):
        get_method("kl")
    with pytest.raises(UsageError, match="unknown calibration method"):
        CalibrationSettings(method=["minmax"])  # type: ignore[arg-type]


def _scales(path: Path) -> dict[str, np.ndarray]:
    graph = onnx.load(str(path)).graph
    return {i.name: numpy_helper.to_array(i) for i in graph.initializer if "scale" in i.name}


def test_a_data_method_runs_in_quantize_and_matches_the_same_math_by_histogram(
    registered: None, fragile_model, tmp_path: Path
) -> None:
    from edgeres.quantize.workflow import QuantizeOptions, quantize

    def run(method: str, name: str):
        opts = QuantizeOptions(
            calib=fragile_model.data,
            target="cpu",
            settings=CalibrationSettings(method=method),
            calib_size=40,
            progress=False,
        )
        return quantize(fragile_model.fp32, tmp_path / f"{name}.onnx", opts)

    SEEN.clear()
    direct = run("direct-minmax", "direct")
    assert sum(SEEN) == 40 and direct.method == "direct-minmax" and direct.calib_images == 40
    by_histogram = run("minmax", "hist")
    a, b = _scales(direct.targets[0].path), _scales(by_histogram.targets[0].path)
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # the cache records the data method, and is reused by it
    again = quantize(
        fragile_model.fp32,
        tmp_path / "again.onnx",
        QuantizeOptions(target="cpu", calib_cache=direct.cache, progress=False),
    )
    assert again.reused_cache and again.method == "direct-minmax"
