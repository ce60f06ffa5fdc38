"""StreamingHistogram: batch by batch equals all at once, exact power-of-two merges, constant memory."""

from __future__ import annotations

import numpy as np
import pytest

from edgeres.quantize.histogram import NonFiniteActivationError, StreamingHistogram, sample_stride


def dyadic(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """Values k/64 * scale: many of them sit exactly on bin edges."""
    return (np.round(rng.standard_normal(n) * 64) / 64 * scale).astype(np.float32)


def one_shot(x: np.ndarray, num_bins: int = 256) -> StreamingHistogram:
    h = StreamingHistogram(num_bins)
    h.update(x)
    return h


def streamed(batches: list[np.ndarray], num_bins: int = 256) -> StreamingHistogram:
    h = StreamingHistogram(num_bins)
    for b in batches:
        h.update(b)
    return h


def extremes(h: StreamingHistogram) -> tuple[float, float, int, list[float]]:
    return h.min, h.max, h.count, h.limits


def reference_abs_counts(x: np.ndarray, limit: float, num_bins: int) -> np.ndarray:
    """|x| counts with numpy in float64: non-negative bins [a, b), negative bins (a, b]."""
    a = np.abs(x.astype(np.float64)) * (num_bins / limit)
    idx = np.where(x >= 0, np.floor(a), np.ceil(a) - 1).astype(np.int64)
    return np.bincount(np.clip(idx, 0, num_bins - 1), minlength=num_bins)


def test_streaming_equals_one_shot_when_the_range_grows() -> None:
    rng = np.random.default_rng(0)
    # growing scales force several power-of-two merges (limit 4 -> 64 or so)
    batches = [dyadic(rng, 5000, s) for s in (1.0, 0.5, 3.0, 10.0, 2.0)]
    everything = np.concatenate(batches)
    h, ref = streamed(batches), one_shot(everything)
    assert h.limit == ref.limit == 2.0 ** np.ceil(np.log2(np.abs(everything).max()))
    assert (h.min, h.max, h.count) == (everything.min(), everything.max(), everything.size)
    np.testing.assert_array_equal(h.counts, ref.counts)
    np.testing.assert_array_equal(h.abs_counts, reference_abs_counts(everything, h.limit, 256))


def test_streaming_equals_one_shot_on_arbitrary_floats() -> None:
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal(20_000).astype(np.float32) * s for s in (0.3, 1.0, 5.0, 40.0, 0.01)]
    everything = np.concatenate(batches)
    h, ref = streamed(batches, 2048), one_shot(everything, 2048)
    assert (h.limits, h.min, h.max, h.count) == (ref.limits, ref.min, ref.max, ref.count)
    # x / width is exact for a power-of-two width, so the bins are exact too
    np.testing.assert_array_equal(h.counts, ref.counts)
    np.testing.assert_array_equal(h.abs_counts, reference_abs_counts(everything, h.limit, 2048))
    assert h.abs_counts.sum() == everything.size


