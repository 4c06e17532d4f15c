"""What a validation protocol is: which images may choose an epoch or a hyperparameter, for the
classifier (its view of the labeled images) and for pretraining (the images it holds out)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import numpy as np

from tiedae.data import Splits, stratified_subset


@dataclass(frozen=True)
class LabeledView:
    """What a classifier may read: ``splits`` (its x_valid/y_valid being the validation set to
    use) and the indices of its training labels. ``fixed_epochs`` is set when there is no
    validation set to stop on (then x_valid/y_valid are the training labels themselves)."""

    splits: Splits
    labeled: np.ndarray
    validation: str  # "oracle" | "budget" | "fixed_epochs"
    fixed_epochs: int | None = None
    valid_indices: np.ndarray | None = None  # budget: the labeled indices that validate


@dataclass(frozen=True)
class Protocol(ABC):
    """One protocol's settings (its dataclass fields, read from ``conf/protocol/<name>.yaml``)
    and what it lets each stage read. Subclasses register with ``@register(name)``."""

    labels_per_class: ClassVar[int] = 1  # labeled images a class needs

    @classmethod
    def check(cls, section: Any) -> list[str]:
        """Problems of the section's values, one line each ([] when it is valid)."""
        return []

    @classmethod
    def from_config(cls, section: Any) -> Protocol:
        return cls(**{f.name: section.get(f.name) for f in fields(cls)})

    @abstractmethod
    def view(self, splits: Splits, labeled: np.ndarray, seed: int) -> LabeledView:
        """The classifier's view of the data: which labels train, which images validate."""

    def holdout(self, splits: Splits) -> np.ndarray | None:
        """The training images pretraining validates on instead of reading (None: it
        validates on the dataset's validation split)."""
        return None

    def pretraining_view(self, splits: Splits) -> Splits:
        """The images pretraining may read, its held-out images as its validation set."""
        holdout = self.holdout(splits)
        if holdout is None:
            return splits
        keep = np.setdiff1d(np.arange(len(splits.y_train)), holdout)
        view = with_validation(splits, splits.x_train[holdout], splits.y_train[holdout])
        return replace(view, x_train=splits.x_train[keep], y_train=splits.y_train[keep])


@dataclass(frozen=True)
class HoldsOut(Protocol):
    """A protocol that never reads the dataset's validation split: pretraining validates on a
    fixed stratified share (``pretrain_holdout``, seed 0) of the training images instead."""

    pretrain_holdout: float = 0.05

    def holdout(self, splits: Splits) -> np.ndarray:
        size = max(1, round(self.pretrain_holdout * len(splits.y_train)))
        return stratified_subset(splits.y_train, size, seed=0)


def with_validation(splits: Splits, x_valid: np.ndarray, y_valid: np.ndarray) -> Splits:
    return replace(splits, x_valid=x_valid, y_valid=y_valid)


def every_label_trains(splits: Splits, labeled: np.ndarray, epochs: int) -> LabeledView:
    """Every label trains for ``epochs``; nothing validates (x_valid: the labels themselves)."""
    fixed = with_validation(splits, splits.x_train[labeled], splits.y_train[labeled])
    return LabeledView(fixed, labeled, "fixed_epochs", int(epochs))
