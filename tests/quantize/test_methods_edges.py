"""The methods' arithmetic pinned value by value, and the edge cases a mutation run found unpinned.

``mse_errors`` and ``kl_divergences`` are compared whole with references written in the tests
(not only through the threshold they choose, which many wrong formulas still get right); the
histograms cover sizes that are not powers of two, empty first and last bins, tensors inside
[-1, 1] (whose histogram range is exactly 1.0) and ranges below one.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from edgeres.quantize.histogram import StreamingHistogram
from edgeres.quantize.methods import (
    clip_range,
    compute_range,
    entropy_method,
    entropy_threshold,
    kl_divergences,
    mse_errors,
    mse_threshold,
    percentile_threshold,
)
from edgeres.quantize.settings import METHODS, CalibrationSettings
from tests.quantize.test_methods import loop_kl
from tests.quantize.test_methods_reference import reference_mse_errors, trimmed


def hist_of(x: np.ndarray, num_bins: int = 2048) -> StreamingHistogram:
    h = StreamingHistogram(num_bins)
    h.update(np.asarray(x, np.float32))
    return h


@pytest.mark.parametrize("steps", [127.0, 255.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_mse_errors_are_the_documented_integral(seed: int, steps: float) -> None:
    rng = np.random.default_rng(seed)
    counts = np.floor(rng.exponential(30, 700) * rng.exponential(1, 700))
    counts[rng.random(700) < 0.2] = 0
    counts[0] = 4000  # most values near zero, as after a ReLU
    np.testing.assert_allclose(mse_errors(counts, steps), reference_mse_errors(counts, steps), rtol=1e-9)


def _loop(bins: np.ndarray, levels: int, start: int) -> np.ndarray:
    out = []
    for i in range(start, len(bins) + 1):
        out.append(math.inf if bins[:i].sum() == 0 else loop_kl(bins, levels, i))
    return np.array(out)


@pytest.mark.parametrize("n", [256, 257, 300, 1024, 1025])
def test_kl_matches_the_loop_for_any_size_with_empty_first_and_last_bins(n: int) -> None:
    rng = np.random.default_rng(n)
    bins = np.floor(rng.exponential(40, n) * rng.exponential(1, n))
    bins[rng.random(n) < 0.25] = 0
    bins[:20] = 0  # nothing kept for the first candidates: infinite
    bins[-3:] = 0  # nothing clipped and an empty last bin for the last ones
    fast, slow = kl_divergences(bins, 16), _loop(bins, 16, 16)
    assert np.array_equal(np.isinf(fast), np.isinf(slow)) and not np.isnan(fast).any()
    finite = np.isfinite(slow)
    np.testing.assert_allclose(fast[finite], slow[finite], rtol=1e-9, atol=1e-12)
    assert np.isinf(fast[:5]).all() and fast[-1] == pytest.approx(slow[-1], rel=1e-9)


def test_kl_from_a_later_start_and_its_limits() -> None:
    bins = np.floor(np.random.default_rng(3).exponential(50, 200))
    np.testing.assert_allclose(kl_divergences(bins, 16, start=100), kl_divergences(bins, 16)[100 - 16 :])
    with pytest.raises(ValueError, match=r"candidates need 16 <= start <= 200, got start=201"):
        kl_divergences(bins, 16, start=201)
    with pytest.raises(ValueError, match=r"got start=8"):
        kl_divergences(bins, 16, start=8)


INSIDE_ONE = {  # histogram range exactly 1.0
    "uniform": lambda r: r.uniform(-0.99, 0.99, 50_000),
    "relu": lambda r: np.clip(np.maximum(r.standard_normal(50_000) * 0.2, 0), 0, 0.99),
}


@pytest.mark.parametrize("name", sorted(INSIDE_ONE))
def test_a_tensor_inside_one_is_calibrated_like_any_other(name: str) -> None:
    x = INSIDE_ONE[name](np.random.default_rng(5)).astype(np.float32)
    x[0] = 0.99
    h = hist_of(x)
    assert h.limit == 1.0
    assert percentile_threshold(h, 99.0) == pytest.approx(np.percentile(np.abs(x), 99.0), abs=h.bin_width)
    steps = 255.0 if x.min() >= 0 else 127.0
    k = int(np.argmin(reference_mse_errors(trimmed(h), steps))) + 1
    assert mse_threshold(h) == min(k * h.bin_width, h.absmax)
    if name == "relu":  # a long thin tail is clipped
        assert percentile_threshold(h, 99.0) < 0.9 * h.absmax and entropy_threshold(h) < 0.9 * h.absmax


def test_ranges_below_one_are_clipped_too() -> None:
    h = hist_of(np.linspace(-0.4, 0.4, 1001))
    r = clip_range(h, 0.25, "t")
    assert (r.name, r.lo, r.hi) == ("t", -0.25, 0.25)
    assert clip_range(h, -1.0, "t").hi == 0.0  # a negative threshold is none


def test_the_percentile_in_the_first_bin() -> None:
    x = np.zeros(10_000, np.float32)
    x[:10] = 1.0  # 99.9% of |x| lie in bin 0
    h = hist_of(x)
    counts = h.abs_counts.astype(np.float64)
    target = 50.0 / 100 * counts.sum()  # the median lies inside bin 0
    assert percentile_threshold(h, 50.0) == pytest.approx(target / counts[0] * h.bin_width, rel=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_compute_range_names_the_tensor_and_passes_the_settings_on(method: str) -> None:
    x = np.random.default_rng(2).laplace(0, 1, 100_000).astype(np.float32)
    h = hist_of(x)
    assert compute_range(h, method, "conv1.out").name == "conv1.out"
    r = compute_range(h, method, "t", percentile=99.0, num_quantized_bins=64)
    expected = {
        "minmax": float(h.max),
        "percentile": percentile_threshold(h, 99.0),
        "entropy": entropy_threshold(h, 64),
        "mse": mse_threshold(h),
    }[method]
    assert r.hi == pytest.approx(min(expected, float(h.max)), rel=1e-12)


def test_entropy_with_no_more_bins_than_levels_keeps_the_range() -> None:
    x = np.linspace(0, 0.3, 1000).astype(np.float32)  # range 0.5 in 128 bins: 77 hold values
    h = hist_of(x, num_bins=128)
    assert len(trimmed(h)) == 77
    assert entropy_threshold(h, 128) == h.absmax


def test_compute_range_defaults_to_128_levels_and_passes_other_counts_on() -> None:
    # a distribution whose entropy threshold differs for 64, 128 and 129 levels
    h = hist_of(np.random.default_rng(0).laplace(0, 1, 20_000))
    t64, t128, t129 = (entropy_threshold(h, nq) for nq in (64, 128, 129))
    assert len({t64, t128, t129}) == 3
    assert compute_range(h, "entropy", "t").hi == min(t128, h.max)
    assert compute_range(h, "entropy", "t", num_quantized_bins=64).hi == min(t64, h.max)
    settings = CalibrationSettings(method="entropy", num_quantized_bins=64)
    assert entropy_method(h, "t", settings).hi == min(t64, h.max)


def test_entropy_does_not_try_a_threshold_past_the_last_value() -> None:
    # counts of 21 bins (of 32) found by a search: a candidate one empty bin past the last value
    # would win and move the threshold from bin 20's lower edge to absmax
    counts = [2, 20, 8, 16, 1, 13, 6, 4, 3, 10, 1, 6, 10, 1, 2, 13, 10, 7, 6, 5, 10]
    h = hist_of(np.repeat((np.arange(len(counts)) + 0.5) / 32, counts), num_bins=32)
    assert h.limit == 1.0 and len(trimmed(h)) == 21
    assert entropy_threshold(h, 8) == 20 / 32 < h.absmax


def test_kl_of_the_last_candidate_alone() -> None:
    bins = np.floor(np.random.default_rng(4).exponential(30, 60))
    bins[-1] = 3
    one = kl_divergences(bins, 16, start=len(bins))
    assert one.shape == (1,) and one[0] == pytest.approx(kl_divergences(bins, 16)[-1], rel=1e-12)


def test_entropy_raises_no_floating_point_warning() -> None:
    # empty bins before the last value and clipped mass: p / 0 and 0 / 0 occur inside, silenced
    x = np.concatenate([np.linspace(0.0, 0.2, 5000), np.linspace(0.5, 0.6, 50), [1.0]])
    h = hist_of(x, num_bins=512)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kl = kl_divergences(trimmed(h), 128)
        threshold = entropy_threshold(h, 128)
        trailing = kl_divergences(np.concatenate([trimmed(h), np.zeros(40)]), 128)  # 0 / 0 too
    assert np.isinf(kl).any() and np.isfinite(kl).any() and not np.isnan(trailing).any()
    assert 0.2 <= threshold < 0.7  # the lone 1.0 is clipped


def test_thresholds_of_an_empty_histogram_are_its_absmax() -> None:
    h = StreamingHistogram(64)
    assert (percentile_threshold(h, 99.0), entropy_threshold(h, 8), mse_threshold(h)) == (h.absmax,) * 3


@pytest.mark.parametrize("percentile", [0.0, -1.0, 100.5, math.nan])
def test_percentile_outside_0_to_100_is_refused(percentile: float) -> None:
    with pytest.raises(ValueError, match="percentile must be in"):
        percentile_threshold(hist_of(np.linspace(-1, 1, 101)), percentile)


def test_percentile_100_is_absmax() -> None:
    h = hist_of(np.linspace(-1, 3, 4001))
    assert percentile_threshold(h, 100.0) == h.absmax == 3.0


@pytest.mark.parametrize("steps", [0.5, 0.0, math.nan])
def test_mse_needs_at_least_one_step(steps: float) -> None:
    with pytest.raises(ValueError, match="steps must be at least 1"):
        mse_errors(np.ones(8), steps)


def test_mse_with_one_step_and_a_percentile_below_one_are_valid() -> None:
    np.testing.assert_allclose(mse_errors(np.ones(8), 1.0), reference_mse_errors(np.ones(8), 1.0), rtol=1e-12)
    h = hist_of(np.linspace(0.0, 1.0, 1001))
    assert percentile_threshold(h, 0.5) == pytest.approx(0.005, abs=h.bin_width)


def test_mse_on_a_four_bin_histogram_matches_brute_force() -> None:
    h = hist_of(np.concatenate([np.full(100, 0.1), np.full(3, 0.6), [0.9]]), num_bins=4)
    assert len(trimmed(h)) == 4
    k = int(np.argmin(reference_mse_errors(trimmed(h), 255.0))) + 1
    assert mse_threshold(h) == min(k * h.bin_width, h.absmax)
    h2 = hist_of(np.concatenate([np.full(100, 0.1), [0.3]]), num_bins=2)  # the fewest bins
    assert len(trimmed(h2)) == 2
    k2 = int(np.argmin(reference_mse_errors(trimmed(h2), 255.0))) + 1
    assert mse_threshold(h2) == min(k2 * h2.bin_width, h2.absmax)
