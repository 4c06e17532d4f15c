"""Classical baselines from scikit-learn, on the same labeled subset, seed and test set.

``classifier.kind=sklearn`` runs one of them instead of a network (each estimator a module of
``tiedae/estimators/``; this module fits whichever ``classifier.name`` registered):

- ``logreg`` on ``pixels``: multinomial logistic regression on the raw pixels;
- ``logreg`` on ``pca``: the same on the first ``components`` principal components, fitted on
  all training images (a linear autoencoder's counterpart: it sees the unlabeled images too);
- ``label_spreading`` on ``pca``: graph-based semi-supervised learning over every training
  image, the labeled few spreading their labels to their nearest neighbours;
- either on ``codes``: the codes of a pretrained encoder (``pretrain=autoencoder``, ``greedy``
  or ``transfer``, obtained through the pretraining cache like the networks' encoders, then
  frozen) for every training image, labeled or not: ``method=tied_propagation`` is label
  spreading over them.

LabelSpreading is transductive: it labels the training images it was fitted on. Validation and
test images are labeled by ``LabelSpreading.predict`` on their features (for the ``pca`` and
``codes`` rows alike): each takes the spread label distributions of its ``n_neighbors`` nearest
training images; the training graph itself is not refitted with them.

The regularisation (``C`` or ``alpha``) may be a list: each value is fitted and the one with
the best validation accuracy is kept — the baselines' counterpart of the networks' early
stopping on the validation set. The test set is only scored, never used to choose. With
``choose=False`` (too few labels to validate on) the middle value of the list is used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig, OmegaConf
from sklearn.decomposition import PCA
from sklearn.metrics import accuracy_score, log_loss

from tiedae.config import ConfigError
from tiedae.data import Splits
from tiedae.estimators import ESTIMATORS

UNLABELED = -1  # scikit-learn's mark for an unlabeled example


@dataclass(frozen=True)
class Codes:
    """A frozen pretrained encoder as a baseline's features (``features=codes``)."""

    encode: Callable[[np.ndarray], np.ndarray]  # images -> codes
    n_parameters: int  # the encoder's weights (learned in pretraining, not here)


Features = PCA | Codes | None  # None: raw pixels


@dataclass
class BaselineResult:
    estimator: object
    features: Features
    chosen: float  # the regularisation value chosen on validation
    val_accuracy: float | None  # None: nothing was chosen on validation
    test: dict[str, float]
    n_parameters: int
    seconds: float


def flat(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1)


def fit_features(
    splits: Splits, classifier_cfg: DictConfig, seed: int, codes: Codes | None = None
) -> Features:
    """PCA fitted on every training image (labels unused), the pretrained encoder ``codes``
    (``features=codes``), or None for raw pixels."""
    if classifier_cfg.features == "codes":
        if codes is None:
            raise ValueError("classifier.features=codes needs the pretrained encoder's codes")
        return codes
    if classifier_cfg.features == "pixels":
        return None
    return PCA(n_components=classifier_cfg.components, random_state=seed).fit(flat(splits.x_train))


def transform(features: Features, images: np.ndarray) -> np.ndarray:
    if features is None:
        return flat(images)
    if isinstance(features, Codes):
        return flat(features.encode(images))
    return features.transform(flat(images))


def check_baseline_fits(classifier_cfg: DictConfig, splits: Splits) -> None:
    """What only the data can tell, checked before anything trains (the estimator's own
    ``check_fits``; its settings' types ``tiedae.config.validate`` checked before)."""
    problem = ESTIMATORS[classifier_cfg.name].check_fits(
        classifier_cfg, len(splits.x_train), splits.name
    )
    if problem:
        raise ConfigError(problem)


def candidates(value: float | Sequence[float]) -> list[float]:
    return list(value) if OmegaConf.is_list(value) or isinstance(value, list) else [value]


def fit_estimator(
    estimator, transductive: bool, x_train: np.ndarray, y_train: np.ndarray, labeled: np.ndarray
):
    """A supervised estimator sees the labeled rows; a transductive one (LabelSpreading) all,
    most of them unlabeled."""
    if transductive:
        partial = np.full(len(y_train), UNLABELED)
        partial[labeled] = y_train[labeled]
        return estimator.fit(x_train, partial)
    return estimator.fit(x_train[labeled], y_train[labeled])


def run_baseline(
    splits: Splits,
    labeled: np.ndarray,
    classifier_cfg: DictConfig,
    seed: int,
    choose: bool = True,
    codes: Codes | None = None,
) -> BaselineResult:
    """Fit each candidate regularisation, keep the best on validation, score it on test.
    ``choose=False``: fit the middle candidate only and read no validation set. ``codes``: the
    pretrained encoder that ``features=codes`` fits on (every image is encoded once)."""
    started = time.perf_counter()
    features = fit_features(splits, classifier_cfg, seed, codes)
    x_train = transform(features, splits.x_train)
    kind = ESTIMATORS[classifier_cfg.name]
    values = candidates(classifier_cfg[kind.regularization])
    if not choose:
        values = [values[len(values) // 2]]
    x_valid = transform(features, splits.x_valid) if choose else None
    best = None
    for value in values:
        estimator = fit_estimator(
            kind.make(classifier_cfg, value, seed),
            kind.transductive,
            x_train,
            splits.y_train,
            labeled,
        )
        if not choose:
            best = (estimator, value, None)
            break
        val_accuracy = accuracy_score(splits.y_valid, estimator.predict(x_valid))
        if best is None or val_accuracy > best[2]:
            best = (estimator, value, val_accuracy)
    estimator, value, val_accuracy = best
    return BaselineResult(
        estimator=estimator,
        features=features,
        chosen=value,
        val_accuracy=val_accuracy,
        test=score_test(estimator, features, splits),
        n_parameters=count_parameters(features) + kind.n_parameters(estimator),
        seconds=time.perf_counter() - started,
    )


def score_test(estimator, features: Features, splits: Splits) -> dict[str, float]:
    """The final evaluation: the one place a baseline reads the test set."""
    return score(estimator, transform(features, splits.x_test), splits.y_test, splits.n_classes)


def score(
    estimator, x: np.ndarray, y: np.ndarray, n_classes: int | None = None
) -> dict[str, float]:
    """Log loss and accuracy over all ``n_classes`` classes: classes missing from the labeled
    few (fewer labels than classes) get probability 0, so log_loss sees every label."""
    probabilities = estimator.predict_proba(x)
    classes = np.asarray(estimator.classes_)
    n_classes = max(n_classes or 0, int(classes.max()) + 1, int(np.max(y)) + 1)
    full = np.zeros((len(x), n_classes), dtype=np.float64)
    full[:, classes] = probabilities
    full /= full.sum(axis=1, keepdims=True)  # float32 probabilities, summed again in float64
    return {
        "loss": float(log_loss(y, full, labels=np.arange(n_classes))),
        "accuracy": float(accuracy_score(y, classes[probabilities.argmax(axis=1)])),
    }


def count_parameters(features: Features) -> int:
    """The features' learned numbers: PCA's components and mean, or the pretrained encoder's
    weights (the estimator adds its own)."""
    if isinstance(features, Codes):
        return features.n_parameters
    return 0 if features is None else int(features.components_.size + features.mean_.size)
