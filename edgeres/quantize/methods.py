"""From a :class:`StreamingHistogram` to a :class:`TensorRange`, by minmax, percentile, entropy or mse.

Every method picks a threshold ``t`` on |x| and clips the observed range to it:
``[max(min, -t), min(max, t)]``, so no range is ever wider than minmax, and a tensor that is
never negative (a ReLU output) keeps its observed minimum (0) as ``lo``. Thresholds are bin
edges of the histogram trimmed to its last non-empty bin (between ``num_bins/2`` and
``num_bins`` bins, since the histogram's range grows by powers of two).

``entropy`` follows NVIDIA's calibrator (Migacz, "8-bit Inference with TensorRT", GTC 2017) as
published in pytorch-quantization's ``_compute_amax_entropy``: the zero bin is given the count
of bin 1 (a ReLU's zeros are exact in int8 and would otherwise dominate the divergence); for
each candidate i from ``num_quantized_bins`` to the number of bins, P is bins[:i] with the
clipped counts added to its last bin, Q is bins[:i] merged into ``num_quantized_bins`` levels
(bin j in level j*levels//i) and spread evenly over each level's non-empty bins, and the largest
i with the least KL(P||Q) wins. All candidates are evaluated at once from prefix sums, O(levels)
each, instead of O(i).

``mse`` minimizes the expected squared error of symmetric 8-bit quantization with step
``t / 127`` (``t / 255`` for a never-negative tensor), values uniform within each bin: |x| >= t
costs its clipping error (|x| - t)^2, |x| below half a step rounds to zero and costs x^2, and
the rest costs the uniform rounding noise step^2 / 12. O(1) per candidate, every bin edge tried.
"""

from __future__ import annotations

import functools
from typing import cast

import numpy as np

from edgeres.errors import UsageError
from edgeres.quantize.histogram import StreamingHistogram
from edgeres.quantize.ranges import TensorRange
from edgeres.quantize.settings import CalibrationSettings, Method, get_method

__all__ = [
    "clip_range",
    "compute_range",
    "entropy_method",
    "entropy_threshold",
    "kl_divergences",
    "minmax_method",
    "minmax_range",
    "mse_errors",
    "mse_method",
    "mse_threshold",
    "percentile_method",
    "percentile_threshold",
]


def compute_range(
    hist: StreamingHistogram,
    method: Method,
    name: str,
    *,
    percentile: float = 99.999,
    num_quantized_bins: int = 128,
) -> TensorRange:
    """The range of tensor ``name`` by the histogram ``method`` (see the module docstring)."""
    if hist.count == 0:
        raise ValueError(f"no values were collected for {name}")
    spec = get_method(method)
    if spec.kind != "histogram":
        raise UsageError(f"calibration method '{method}' needs the model and images, not a histogram")
    settings = CalibrationSettings(
        method=method, percentile=percentile, num_quantized_bins=num_quantized_bins
    )
    return cast(TensorRange, spec.load()(hist, name, settings))


# The histogram methods as registered in edgeres.quantize.settings: (hist, name, settings) -> range.
def minmax_method(hist: StreamingHistogram, name: str, settings: CalibrationSettings) -> TensorRange:
    return minmax_range(hist, name)


def percentile_method(hist: StreamingHistogram, name: str, settings: CalibrationSettings) -> TensorRange:
    return clip_range(hist, percentile_threshold(hist, settings.percentile), name)


def entropy_method(hist: StreamingHistogram, name: str, settings: CalibrationSettings) -> TensorRange:
    return clip_range(hist, entropy_threshold(hist, settings.num_quantized_bins), name)


def mse_method(hist: StreamingHistogram, name: str, settings: CalibrationSettings) -> TensorRange:
    return clip_range(hist, mse_threshold(hist), name)


def minmax_range(hist: StreamingHistogram, name: str) -> TensorRange:
    return TensorRange(name, float(hist.min), float(hist.max))


