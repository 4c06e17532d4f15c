"""The labeled subset: how many, how they fall in the classes, and the seeded stratified draw."""

from __future__ import annotations

import numpy as np

from tiedae.data.checks import listed
from tiedae.data.splits import Splits


def labeled_count(n_train: int, count: int | str | None, fraction: float | None) -> int:
    """How many labeled images ``labels.count`` / ``labels.fraction`` ask for out of n_train."""
    if fraction is not None:
        return max(1, round(fraction * n_train))
    if count is None or count == "all":
        return n_train
    return int(count)


def labels_per_class(splits: Splits, labeled: np.ndarray) -> np.ndarray:
    """How many of the ``labeled`` training images fall in each of the dataset's classes."""
    return np.bincount(splits.y_train[labeled], minlength=splits.n_classes)


def labeled_shortfall(per_class: np.ndarray, needed: int) -> str | None:
    """How many classes have fewer than ``needed`` labeled images and which, in words, e.g.
    ``5 of the 10 classes without a labeled image (5, 6, 7, 8, 9)``; None when none has."""
    short = np.flatnonzero(per_class < needed).tolist()
    if not short:
        return None
    classes = f"{len(short)} of the {len(per_class)} classes"
    if needed == 1:
        return f"{classes} without a labeled image ({listed(short)})"
    empty = int((per_class == 0).sum())
    none = f"; {empty} with none" if empty else ""
    return f"{classes} with fewer than {needed} labeled images ({listed(short)}{none})"


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of ``size`` examples whose class proportions follow ``labels``.

    Per class, a seeded permutation is cut at its share (largest remainder), so the same seed
    always gives the same subset and a smaller subset is contained in a larger one.
    """
    labels = np.asarray(labels)
    if not 0 < size <= len(labels):
        raise ValueError(f"subset size {size} must be in [1, {len(labels)}]")
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * size / len(labels)
    quota = np.floor(exact).astype(int)
    by_remainder = np.argsort(-(exact - quota), kind="stable")
    quota[by_remainder[: size - quota.sum()]] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.permutation(np.flatnonzero(labels == cls))[:take]
        for cls, take in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(chosen))
