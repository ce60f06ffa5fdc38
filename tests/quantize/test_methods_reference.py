"""Entropy, percentile and mse thresholds pinned exactly against references written here.

The entropy reference follows TensorRT's calibrator as pytorch-quantization publishes it
(``_compute_amax_entropy`` in pytorch_quantization/calib/histogram.py), one candidate at a time
and without prefix sums: bin 0 takes bin 1's count; for each candidate i from 128 to the number
of bins, P is bins[:i] with the clipped counts added to its last bin, Q is bins[:i] merged into
128 levels by ``np.digitize`` over ``linspace(0, i, 129)`` and spread evenly over each level's
non-empty bins; the last i with the least KL(P||Q) wins and the threshold is bin edge i. That
histogram ends at the data's maximum; edgeres's ends at a power of two, so it is trimmed to its
last non-empty bin first (which is what edgeres documents).

The mse reference integrates edgeres's documented objective bin by bin for every candidate
(values uniform within a bin; clipped values cost (|x| - t)^2, values below half a step x^2,
the rest step^2 / 12, with step t/255 for a never-negative tensor and t/127 otherwise).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeres.quantize.histogram import StreamingHistogram
from edgeres.quantize.methods import entropy_threshold, mse_threshold, percentile_threshold


def hist_of(x: np.ndarray, num_bins: int = 2048) -> StreamingHistogram:
    h = StreamingHistogram(num_bins)
    h.update(np.asarray(x, np.float32))
    return h


def trimmed(h: StreamingHistogram) -> np.ndarray:
    counts = h.abs_counts.astype(np.float64)
    return counts[: int(np.flatnonzero(counts)[-1]) + 1]


def reference_entropy_bin(h: StreamingHistogram, levels: int = 128) -> int:
    """TensorRT's choice of threshold, as a bin edge index (threshold = index * bin width)."""
    bins = trimmed(h)
    bins[0] = bins[1]
    best_i, best_kl = -1, np.inf
    for i in range(levels, len(bins) + 1):
        level = np.digitize(np.arange(i), np.linspace(0, i, levels + 1)) - 1
        kept = bins[:i]
        full = kept > 0
        level_sum = np.bincount(level, weights=kept, minlength=levels)
        level_bins = np.bincount(level[full], minlength=levels)
        q = np.zeros(i)
        q[full] = level_sum[level[full]] / level_bins[level[full]]
        p = kept.copy()
        p[-1] += bins[i:].sum()
        if q.sum() == 0:
            continue
        p, q = p / p.sum(), q / q.sum()
        if np.any((p > 0) & (q == 0)):
            kl = np.inf
        else:
            m = p > 0
            kl = float(np.sum(p[m] * np.log(p[m] / q[m])))
        if kl <= best_kl + 1e-12:  # equal (to rounding): the later, larger threshold wins
            best_i, best_kl = i, min(kl, best_kl)
    return best_i


DISTRIBUTIONS = {
    "gaussian": lambda r: r.standard_normal(200_000),
    "laplace": lambda r: r.laplace(0, 1, 200_000),
    "uniform": lambda r: r.uniform(-3, 3, 200_000),
    "bimodal": lambda r: np.concatenate([r.normal(-3, 0.5, 100_000), r.normal(2, 0.3, 100_000)]),
    "relu": lambda r: np.maximum(r.standard_normal(200_000) * 2, 0),  # half the values exactly 0
    "heavy": lambda r: r.standard_t(3, 200_000),
}


@pytest.fixture(scope="module", params=sorted(DISTRIBUTIONS))
def data(request: pytest.FixtureRequest) -> np.ndarray:
    rng = np.random.default_rng(sorted(DISTRIBUTIONS).index(request.param))
    return np.asarray(DISTRIBUTIONS[request.param](rng), np.float32)


def test_entropy_threshold_is_tensorrts_bin(data: np.ndarray) -> None:
    h = hist_of(data)
    i = reference_entropy_bin(h)
    assert entropy_threshold(h) == min(i * h.bin_width, h.absmax), (i, entropy_threshold(h) / h.bin_width)


def test_entropy_takes_the_largest_of_equal_thresholds() -> None:
    # 8 bins of width 1, 4 levels: bin 0 takes bin 1's count (0), so candidates 6 and 8 both keep
    # a P equal to its Q (KL 0 for both, computed as ~1e-16 by the prefix sums): 8 must win.
    counts = [3, 0, 0, 0, 0, 3, 3, 3]
    x = np.repeat(np.arange(8) + 0.5, counts)
    h = hist_of(x, num_bins=8)
    assert h.bin_width == 1.0
    assert reference_entropy_bin(h, 4) == 8
    assert entropy_threshold(h, 4) == h.absmax == 7.5


