"""``classifier=logreg``: multinomial logistic regression on the labeled few."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from tiedae.estimators import register
from tiedae.estimators.base import Estimator, SklearnSettings
from tiedae.schema import setting


@dataclass(frozen=True, kw_only=True)
class LogRegSettings(SklearnSettings):
    """``classifier=logreg`` (conf/classifier/logreg.yaml)."""

    C: float | list = setting(own_rule=True)  # Estimator.check: > 0, or a list of candidates


@register("logreg")
class LogReg(Estimator):
    settings = LogRegSettings
    regularization = "C"  # the inverse regularisation strength

    @classmethod
    def make(cls, classifier: DictConfig, value: float, seed: int) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=value, max_iter=classifier.max_iter, random_state=seed)

    @classmethod
    def n_parameters(cls, estimator: Any) -> int:
        return int(estimator.coef_.size + estimator.intercept_.size)
