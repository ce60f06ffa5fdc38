"""A constant-memory histogram of |x| for one activation tensor, updated batch by batch.

Negative and non-negative values are counted in two rows of equal bins by |x|, each over
[0, limit] with its own power-of-two ``limit``. When a batch holds a value beyond a limit, the
limit doubles (as often as needed) and each 2**k adjacent bins merge into one. Bin widths are
powers of two, so ``floor(x / width)`` is exact and the merge is exact: after any number of
batches the histogram equals the one of all the data at once. Separate rows let
:meth:`StreamingHistogram.relu` derive the histogram of ``max(x, 0)`` exactly, at the resolution
of the positive side, without asking ONNX Runtime for the ReLU's output. Min and max are exact.
Bins of negative values are closed at the top, (k*w, (k+1)*w], those of the others at the
bottom, [k*w, (k+1)*w); zero lands in the first non-negative bin.

Speed, measured here (2 shared x86 cores, per value, float32): with one torch thread, chunks of
x * (1/width) -> floor -> int32 -> ``torch.bincount`` cost 2.7 ns; ``torch.histc`` 4.6 ns (and
rounds x + limit, moving ~1e-4 of values to a neighbouring bin); numpy's ``floor`` + ``bincount``
3.5 ns; ``torch.aminmax`` 0.4 ns. With 2 torch threads on 8M values ``histc`` took 40 ms, numpy
``bincount`` 64 ms, ``np.histogram`` 105 ms, ``torch.histogram`` 147 ms; but torch's OpenMP
threads wait for each other after every call, which made updates 15-100x slower whenever another
process was busy on the cores, so :func:`~edgeres.quantize.collect.collect_statistics` runs
updates single-threaded on a thread pool. Even so the histograms can cost as much as the
convolutions that make the values, hence ``stride``: bin a systematic sample, keep min/max exact.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch

from edgeres.errors import EdgeresError

__all__ = ["NonFiniteActivationError", "StreamingHistogram", "sample_stride"]

# Values are binned in chunks through two reused per-thread buffers that stay in cache.
_CHUNK = 1 << 17
_LOCAL = threading.local()
# The two signs' limits stay within this factor (a batch then needs at most 65 * num_bins bins).
_MAX_RATIO = 64.0


class NonFiniteActivationError(EdgeresError):
    """A calibrated tensor held NaN or infinity."""


class StreamingHistogram:
    """Counts of |x| in ``num_bins`` equal bins, plus the exact min and max of x.

    ``counts[0]`` counts the negative values over [0, ``limits[0]``], ``counts[1]`` the others
    over [0, ``limits[1]``]; each side has its own power-of-two limit (at most 64x apart), so a
    ReLU derived from a tensor with a long negative tail keeps its full resolution.
    :attr:`abs_counts` is the histogram of |x| over [0, :attr:`limit`]. Memory is
    ``2 * num_bins`` int64, whatever the number of updates. :attr:`count` is the number of
    values seen, :attr:`binned` the number in the bins (fewer when updates were sampled).
    """

    def __init__(self, num_bins: int = 2048) -> None:
        if num_bins < 2 or num_bins & (num_bins - 1):
            raise ValueError(f"num_bins must be a power of two, got {num_bins}")
        self.num_bins = num_bins
        self.counts = np.zeros((2, num_bins), dtype=np.int64)
        self.limits = [0.0, 0.0]  # 0 until a non-zero value of that sign arrives; then a power of two
        self.min = math.inf
        self.max = -math.inf
        self.count = 0

    # -- updating -------------------------------------------------------------------------

    def update(
        self, x: np.ndarray, name: str = "tensor", *, stride: int = 1, nonnegative: bool = False
    ) -> None:
        """Add the values of ``x`` (any shape; converted to float32 if needed).

        With ``stride`` > 1 only every ``stride``-th value (in memory order) goes into the bins,
        a systematic sample; :attr:`min`, :attr:`max` and :attr:`count` still see every value.
        ``nonnegative`` says that no value of ``x`` is below zero (a ReLU's output): the maximum
        is then found alone (numpy's max reads 2x faster than torch's aminmax here), and the
        minimum is 0 when the sample holds a zero, found in a second pass only when it does not.
        """
        array = np.ascontiguousarray(x, dtype=np.float32)
        flat = torch.from_numpy(array).reshape(-1)
        n = flat.numel()
        if n == 0:
            return
        if nonnegative:
            lo, hi = 0.0, float(array.max())
        else:
            lo_t, hi_t = torch.aminmax(flat)
            lo, hi = float(lo_t), float(hi_t)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise NonFiniteActivationError(
                f"{name} holds NaN or infinite values on the calibration images; check the model "
                "and the preprocessing (mean/std) before calibrating"
            )
        self.max = max(self.max, hi)
        self.count += n
        self._cover(max(-lo, 0.0), max(hi, 0.0))
        sample = flat[::stride] if stride > 1 else flat
        smallest = self._bin(sample, find_smallest=nonnegative)
        if nonnegative and smallest != 0.0:
            lo = float(array.min())
            if lo < 0.0:
                raise ValueError(f"{name} was said to be non-negative but holds {lo}")
        self.min = min(self.min, lo)

    def _bin(self, sample: torch.Tensor, *, find_smallest: bool = False) -> float:
        """Count ``sample`` into the bins (which cover it).

        With ``find_smallest``, returns its smallest value over the bin width (else infinity).
        """
        m = sample.numel()
        neg, pos = self.limits
        if neg == pos == 0.0:  # everything so far is exactly zero
            self.counts[1, 0] += m
            return 0.0
        # Bins over [-neg, pos] as fine as the finer side's; a side with no values yet borrows
        # the other's limit. The width is a power of two, so x / width and its floor are exact:
        # bin floor(x / width) + n_neg, with zero in the first non-negative bin.
        neg, pos = (neg or pos), (pos or neg)
        width = min(neg, pos) / self.num_bins
        n_neg, n_pos = round(neg / width), round(pos / width)
        scaled, index = _buffers()
        both = torch.zeros(n_neg + n_pos, dtype=torch.int64)
        smallest = math.inf
        for start in range(0, m, _CHUNK):
            part = sample[start : start + _CHUNK]
            k = part.numel()
            f = torch.mul(part, 1.0 / width, out=scaled[:k])
            if find_smallest:  # 0 exactly when part holds a 0: the width is a power of two
                smallest = min(smallest, float(f.min()))
            f.floor_()
            i = index[:k]
            i.copy_(f)
            both += torch.bincount(i.add_(n_neg).clamp_(0, n_neg + n_pos - 1), minlength=n_neg + n_pos)
        counts = both.numpy()
        self.counts[0] += _collapse(counts[n_neg - 1 :: -1], self.num_bins)  # reversed into |x| order
        self.counts[1] += _collapse(counts[n_neg:], self.num_bins)
        return smallest

    def _cover(self, neg: float, pos: float) -> None:
        """Grow each side's limit by powers of two to cover ``neg``/``pos``, merging bins exactly."""
        for side, needed in enumerate((neg, pos)):
            self._grow(side, _power_of_two_above(needed))
        big = max(self.limits)
        for side in (0, 1):
            if 0.0 < self.limits[side] < big / _MAX_RATIO:
                self._grow(side, big / _MAX_RATIO)

    def _grow(self, side: int, limit: float) -> None:
        old = self.limits[side]
        if limit <= old:
            return
        self.limits[side] = limit
        if old > 0.0:  # with no limit yet, only zeros were counted (bin 0 of any range)
            self.counts[side] = _collapse(self.counts[side], self.num_bins, round(limit / old))

    def merge(self, other: StreamingHistogram) -> None:
        """Add ``other``'s data (same ``num_bins``) to this histogram, exactly."""
        if other.num_bins != self.num_bins:
            raise ValueError(f"cannot merge histograms of {other.num_bins} and {self.num_bins} bins")
        if other.count == 0:
            return
        self._cover(*other.limits)
        theirs = other.copy()
        theirs._cover(*self.limits)
        self.counts += theirs.counts
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)
        self.count += other.count

    # -- reading --------------------------------------------------------------------------

    @property
    def limit(self) -> float:
        """Upper end of the |x| histogram: the larger side's limit (0 while all values are 0)."""
        return max(self.limits)

    @property
    def abs_counts(self) -> np.ndarray:
        """Counts of |x| per bin over [0, :attr:`limit`] (both signs together)."""
        limit, rows = self.limit, []
        for side in (0, 1):
            own = self.limits[side]
            factor = round(limit / own) if own > 0.0 else 1
            rows.append(_collapse(self.counts[side], self.num_bins, factor))
        return rows[0] + rows[1]

    @property
    def binned(self) -> int:
        return int(self.counts.sum())

    @property
    def bin_width(self) -> float:
        return self.limit / self.num_bins

    @property
    def edges(self) -> np.ndarray:
        """The ``num_bins + 1`` bin edges, from 0 to ``limit``."""
        return np.linspace(0.0, self.limit, self.num_bins + 1)

    @property
    def absmax(self) -> float:
        return max(abs(self.min), abs(self.max)) if self.count else 0.0

    @property
    def nbytes(self) -> int:
        return int(self.counts.nbytes)

    def copy(self) -> StreamingHistogram:
        new = StreamingHistogram(self.num_bins)
        new.counts = self.counts.copy()
        new.limits = list(self.limits)
        new.min, new.max, new.count = self.min, self.max, self.count
        return new

    def relu(self) -> StreamingHistogram:
        """The exact histogram of ``max(x, 0)`` over the same values: negatives become zeros."""
        out = self.copy()
        out.counts[1, 0] += out.counts[0].sum()
        out.counts[0] = 0
        out.limits[0] = 0.0
        if self.count:
            out.min, out.max = max(self.min, 0.0), max(self.max, 0.0)
        return out

    def __repr__(self) -> str:
        return (
            f"StreamingHistogram({self.count} values in [{self.min:.4g}, {self.max:.4g}], "
            f"{self.num_bins} bins over |x| <= {self.limit:.4g})"
        )


