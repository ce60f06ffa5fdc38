"""Range methods: KL divergence against a hand computation and a plain loop, clipping where it should."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from edgeres.errors import UsageError
from edgeres.quantize.histogram import StreamingHistogram
from edgeres.quantize.methods import (
    compute_range,
    entropy_threshold,
    kl_divergences,
    mse_threshold,
    percentile_threshold,
)

CLIPPING = ("percentile", "entropy", "mse")
METHODS = ("minmax", *CLIPPING)


def hist_of(x: np.ndarray, num_bins: int = 2048) -> StreamingHistogram:
    h = StreamingHistogram(num_bins)
    h.update(x.astype(np.float32))
    return h


def gaussian_with_outliers(n: int = 1_000_000, seed: int = 0) -> np.ndarray:
    """N(0, 1) and four huge values (4e-6 of the data: fewer than 99.999% percentile clips)."""
    x = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    x[:4] = [40.0, -35.0, 55.0, 30.0]
    return x


def loop_kl(bins: np.ndarray, levels: int, i: int) -> float:
    """TensorRT's recipe for one candidate, written plainly."""
    p = bins[:i].astype(np.float64).copy()
    p[i - 1] += bins[i:].sum()
    q = np.zeros(i)
    level = np.arange(i) * levels // i
    for lv in range(levels):
        members = np.flatnonzero((level == lv) & (bins[:i] > 0))
        if len(members):
            q[members] = bins[:i][level == lv].sum() / len(members)
    p, q = p / p.sum(), q / q.sum()
    if np.any((p > 0) & (q == 0)):
        return math.inf
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / q[nz])))


def test_kl_on_a_hand_computed_case() -> None:
    # bins [1, 3, 0, 2] into 2 levels. i=2: P = [1, 5]/6, Q = [1, 3]/4.
    # i=3: P = [1, 3, 2]/6 but Q = [2, 2, 0]/4 has nothing where P has the clipped 2: infinite.
    # i=4: P = [1, 3, 0, 2]/6, Q = [2, 2, 0, 2]/6 (level 1 = bins 2, 3: the empty bin stays empty).
    kl = kl_divergences(np.array([1.0, 3.0, 0.0, 2.0]), 2)
    expected = [
        1 / 6 * math.log((1 / 6) / (1 / 4)) + 5 / 6 * math.log((5 / 6) / (3 / 4)),
        math.inf,
        1 / 6 * math.log(1 / 2) + 3 / 6 * math.log(3 / 2),
    ]
    np.testing.assert_allclose(kl, expected, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kl_matches_a_plain_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    bins = np.floor(rng.exponential(50, 300) * rng.exponential(1, 300)).astype(np.int64)
    bins[rng.random(300) < 0.2] = 0  # empty bins, as in sparse tails
    bins[0] = 5000
    fast = kl_divergences(bins, 16)
    slow = np.array([loop_kl(bins, 16, i) for i in range(16, 301)])
    assert np.array_equal(np.isinf(fast), np.isinf(slow))
    finite = np.isfinite(slow)
    np.testing.assert_allclose(fast[finite], slow[finite], rtol=1e-9, atol=1e-12)


def test_kl_is_zero_when_nothing_is_lost() -> None:
    assert kl_divergences(np.array([4.0, 4.0, 4.0, 4.0]), 2)[-1] == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("method", CLIPPING)
def test_outliers_are_clipped(method: str) -> None:
    h = hist_of(gaussian_with_outliers())
    r = compute_range(h, method, "x")
    assert r.absmax < 0.5 * h.absmax, r  # mse keeps most: four outliers still weigh in squared error
    assert r.absmax > 3.0  # but the Gaussian itself is kept


def test_entropy_and_percentile_land_in_the_gaussian_tail() -> None:
    h = hist_of(gaussian_with_outliers())
    assert 3.5 < compute_range(h, "entropy", "x").absmax < 6.0
    assert compute_range(h, "percentile", "x").hi == pytest.approx(4.42, abs=0.25)  # 99.999% of |N(0,1)|


@pytest.mark.parametrize("method", METHODS)
def test_uniform_data_keeps_nearly_all_of_its_range(method: str) -> None:
    h = hist_of(np.random.default_rng(1).uniform(-3, 3, 500_000))
    r = compute_range(h, method, "u")
    assert r.lo <= -0.98 * 3 and r.hi >= 0.98 * 3


def test_entropy_differs_from_minmax_only_where_it_should() -> None:
    rng = np.random.default_rng(2)
    heavy = hist_of(rng.standard_t(2, 300_000))  # heavy tails: clip
    flat = hist_of(rng.uniform(0, 1, 300_000))  # nothing to gain from clipping
    assert entropy_threshold(heavy) < 0.2 * heavy.absmax
    assert entropy_threshold(flat) == pytest.approx(flat.absmax, rel=1e-3)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "data",
    [
        lambda r: r.standard_normal(50_000),
        lambda r: np.maximum(r.standard_normal(50_000) * 3, 0),  # ReLU output
        lambda r: -r.exponential(2, 50_000),  # all negative
        lambda r: r.standard_normal(50_000) + 10,  # all positive, away from zero
        lambda r: np.concatenate([r.standard_normal(50_000), [-500.0]]),  # one-sided outlier
        lambda r: np.array([2.5]),
    ],
)
def test_never_wider_than_minmax(method: str, data: object) -> None:
    x = data(np.random.default_rng(3)).astype(np.float32)  # type: ignore[operator]
    h = hist_of(x)
    r = compute_range(h, method, "t")
    assert x.min() <= r.lo <= r.hi <= x.max()
    if x.min() >= 0:
        assert r.lo == x.min()  # never-negative tensors keep their minimum (0 after a ReLU)