def clip_range(hist: StreamingHistogram, threshold: float, name: str) -> TensorRange:
    """The observed range clipped to [-threshold, threshold] (never wider than minmax)."""
    t = max(float(threshold), 0.0)
    lo, hi = float(hist.min), float(hist.max)
    return TensorRange(name, min(max(lo, -t), hi), max(min(hi, t), lo))


def _trimmed(hist: StreamingHistogram) -> np.ndarray:
    """|x| counts up to the last non-empty bin, as float64."""
    counts = hist.abs_counts
    used = np.flatnonzero(counts)
    return counts[: int(used[-1]) + 1].astype(np.float64) if len(used) else counts[:1].astype(np.float64)


def percentile_threshold(hist: StreamingHistogram, percentile: float) -> float:
    """The ``percentile``-th percentile of |x| (0 < percentile <= 100), interpolated within its bin."""
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    if percentile == 100.0 or hist.limit == 0.0:  # all of it; or every value is 0, or none was seen
        return hist.absmax
    counts = _trimmed(hist)
    cum = np.cumsum(counts)
    target = cum[-1] * percentile / 100.0
    # the first bin whose cumulative count reaches the target; target > 0, so that bin is not empty
    j = int(np.searchsorted(cum, target, side="left"))
    below = cum[j - 1] if j else 0.0
    return min((j + (target - below) / counts[j]) * hist.bin_width, hist.absmax)


#: Divergences closer than this to the least one count as equal to it (rounding is ~1e-15 at most).
_KL_TIE = 1e-12


@functools.lru_cache(maxsize=8)
def _level_bounds(num_quantized_bins: int, max_bins: int) -> np.ndarray:
    """Row i - levels: the first bin of each of the levels (and i at the end) for candidate i."""
    nq = num_quantized_bins
    i = np.arange(nq, max_bins + 1, dtype=np.int64)[:, None]
    bounds = (np.arange(nq + 1, dtype=np.int64)[None, :] * i + nq - 1) // nq  # ceil(l * i / nq)
    bounds.setflags(write=False)
    return bounds


def kl_divergences(counts: np.ndarray, num_quantized_bins: int, start: int | None = None) -> np.ndarray:
    """KL(P||Q) for each candidate threshold i in ``start..len(counts)`` (``start`` defaults to levels).

    P is counts[:i] with counts[i:] added to its last bin; Q is counts[:i] quantized into
    ``num_quantized_bins`` levels (bin j in level j*levels//i) and expanded back over each level's
    non-empty bins (zeros stay zeros). Infinite where P has mass that Q lacks (the last kept bin is
    empty but values were clipped).
    """
    b = np.asarray(counts, dtype=np.float64)
    n, nq = len(b), num_quantized_bins
    start = nq if start is None else start
    if not nq <= start <= n:
        raise ValueError(f"candidates need {nq} <= start <= {n}, got start={start}")
    total = b.sum()
    # prefix sums: [:, 0] counts, [:, 1] non-empty bins, [:, 2] b*log(b), over b[:k]
    prefix = np.zeros((n + 1, 3))
    np.cumsum(b, out=prefix[1:, 0])
    np.cumsum(b > 0, out=prefix[1:, 1])
    np.cumsum(b * np.log(b, out=np.zeros(n), where=b > 0), out=prefix[1:, 2])
    bounds = _level_bounds(nq, 1 << (n - 1).bit_length())[start - nq : n - nq + 1]  # few sizes: cached
    per_level = np.diff(prefix[bounds, :2], axis=1)  # (candidates, levels, [mass, non-empty bins])
    mass, filled = per_level[..., 0], per_level[..., 1]
    # sum over levels of mass * log(mass / filled): every kept value's log Q count, summed
    has_mass = mass > 0
    log_mean = np.log(mass, out=np.zeros_like(mass), where=has_mass)
    log_mean -= np.log(filled, out=np.zeros_like(filled), where=has_mass)
    i = np.arange(start, n + 1)
    kept, last = prefix[i, 0], b[i - 1]  # Q's total; the last kept bin
    with np.errstate(divide="ignore", invalid="ignore"):
        log_kept = np.log(np.where(kept > 0, kept, 1.0))
        # the bins before the last kept one: sum of P_j log(P_j / Q_j), P_j = b_j/T, Q_j = mean/kept
        head = (
            prefix[i - 1, 2]
            + prefix[i - 1, 0] * (log_kept - np.log(total))
            - ((mass * log_mean).sum(axis=1) - last * log_mean[:, -1])
        ) / total
        p_last = (last + total - kept) / total
        q_last = np.where(last > 0, np.exp(log_mean[:, -1]), 0.0) / np.where(kept > 0, kept, 1.0)
        # P has mass where Q has none (the last kept bin is empty, values were clipped, or
        # nothing is kept): p log(p / 0) is infinite, as the divergence is
        tail = np.where(p_last > 0, p_last * np.log(p_last / q_last), 0.0)
    kl = head + tail
    return np.maximum(kl, 0.0)  # rounding can leave -1e-17 where P == Q