def _buffers() -> tuple[torch.Tensor, torch.Tensor]:
    """This thread's scratch buffers: float32 for x / width, int32 for bin indices."""
    if not hasattr(_LOCAL, "buffers"):
        _LOCAL.buffers = (torch.empty(_CHUNK, dtype=torch.float32), torch.empty(_CHUNK, dtype=torch.int32))
    buffers: tuple[torch.Tensor, torch.Tensor] = _LOCAL.buffers
    return buffers


def sample_stride(values_per_image: int, budget: int | None) -> int:
    """The ``stride`` that bins about ``budget`` values per image: 1, or a prime not dividing the size.

    A prime that does not divide the per-image size (so none of its dimensions) makes the sample
    visit every spatial position and channel evenly instead of the same columns each time.
    """
    if budget is None or values_per_image <= budget:
        return 1
    k = math.ceil(values_per_image / budget)
    while values_per_image % k == 0 or any(k % d == 0 for d in range(2, math.isqrt(k) + 1)):
        k += 1
    return k


def _power_of_two_above(value: float) -> float:
    """The smallest power of two >= ``value`` (0 for 0)."""
    if value <= 0.0:
        return 0.0
    mantissa, exponent = math.frexp(value)  # value = mantissa * 2**exponent, 0.5 <= mantissa < 1
    return math.ldexp(1.0, exponent - 1) if mantissa == 0.5 else math.ldexp(1.0, exponent)


def _collapse(counts: np.ndarray, num_bins: int, factor: int | None = None) -> np.ndarray:
    """Merge each ``factor`` adjacent bins into one and pad to ``num_bins`` bins.

    ``factor`` None: ``len(counts) // num_bins`` (fold a finer histogram into ``num_bins``).
    """
    if factor is None:
        factor = len(counts) // num_bins
    if factor == 1:
        return counts.copy() if len(counts) == num_bins else counts[:num_bins].copy()
    out = np.zeros(num_bins, dtype=counts.dtype)
    if factor >= len(counts):
        out[0] = counts.sum()
    else:
        merged = counts.reshape(-1, factor).sum(axis=1)
        out[: len(merged)] = merged
    return out