def test_relu_output_starts_at_zero() -> None:
    h = hist_of(np.maximum(gaussian_with_outliers(), 0))
    for method in METHODS:
        r = compute_range(h, method, "relu")
        assert r.lo == 0.0 and r.hi > 3.0


def test_percentile_matches_numpy() -> None:
    x = np.random.default_rng(4).standard_normal(400_000) * 2
    h = hist_of(x)
    for p in (99.0, 99.9, 99.99):
        assert percentile_threshold(h, p) == pytest.approx(np.percentile(np.abs(x), p), abs=2 * h.bin_width)
    assert percentile_threshold(h, 100.0) == h.absmax


def test_mse_threshold_is_near_the_true_best() -> None:
    """Quantize the real samples at many thresholds; the histogram's pick must be close to the best."""
    x = np.random.default_rng(5).laplace(0, 1, 200_000).astype(np.float32)

    def true_mse(t: float) -> float:
        step = t / 127
        q = np.clip(np.round(x / step), -127, 127) * step
        return float(np.mean((q - x) ** 2))

    picked = mse_threshold(hist_of(x))
    grid = np.linspace(0.5, float(np.abs(x).max()), 300)
    best = min(true_mse(t) for t in grid)
    assert true_mse(picked) <= 1.03 * best
    assert picked < 0.9 * np.abs(x).max()


def test_all_zero_tensor() -> None:
    h = hist_of(np.zeros(100))
    for method in METHODS:
        r = compute_range(h, method, "z")
        assert (r.lo, r.hi) == (0.0, 0.0)


def test_entropy_is_fast_enough_for_a_large_network() -> None:
    rng = np.random.default_rng(6)
    hists = [hist_of(np.maximum(rng.standard_normal(20_000) * s, 0)) for s in np.geomspace(0.1, 10, 20)]
    start = time.perf_counter()
    for _ in range(5):  # 100 tensors of 2048 bins
        for h in hists:
            entropy_threshold(h)
    assert time.perf_counter() - start < 5.0


def test_unknown_method_and_empty_histogram() -> None:
    with pytest.raises(ValueError, match="no values"):
        compute_range(StreamingHistogram(16), "minmax", "t")
    with pytest.raises(UsageError, match="unknown calibration method 'kl'; choose one of minmax, percentile"):
        compute_range(hist_of(np.ones(3)), "kl", "t")