def entropy_threshold(hist: StreamingHistogram, num_quantized_bins: int = 128) -> float:
    """TensorRT's KL-divergence threshold on |x| (see the module docstring)."""
    counts = _trimmed(hist)
    if len(counts) <= num_quantized_bins or hist.limit == 0.0:
        return hist.absmax
    counts[0] = counts[1]  # the last bin is not empty and comes after bin 1: counts still sum > 0
    kl = kl_divergences(counts, num_quantized_bins)
    # The largest threshold among equals; the prefix sums leave ~1e-16 of rounding where two
    # candidates' divergences are equal (e.g. both 0), which must not decide between them.
    tied = np.flatnonzero(kl <= kl.min() + _KL_TIE)
    best = int(tied[-1])
    return min((best + num_quantized_bins) * hist.bin_width, hist.absmax)


def mse_threshold(hist: StreamingHistogram) -> float:
    """The threshold with the least expected 8-bit quantization error (see the module docstring)."""
    if hist.limit == 0.0:
        return hist.absmax
    counts = _trimmed(hist)
    error = mse_errors(counts, 255.0 if hist.min >= 0.0 else 127.0)
    best = int(np.argmin(error))
    return min(float(best + 1) * hist.bin_width, hist.absmax)


def mse_errors(counts: np.ndarray, steps: float) -> np.ndarray:
    """Expected squared error, in bins squared, of clipping at each candidate t = 1..len(counts) bins.

    Bin j holds ``counts[j]`` values spread uniformly over [j, j+1); quantization has ``steps``
    steps of ``t / steps`` up to t (see the module docstring).
    """
    if not steps >= 1.0:
        raise ValueError(f"steps must be at least 1, got {steps!r}")
    counts = np.asarray(counts, dtype=np.float64)
    n = len(counts)
    j = np.arange(n, dtype=np.float64)
    zero = np.zeros(1)
    c0 = np.concatenate([zero, np.cumsum(counts)])
    c2 = np.concatenate([zero, np.cumsum(counts * (3 * j * j + 3 * j + 1) / 3.0)])  # sum of v^2
    s0, s1, s2 = (
        np.concatenate([np.cumsum(v[::-1])[::-1], zero]) for v in (counts, counts * j, counts * j * j)
    )
    k = np.arange(1, n + 1, dtype=np.float64)  # candidate thresholds t = k bins
    ki = k.astype(np.int64)
    # values >= t: sum over bins j >= k of E[(v - k)^2] = (3(j-k)^2 + 3(j-k) + 1) / 3 per value
    clip = (3 * s2[ki] - 6 * k * s1[ki] + 3 * k * k * s0[ki] + 3 * s1[ki] - 3 * k * s0[ki] + s0[ki]) / 3.0
    step = k / steps
    half = step / 2.0  # below half a step: rounds to zero; steps >= 1, so half <= k / 2
    hb = np.floor(half).astype(np.int64)  # the bin holding half a step: hb <= n / 2 < n
    part = half - hb
    below_count = c0[hb] + counts[hb] * part
    below_sq = c2[hb] + counts[hb] * (half**3 - hb.astype(np.float64) ** 3) / 3.0
    noise = (c0[ki] - below_count) * step * step / 12.0
    return below_sq + noise + np.maximum(clip, 0.0)
