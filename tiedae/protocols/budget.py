"""Validation inside the label budget (Oliver et al. 2018): a stratified share of the N labels
themselves validates; the dataset's validation split is replaced, so nothing can read it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tiedae.checks import open_fraction, positive_int
from tiedae.data import Splits
from tiedae.protocols import register
from tiedae.protocols.base import HoldsOut, LabeledView, every_label_trains, with_validation


@register("budget")
@dataclass(frozen=True)
class Budget(HoldsOut):
    """``valid_fraction`` of each class's labels validate; with fewer than 2 labels in some
    class, every label trains for ``fixed_epochs`` instead."""

    valid_fraction: float = 0.2
    fixed_epochs: int = 30
    labels_per_class = 2  # one trains, one validates

    @classmethod
    def check(cls, section) -> list[str]:
        problems: list[str] = []
        open_fraction(problems, "protocol.valid_fraction", section.get("valid_fraction"))
        open_fraction(problems, "protocol.pretrain_holdout", section.get("pretrain_holdout"))
        positive_int(problems, "protocol.fixed_epochs", section.get("fixed_epochs"))
        return problems

    def view(self, splits: Splits, labeled: np.ndarray, seed: int) -> LabeledView:
        y = splits.y_train[labeled]
        if not can_split(y):
            return every_label_trains(splits, labeled, self.fixed_epochs)
        train, valid = budget_split(y, self.valid_fraction, seed)
        budget = with_validation(splits, splits.x_train[labeled[valid]], y[valid])
        return LabeledView(budget, labeled[train], "budget", valid_indices=labeled[valid])


def budget_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split labeled examples into (train, valid) positions: ``fraction`` of each class, at least
    one, goes to validation, and at least one stays for training.

    Positions index ``labels`` (the labeled few, not the whole training set). Seeded and
    stratified: the same labels and seed give the same split, whatever method asks. Raises
    ValueError when a class has fewer than 2 examples: nothing to split.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        raise ValueError(f"class {classes[counts.argmin()]} has {counts.min()} labeled example(s)")
    rng = np.random.default_rng([seed, len(labels)])  # not the stream stratified_subset used
    valid = []
    for cls, count in zip(classes, counts, strict=True):
        take = min(count - 1, max(1, round(fraction * count)))
        valid.append(rng.permutation(np.flatnonzero(labels == cls))[:take])
    valid_positions = np.sort(np.concatenate(valid))
    train_positions = np.setdiff1d(np.arange(len(labels)), valid_positions)
    return train_positions, valid_positions


def can_split(labels: np.ndarray) -> bool:
    """Whether every class among ``labels`` has the 2 examples a budget split needs."""
    return len(labels) > 0 and np.unique(labels, return_counts=True)[1].min() >= 2
