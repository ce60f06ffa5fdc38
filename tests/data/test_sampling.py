from __future__ import annotations

import numpy as np
import pytest

from edgeres.data import split_indices, stratified_sample
from edgeres.errors import UsageError


def _unbalanced() -> np.ndarray:
    # 5 classes with 50, 30, 11, 7 and 2 members, shuffled.
    labels = np.repeat(np.arange(5), [50, 30, 11, 7, 2])
    return np.random.default_rng(5).permutation(labels)


@pytest.mark.parametrize("size", [1, 7, 10, 33, 64, 99])
def test_stratified_counts_are_within_one_of_proportional(size: int) -> None:
    labels = _unbalanced()
    idx = stratified_sample(labels, size, seed=3)
    assert len(idx) == size == len(set(idx.tolist()))
    assert idx.dtype == np.int64 and (np.diff(idx) > 0).all()
    counts = np.bincount(labels[idx], minlength=5)
    share = np.bincount(labels) * size / len(labels)
    assert (np.abs(counts - share) < 1).all(), (counts, share)


def test_same_seed_same_indices_other_seed_other_indices() -> None:
    labels = _unbalanced()
    a = stratified_sample(labels, 20, seed=0)
    np.testing.assert_array_equal(a, stratified_sample(labels, 20, seed=0))
    assert not np.array_equal(a, stratified_sample(labels, 20, seed=1))


def test_all_unknown_labels_give_a_random_sample() -> None:
    labels = np.full(100, -1)
    a = stratified_sample(labels, 10, seed=0)
    assert len(set(a.tolist())) == 10 and a.max() < 100
    assert not np.array_equal(a, np.arange(10))
    np.testing.assert_array_equal(a, stratified_sample(labels, 10, seed=0))


def test_size_at_least_n_returns_everything() -> None:
    labels = np.array([0, 1, 1, 2])
    np.testing.assert_array_equal(stratified_sample(labels, 4), np.arange(4))
    np.testing.assert_array_equal(stratified_sample(labels, 100), np.arange(4))
    assert len(stratified_sample(labels, 0)) == 0
    with pytest.raises(UsageError):
        stratified_sample(labels, -1)


def test_split_is_disjoint_complete_stratified_and_deterministic() -> None:
    labels = _unbalanced()
    train, val = split_indices(labels, 0.2, seed=4)
    assert len(val) == 20 and len(train) == 80
    assert not set(train.tolist()) & set(val.tolist())
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(100))
    counts = np.bincount(labels[val], minlength=5)
    assert (np.abs(counts - np.bincount(labels) * 0.2) < 1).all()
    train2, val2 = split_indices(labels, 0.2, seed=4)
    np.testing.assert_array_equal(train, train2)
    np.testing.assert_array_equal(val, val2)


def test_split_by_count_and_size() -> None:
    train, val = split_indices(10, val_size=3, seed=0)
    assert len(val) == 3 and len(train) == 7 and not set(train) & set(val)
    np.testing.assert_array_equal(val, split_indices(10, val_size=3, seed=0)[1])
    for bad in ({"val_fraction": 0.0}, {"val_fraction": 1.5}, {"val_size": 10}, {}):
        with pytest.raises(UsageError):
            split_indices(10, **bad)
    with pytest.raises(UsageError, match="not both"):
        split_indices(10, 0.5, val_size=2)
    with pytest.raises(UsageError, match="at least 2"):
        split_indices(1, 0.5)