def test_merging_bins_is_exact() -> None:
    rng = np.random.default_rng(2)
    small, big = dyadic(rng, 3000, 0.2), dyadic(rng, 3000, 25.0)
    h = streamed([small])
    before = h.abs_counts.copy()
    factor_limit = h.limit
    h.update(big)
    factor = int(h.limit / factor_limit)
    assert factor >= 8 and factor & (factor - 1) == 0
    alone = one_shot(big, 256)
    assert alone.limit == h.limit
    merged_small = np.zeros(256, np.int64)
    merged_small[: 256 // factor] = before.reshape(-1, factor).sum(axis=1)
    np.testing.assert_array_equal(h.abs_counts, merged_small + alone.abs_counts)


def test_merge_of_two_histograms_equals_one_over_all_data() -> None:
    rng = np.random.default_rng(3)
    a, b = dyadic(rng, 4000, 0.7), dyadic(rng, 4000, 9.0)
    ha, hb = one_shot(a), one_shot(b)
    ha.merge(hb)
    ref = one_shot(np.concatenate([a, b]))
    np.testing.assert_array_equal(ha.counts, ref.counts)
    assert (ha.min, ha.max, ha.count, ha.limit) == (ref.min, ref.max, ref.count, ref.limit)


def test_relu_is_derived_exactly() -> None:
    rng = np.random.default_rng(4)
    x = dyadic(rng, 10_000, 2.0)
    relu = one_shot(x).relu()
    ref = one_shot(np.maximum(x, 0))
    np.testing.assert_array_equal(relu.abs_counts, ref.abs_counts)
    assert relu.counts[0].sum() == 0
    assert (relu.min, relu.max, relu.count) == (0.0, ref.max, ref.count)


def test_negative_and_non_negative_values_are_counted_apart() -> None:
    h = one_shot(np.array([-1.0, -0.5, 0.0, 0.0, 0.25, 1.0], np.float32), 8)
    assert h.limit == 1.0
    assert h.counts[0].sum() == 2 and h.counts[1].sum() == 4
    assert h.counts[1, 0] == 2  # zeros land in the first non-negative bin
    assert h.counts[1, 7] == 1 and h.counts[0, 7] == 1  # +-limit in the last bins
    assert h.counts[0, 3] == 1  # -0.5: negative bins are closed at the top, (3/8, 4/8]


def test_memory_is_constant() -> None:
    rng = np.random.default_rng(5)
    h = StreamingHistogram(2048)
    h.update(rng.standard_normal(1000).astype(np.float32))
    size = h.nbytes
    for scale in np.geomspace(1, 1e4, 50):
        h.update((rng.standard_normal(1000) * scale).astype(np.float32))
    assert h.nbytes == size == 2 * 2048 * 8
    assert h.count == 51_000 and h.abs_counts.sum() == h.count


def test_zeros_first_then_values() -> None:
    h = StreamingHistogram(16)
    h.update(np.zeros((4, 4), np.float32))
    assert h.limit == 0.0 and h.counts[1, 0] == 16 and h.absmax == 0.0
    h.update(np.array([3.0], np.float32))
    assert h.limit == 4.0 and h.counts[1, 0] == 16 and h.counts[1, 12] == 1


def test_other_dtypes_and_empty_arrays() -> None:
    h = StreamingHistogram(16)
    h.update(np.zeros((0, 3), np.float32))
    assert h.count == 0
    h.update(np.array([1.5, -2.0], np.float64))
    h.update(np.array([0.5], np.float16))
    assert (h.min, h.max, h.count) == (-2.0, 1.5, 3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad: float) -> None:
    h = StreamingHistogram(16)
    with pytest.raises(NonFiniteActivationError, match=r"conv7 .*NaN or infinite"):
        h.update(np.array([1.0, bad], np.float32), "conv7")


def test_num_bins_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        StreamingHistogram(1000)


def test_each_sign_keeps_its_own_range() -> None:
    rng = np.random.default_rng(6)
    x = dyadic(rng, 20_000, 1.0)
    x[x < 0] *= 16  # a long negative tail, as before many ReLUs
    batches = np.array_split(x, 7)
    h, ref = streamed(batches), one_shot(x)
    assert h.limits == ref.limits == [2.0 ** np.ceil(np.log2(-x.min())), 2.0 ** np.ceil(np.log2(x.max()))]
    np.testing.assert_array_equal(h.counts, ref.counts)
    np.testing.assert_array_equal(h.abs_counts, reference_abs_counts(x, h.limit, 256))
    relu = h.relu()
    assert relu.limit == h.limits[1]  # the ReLU keeps the resolution of the positive side
    np.testing.assert_array_equal(relu.abs_counts, one_shot(np.maximum(x, 0)).abs_counts)


def test_the_two_signs_stay_within_64x() -> None:
    h = one_shot(np.array([-1000.0, 0.001, 0.5], np.float32), 64)
    assert h.limits == [1024.0, 16.0]
    assert h.counts[1, 0] == 1 and h.counts[1, 2] == 1 and h.counts[0, 62] == 1
    np.testing.assert_array_equal(h.abs_counts.nonzero()[0], [0, 62])


def test_sampled_updates_keep_exact_extremes_and_the_shape() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 64, 28, 28)).astype(np.float32)  # 50176 values per image
    stride = sample_stride(x[0].size, 4096)
    assert stride == 13  # 50176 / 4096 = 12.25 -> 13, a prime not dividing 50176 = 2**10 * 7**2
    full, sampled = one_shot(x, 2048), StreamingHistogram(2048)
    sampled.update(x, stride=stride)
    assert extremes(sampled) == extremes(full)
    assert sampled.binned == len(range(0, x.size, stride))
    cdf_full = np.cumsum(full.abs_counts) / full.binned
    cdf_sampled = np.cumsum(sampled.abs_counts) / sampled.binned
    assert np.abs(cdf_full - cdf_sampled).max() < 0.01
    # every channel is sampled (a stride dividing the size would revisit the same positions)
    channels = (np.arange(0, x.size, stride) // (28 * 28)) % 64
    assert len(np.unique(channels)) == 64


def test_sample_stride() -> None:
    assert sample_stride(1000, None) == 1
    assert sample_stride(1000, 1000) == 1
    assert sample_stride(1001, 1000) == 2  # 1001 = 7 * 11 * 13: 2 does not divide it
    assert sample_stride(1024, 1000) == 3  # 2 divides 1024
    assert sample_stride(802816, 65536) == 13  # resnet50's first conv output, 64 x 112 x 112
    assert sample_stride(7 * 2**10, 1024) == 11  # 7 divides the size: skip it and the non-primes


@pytest.mark.parametrize("stride", [1, 7])
def test_non_negative_updates_equal_the_general_ones(stride: int) -> None:
    rng = np.random.default_rng(5)
    relu = [np.maximum(dyadic(rng, 5000, s), 0.0) for s in (1.0, 3.0, 0.5)]
    positive = [np.abs(dyadic(rng, 5000, 2.0)) + 0.25]  # no zero anywhere: the minimum needs a pass
    for batches in (relu, positive, relu + positive):
        fast, general = StreamingHistogram(256), StreamingHistogram(256)
        for b in batches:
            fast.update(b, stride=stride, nonnegative=True)
            general.update(b, stride=stride)
        assert extremes(fast) == extremes(general)
        np.testing.assert_array_equal(fast.counts, general.counts)
    assert fast.min == 0.0
    only_positive = StreamingHistogram(256)
    only_positive.update(positive[0], nonnegative=True)
    assert only_positive.min == float(positive[0].min()) > 0.0


def test_non_negative_updates_check_what_they_were_told() -> None:
    h = StreamingHistogram(256)
    with pytest.raises(ValueError, match=r"said to be non-negative but holds -1\.5"):
        h.update(np.array([2.0, -1.5, 3.0], np.float32), nonnegative=True)
    with pytest.raises(NonFiniteActivationError, match="holds NaN"):
        StreamingHistogram(256).update(np.array([1.0, np.nan], np.float32), nonnegative=True)
