"""Deterministic, class-stratified sampling and train/validation splits."""

from __future__ import annotations

import numpy as np

from edgeres.errors import UsageError

__all__ = ["split_indices", "stratified_sample"]


def _quotas(counts: np.ndarray, size: int) -> np.ndarray:
    """Per-group sample sizes proportional to ``counts`` and summing to ``size``.

    Each group gets the floor of its share; the remainder goes one each to the groups with
    the largest fractional parts (ties: the earlier group), so it never depends on the seed.
    """
    exact = counts * (size / counts.sum())
    quota = np.floor(exact).astype(np.int64)
    left = size - int(quota.sum())
    if left:
        order = np.lexsort((np.arange(len(counts)), -(exact - quota)))
        quota[order[:left]] += 1
    return np.minimum(quota, counts)


def stratified_sample(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Indices (sorted, int64) of ``size`` items drawn without replacement, stratified by label.

    Every label value, -1 included, is a stratum, so all-unknown labels give a plain random
    sample. Each class gets within one of its proportional share. The same labels, size and
    seed always give the same indices. ``size >= len(labels)`` returns every index.
    """
    labels = np.asarray(labels).reshape(-1)
    n = len(labels)
    if size < 0:
        raise UsageError(f"sample size must be zero or more, got {size}")
    if size >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    values, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = _quotas(counts, size)
    picked = []
    for group in range(len(values)):
        members = np.flatnonzero(inverse == group)
        picked.append(rng.permutation(members)[: quota[group]])
    return np.sort(np.concatenate(picked)).astype(np.int64)


def split_indices(
    data: np.ndarray | int,
    val_fraction: float | None = None,
    *,
    val_size: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Split into (train, validation) index arrays: disjoint, sorted, stratified, deterministic.

    ``data`` is the labels array (stratified by class) or a plain count ``n`` (random split).
    Give exactly one of ``val_fraction`` (0 < f < 1) or ``val_size`` (1 .. n-1).
    """
    labels = np.full(data, -1, np.int64) if isinstance(data, (int, np.integer)) else np.asarray(data)
    n = len(labels)
    if (val_fraction is None) == (val_size is None):
        raise UsageError("give either a validation fraction or a validation size, not both or neither")
    if n < 2:
        raise UsageError(f"cannot split {n} image(s) into training and validation sets; need at least 2")
    if val_fraction is not None:
        if not 0.0 < val_fraction < 1.0:
            raise UsageError(f"validation fraction must be between 0 and 1, got {val_fraction}")
        val_size = min(max(round(n * val_fraction), 1), n - 1)
    assert val_size is not None
    if not 1 <= val_size < n:
        raise UsageError(f"validation size must be between 1 and {n - 1} for {n} images, got {val_size}")
    val = stratified_sample(labels, val_size, seed)
    mask = np.ones(n, dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask).astype(np.int64), val