def test_entropy_gives_the_zero_bin_its_neighbours_count() -> None:
    # a ReLU: most values exactly 0. Left in bin 0, they would pull the threshold elsewhere.
    x = np.maximum(np.random.default_rng(7).laplace(0, 1, 200_000), 0).astype(np.float32)
    h = hist_of(x)
    i = reference_entropy_bin(h)
    assert entropy_threshold(h) == i * h.bin_width
    assert trimmed(h)[0] > 50 * trimmed(h)[1]  # the spike the rule is for


@pytest.mark.parametrize("p", [99.0, 99.9, 99.99])
def test_percentile_is_within_one_bin_of_numpy(data: np.ndarray, p: float) -> None:
    h = hist_of(data)
    assert abs(percentile_threshold(h, p) - np.percentile(np.abs(data), p)) <= h.bin_width


@pytest.mark.parametrize("p", [50.0, 90.05, 99.0, 99.37])
def test_percentile_interpolates_within_its_bin(p: float) -> None:
    """Evenly spread values, 64 to a bin: the interpolation lands within 1/32 of a bin of numpy's."""
    n = 2048 * 64
    x = ((np.arange(n) + 0.5) / n * 4.0).astype(np.float32)  # [0, 4): bins of 4/2048
    h = hist_of(x)
    assert h.limit == 4.0 and (trimmed(h) == 64).all()
    want = float(np.percentile(x, p))
    assert abs(percentile_threshold(h, p) - want) <= h.bin_width / 32, (percentile_threshold(h, p), want)


def test_percentile_by_hand() -> None:
    # bins of width 1 holding 10, 30, 60 values: the 50th percentile is the 50th value, 10 into
    # the 60 of bin 2: 2 + 10/60.
    x = np.concatenate([np.full(10, 0.5), np.full(30, 1.5), np.full(60, 2.5), [3.5]])
    h = hist_of(x, num_bins=4)
    assert h.bin_width == 1.0
    assert percentile_threshold(h, 100 * 50 / 101) == pytest.approx(2 + 10 / 60, abs=1e-12)
    assert percentile_threshold(h, 100 * 25 / 101) == pytest.approx(1 + 15 / 30, abs=1e-12)


def reference_mse_errors(counts: np.ndarray, steps: float) -> np.ndarray:
    """The documented expected error of every candidate k (threshold k bins), integrated bin by bin."""
    n = len(counts)
    lo = np.arange(n, dtype=np.float64)
    hi = lo + 1
    errors = []
    for k in range(1, n + 1):
        t = float(k)
        step = t / steps
        half = min(step / 2, t)
        a, b = np.maximum(lo, t), hi  # clipped part of each bin
        clip = np.where(b > a, ((b - t) ** 3 - (a - t) ** 3) / 3, 0.0)
        a, b = lo, np.minimum(hi, half)  # rounds to zero
        zero = np.where(b > a, (b**3 - a**3) / 3, 0.0)
        a, b = np.maximum(lo, half), np.minimum(hi, t)  # rounding noise
        noise = np.where(b > a, (b - a) * step * step / 12, 0.0)
        errors.append(float(np.sum(counts * (clip + zero + noise))))
    return np.array(errors)


def reference_mse_bin(h: StreamingHistogram, nonnegative: bool) -> int:
    """The candidate k (threshold k bins) with the least documented expected error."""
    return int(np.argmin(reference_mse_errors(trimmed(h), 255.0 if nonnegative else 127.0))) + 1


def test_mse_threshold_is_the_least_error_bin(data: np.ndarray) -> None:
    h = hist_of(data)
    k = reference_mse_bin(h, nonnegative=bool(data.min() >= 0))
    assert mse_threshold(h) == min(k * h.bin_width, h.absmax), (k, mse_threshold(h) / h.bin_width)


def test_mse_of_a_relu_output_uses_255_steps() -> None:
    x = np.maximum(np.random.default_rng(8).laplace(0, 1, 200_000), 0).astype(np.float32)
    h = hist_of(x)
    k255, k127 = reference_mse_bin(h, nonnegative=True), reference_mse_bin(h, nonnegative=False)
    assert k255 > k127 + 10  # finer steps: clipping costs more than rounding, so clip later
    assert mse_threshold(h) == k255 * h.bin_width
