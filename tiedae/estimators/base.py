"""What every scikit-learn estimator of ``classifier.kind=sklearn`` declares."""

from __future__ import annotations

from typing import Any, ClassVar

from omegaconf import DictConfig

from tiedae.checks import is_list, is_number, positive_int


class Estimator:
    """A ``classifier.name`` of ``classifier.kind=sklearn``; subclasses set the class
    attributes and ``make``, and add their own checks in ``check``."""

    regularization: ClassVar[str]  # the setting chosen on validation when it is a list
    upper: ClassVar[float] = float("inf")  # its values lie in (0, upper)
    transductive: ClassVar[bool] = False  # fitted on every training image, most unlabeled
    refused_features: ClassVar[dict[str, str]] = {}  # classifier.features -> why not

    @classmethod
    def check(cls, problems: list[str], classifier: DictConfig) -> None:
        """Append a one-line message per invalid setting of the estimator's own."""
        positive_int(problems, "classifier.max_iter", classifier.get("max_iter"))
        value = classifier.get(cls.regularization)
        values = list(value) if is_list(value) else [value]
        if not values or not all(is_number(v) and 0 < v < cls.upper for v in values):
            allowed = f"in (0, {cls.upper:g})" if cls.upper != float("inf") else "> 0"
            problems.append(
                f"classifier.{cls.regularization}={value!r} must be a number {allowed} or a "
                "list of them (the best on validation is kept)"
            )
        features = classifier.get("features")
        if features in cls.refused_features:
            problems.append(f"classifier.features={features} {cls.refused_features[features]}")

    @classmethod
    def check_fits(cls, classifier: DictConfig, n_train: int, dataset: str) -> str | None:
        """What only the data can tell, before anything trains: a one-line reason, or None."""
        return None

    @classmethod
    def make(cls, classifier: DictConfig, value: float, seed: int) -> Any:
        """The unfitted scikit-learn estimator at regularisation ``value``."""
        raise NotImplementedError

    @classmethod
    def n_parameters(cls, estimator: Any) -> int:
        """The numbers it learned (0 for an estimator whose model is the training set)."""
        return 0
