"""``classifier=logreg``: multinomial logistic regression on the labeled few."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from tiedae.estimators import register
from tiedae.estimators.base import Estimator


@register("logreg")
class LogReg(Estimator):
    regularization = "C"  # the inverse regularisation strength

    @classmethod
    def make(cls, classifier: DictConfig, value: float, seed: int) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=value, max_iter=classifier.max_iter, random_state=seed)

    @classmethod
    def n_parameters(cls, estimator: Any) -> int:
        return int(estimator.coef_.size + estimator.intercept_.size)
