"""What every scikit-learn estimator of ``classifier.kind=sklearn`` declares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from omegaconf import DictConfig

from tiedae.checks import is_list, is_number
from tiedae.schema import check, setting

FEATURES = ("pixels", "pca", "codes")  # codes: a pretrained encoder's (its own cache)


def _components_for_pca(problems: list[str], classifier: Mapping[str, Any]) -> None:
    components = classifier.get("components")
    if classifier.get("features") == "pca" and components is None:
        problems.append(
            "classifier.components=None must be a positive integer with classifier.features=pca "
            "(how many principal components)"
        )


@dataclass(frozen=True, kw_only=True)
class SklearnSettings:
    """``classifier.*`` of ``classifier.kind=sklearn``; each estimator's schema extends it
    with its own settings (its regularisation, checked by ``Estimator.check``: a number or a
    list of candidates). ``reuse_layers`` is checked beside the model, as the head's."""

    name: str = setting()
    kind: str = setting("sklearn")
    features: str = setting(allowed=FEATURES)
    components: int | None = setting(None, minimum=1, means="PCA's, with features=pca")
    reuse_layers: int | None = setting(None, own_rule=True)
    max_iter: int = setting(minimum=1)

    rules: ClassVar[tuple] = (_components_for_pca,)


class Estimator:
    """A ``classifier.name`` of ``classifier.kind=sklearn``; subclasses set the class
    attributes and ``make``, and add their own checks in ``check``."""

    settings: ClassVar[type] = SklearnSettings  # the ``classifier`` section's schema
    regularization: ClassVar[str]  # the setting chosen on validation when it is a list
    upper: ClassVar[float] = float("inf")  # its values lie in (0, upper)
    transductive: ClassVar[bool] = False  # fitted on every training image, most unlabeled
    refused_features: ClassVar[dict[str, str]] = {}  # classifier.features -> why not

    @classmethod
    def check(cls, problems: list[str], classifier: DictConfig) -> None:
        """Append a one-line message per invalid setting: the schema's, the regularisation
        (a number in range or a list of them) and the features the estimator refuses."""
        check(problems, "classifier", classifier, cls.settings)
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
