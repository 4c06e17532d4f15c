"""``classifier=label_spreading``: scikit-learn's LabelSpreading over a k-nearest-neighbour
graph of every training image, the labeled few spreading their labels along it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from tiedae.estimators import register
from tiedae.estimators.base import Estimator, SklearnSettings
from tiedae.schema import setting


@dataclass(frozen=True, kw_only=True)
class LabelSpreadingSettings(SklearnSettings):
    """``classifier=label_spreading`` (conf/classifier/label_spreading.yaml)."""

    n_neighbors: int = setting(minimum=1)
    alpha: float | list = setting(own_rule=True)  # Estimator.check: in (0, 1), or a list


@register("label_spreading")
class LabelSpreadingEstimator(Estimator):
    settings = LabelSpreadingSettings
    regularization = "alpha"  # how far the labels may change
    upper = 1.0
    transductive = True
    refused_features = {
        "pixels": "is too slow for label_spreading's neighbour graph; allowed: pca, codes"
    }

    @classmethod
    def check_fits(cls, classifier: DictConfig, n_train: int, dataset: str) -> str | None:
        """The graph joins each training image to ``n_neighbors`` others: there must be
        that many."""
        n_neighbors = classifier.get("n_neighbors")
        if n_neighbors > n_train:
            return (
                f"classifier.n_neighbors={n_neighbors} is larger than the {n_train} training "
                f"images of {dataset}; use at most {n_train}"
            )
        return None

    @classmethod
    def make(cls, classifier: DictConfig, value: float, seed: int) -> Any:
        from sklearn.semi_supervised import LabelSpreading

        return LabelSpreading(
            kernel="knn",
            n_neighbors=classifier.n_neighbors,
            alpha=value,
            max_iter=classifier.max_iter,
        )
