"""Stage 4 — classification: a softmax head on (copies of) the lowest encoder layers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import keras
import numpy as np
from omegaconf import DictConfig

from tiedae.data import Splits
from tiedae.models import model_family, set_hidden_trainable, transplant_encoder
from tiedae.timing import timed
from tiedae.training import (
    EpochCallback,
    FitSettings,
    History,
    evaluate,
    fit,
    make_optimizer,
    with_part,
)

ACCURACY = {"accuracy": keras.metrics.sparse_categorical_accuracy}


def train_classifier(
    splits: Splits,
    labeled: np.ndarray,
    model_cfg: DictConfig,
    classifier_cfg: DictConfig,
    settings: FitSettings,
    pretrained: Sequence[keras.layers.Layer] | None = None,
    reuse: int | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> tuple[keras.Sequential, History]:
    """Train on the labeled indices only, early-stopping on ``splits``' validation set (the
    protocol's: see tiedae.data.labeled_view; patience=None: a fixed number of epochs).

    With ``pretrained`` layers, the lowest ``reuse`` hidden layers start from them and are
    frozen when ``classifier.freeze``; with ``classifier.frozen_epochs`` they are frozen for
    that many epochs, then unfrozen and trained on at ``classifier.finetune_learning_rate``.
    Without, it is the scratch baseline, all trainable.
    """
    family = model_family(model_cfg)
    reuse = family.n_layers(model_cfg) if reuse is None else reuse
    keras.utils.set_random_seed(settings.seed)
    with timed("build"):
        classifier = family.classifier(splits.image_shape, model_cfg, splits.n_classes, reuse)
        if pretrained:
            transplant_encoder(
                classifier, list(pretrained)[:reuse], trainable=not classifier_cfg.freeze
            )
    if pretrained and classifier_cfg.get("frozen_epochs"):
        history = _fit_gradually(
            classifier, splits, labeled, classifier_cfg, reuse, settings, on_epoch_end
        )
    else:
        history = _fit(
            classifier, splits, labeled, classifier_cfg, classifier_cfg.learning_rate,
            settings, on_epoch_end,
        )  # fmt: skip
    return classifier, history


def _fit_gradually(
    classifier: keras.Sequential,
    splits: Splits,
    labeled: np.ndarray,
    classifier_cfg: DictConfig,
    reuse: int,
    settings: FitSettings,
    on_epoch_end: EpochCallback | None,
) -> History:
    """The transfer-learning schedule: the head alone on the frozen encoder, then everything
    at a lower learning rate. The weights kept are the best on validation over both phases."""
    set_hidden_trainable(classifier, reuse, False)
    head = _fit(
        classifier, splits, labeled, classifier_cfg, classifier_cfg.learning_rate,
        replace(with_part(settings, "head"), epochs=classifier_cfg.frozen_epochs), on_epoch_end,
    )  # fmt: skip
    head_weights = classifier.get_weights()
    set_hidden_trainable(classifier, reuse, True)
    offset = len(head.epochs)
    tuned = _fit(
        classifier, splits, labeled, classifier_cfg, classifier_cfg.finetune_learning_rate,
        with_part(settings, "finetune"), _shifted(on_epoch_end, offset),
    )  # fmt: skip
    history = History(epochs=head.epochs + tuned.epochs, seconds=head.seconds + tuned.seconds)
    if tuned.best_epoch is None:  # a fixed epoch budget (no validation): keep the last weights
        return history
    if _best_val_loss(tuned) < _best_val_loss(head):
        history.best_epoch = offset + tuned.best_epoch
    else:  # unfreezing did not help on validation: keep the frozen phase's best
        classifier.set_weights(head_weights)
        history.best_epoch = head.best_epoch
    return history


def _shifted(on_epoch_end: EpochCallback | None, offset: int) -> EpochCallback | None:
    """The callback with epochs numbered on from ``offset``: one curve across both phases."""
    if on_epoch_end is None:
        return None
    return lambda epoch, logs: on_epoch_end(offset + epoch, logs)


def _best_val_loss(history: History) -> float:
    return history.epochs[history.best_epoch]["val_loss"]


def _fit(
    classifier: keras.Sequential,
    splits: Splits,
    labeled: np.ndarray,
    classifier_cfg: DictConfig,
    learning_rate: float,
    settings: FitSettings,
    on_epoch_end: EpochCallback | None,
) -> History:
    return fit(
        classifier,
        splits.x_train[labeled],
        splits.y_train[labeled],
        (splits.x_valid, splits.y_valid),
        loss=keras.losses.sparse_categorical_crossentropy,
        optimizer=make_optimizer(classifier_cfg.optimizer, learning_rate),
        settings=settings,
        metrics=ACCURACY,
        on_epoch_end=on_epoch_end,
    )


def evaluate_on_test(
    classifier: keras.Model, splits: Splits, batch_size: int = 1000
) -> dict[str, float]:
    return evaluate(
        classifier, splits.x_test, splits.y_test,
        keras.losses.sparse_categorical_crossentropy, ACCURACY, batch_size,
    )  # fmt: skip


def evaluate_on_validation(
    classifier: keras.Model, splits: Splits, batch_size: int = 1000
) -> dict[str, float]:
    """Loss and accuracy of the classifier as it is (the restored weights) on validation."""
    return evaluate(
        classifier, splits.x_valid, splits.y_valid,
        keras.losses.sparse_categorical_crossentropy, ACCURACY, batch_size,
    )  # fmt: skip
