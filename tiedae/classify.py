"""Stage 4 — classification: a softmax head on (copies of) the lowest encoder layers."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from omegaconf import DictConfig

from tiedae.data import Splits
from tiedae.models import build_classifier, transplant_encoder
from tiedae.training import EpochCallback, FitSettings, History, evaluate, fit, make_optimizer

ACCURACY = {"accuracy": keras.metrics.sparse_categorical_accuracy}


def train_classifier(
    splits: Splits,
    labeled: np.ndarray,
    model_cfg: DictConfig,
    classifier_cfg: DictConfig,
    settings: FitSettings,
    pretrained: Sequence[keras.layers.Dense] | None = None,
    reuse: int | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> tuple[keras.Sequential, History]:
    """Train on the labeled indices only, early-stopping on the validation set.

    With ``pretrained`` layers, the lowest ``reuse`` hidden layers start from them and are
    frozen when ``classifier.freeze``; without, it is the scratch baseline, all trainable.
    """
    reuse = len(model_cfg.sizes) if reuse is None else reuse
    keras.utils.set_random_seed(settings.seed)
    classifier = build_classifier(
        splits.image_shape,
        list(model_cfg.sizes)[:reuse],
        splits.n_classes,
        activation=model_cfg.activation,
        kernel_initializer=model_cfg.kernel_initializer,
    )
    if pretrained:
        transplant_encoder(
            classifier, list(pretrained)[:reuse], trainable=not classifier_cfg.freeze
        )
    history = fit(
        classifier,
        splits.x_train[labeled],
        splits.y_train[labeled],
        (splits.x_valid, splits.y_valid),
        loss=keras.losses.sparse_categorical_crossentropy,
        optimizer=make_optimizer(classifier_cfg.optimizer, classifier_cfg.learning_rate),
        settings=settings,
        metrics=ACCURACY,
        on_epoch_end=on_epoch_end,
    )
    return classifier, history


def evaluate_on_test(
    classifier: keras.Model, splits: Splits, batch_size: int = 1000
) -> dict[str, float]:
    return evaluate(
        classifier, splits.x_test, splits.y_test,
        keras.losses.sparse_categorical_crossentropy, ACCURACY, batch_size,
    )  # fmt: skip
