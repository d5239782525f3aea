"""What every data source shares: the one-line error and the raw arrays a source yields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


class DataError(ValueError):
    """A data spec or data file that cannot be used; the message is one line naming the problem."""


@dataclass
class _Raw:
    """What a source yields before the common pipeline: N×C×… arrays and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    meta: dict[str, Any]


def _stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded permutation of ``range(len(y))`` whose every prefix is close to class-proportional.

    Shuffle, then sort by each example's fractional rank within its class, (rank + ½) / class size
    (Webster's apportionment): taking the first k gives each class about k · its share, and the
    first k for k = number of classes takes one of each when the classes are balanced.
    """
    perm = rng.permutation(len(y))
    yp = y[perm]
    _, inverse, counts = np.unique(yp, return_inverse=True, return_counts=True)
    by_class = np.argsort(inverse, kind="stable")  # stable: keeps shuffled order within a class
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(y), dtype=np.float64)
    rank[by_class] = np.arange(len(y)) - np.repeat(starts, counts)
    key = (rank + 0.5) / counts[inverse]
    return perm[np.argsort(key, kind="stable")]
