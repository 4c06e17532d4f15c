"""Stage 4 — classification: a softmax head on (copies of) the lowest encoder layers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import keras
import numpy as np
from omegaconf import DictConfig, OmegaConf

from tiedae.data import Splits
from tiedae.loop import fit
from tiedae.models import model_family, set_hidden_trainable, transplant_encoder
from tiedae.timing import timed
from tiedae.training import EpochCallback, FitSettings, History, evaluate, make_optimizer, with_part

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
    protocol's: see tiedae.protocols; patience=None: a fixed number of epochs).

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
        return classifier, history
    with timed("build"):
        kept = _kept_in_process(classifier, model_cfg, classifier_cfg, reuse)
    history = _fit(
        kept.model, splits, labeled, classifier_cfg, classifier_cfg.learning_rate,
        settings, on_epoch_end, kept.optimizer, kept.runners,
    )  # fmt: skip
    return kept.model, history


@dataclass
class _Kept:
    """A classifier, its optimizer (built) and compiled epochs, kept by the process for the
    next job of the same shape; ``initial``: the optimizer's variables as built."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    initial: list[np.ndarray]
    runners: dict = field(default_factory=dict)


_KEPT: dict[str, _Kept] = {}  # classifier signature -> what the last job of it left
KEPT_CLASSIFIERS = 32


def _signature(
    classifier: keras.Model, model_cfg: DictConfig, classifier_cfg: DictConfig, reuse: int
) -> str:
    """What a kept classifier must share with a new one to train in its place: the layers
    and which of them train, the optimizer and learning rate, the dtype policy."""
    return json.dumps([
        OmegaConf.to_container(model_cfg, resolve=True), reuse, classifier_cfg.optimizer,
        classifier_cfg.learning_rate, [layer.trainable for layer in classifier.layers],
        [tuple(w.shape) for w in classifier.weights], keras.config.dtype_policy().name,
    ], sort_keys=True, default=str)  # fmt: skip


def _kept_in_process(
    fresh: keras.Model, model_cfg: DictConfig, classifier_cfg: DictConfig, reuse: int
) -> _Kept:
    """The classifier to train: ``fresh`` itself, the first time a process trains one of its
    signature; afterwards the kept one, set to ``fresh``'s weights and its optimizer reset to
    its built state, so that its compiled training and evaluation are traced once a process
    (TensorFlow's tracing costs more than a few hundred labels' epochs). Same starting numbers,
    same graph: the same training, to the last bit."""
    signature = _signature(fresh, model_cfg, classifier_cfg, reuse)
    kept = _KEPT.pop(signature, None)
    if kept is None:
        optimizer = make_optimizer(classifier_cfg.optimizer, classifier_cfg.learning_rate)
        optimizer.build(fresh.trainable_variables)
        kept = _Kept(fresh, optimizer, [v.numpy() for v in optimizer.variables])
    else:
        for target, source in zip(kept.model.weights, fresh.weights, strict=True):
            target.assign(source)
        for variable, value in zip(kept.optimizer.variables, kept.initial, strict=True):
            variable.assign(value)
    _KEPT[signature] = kept  # the newest last
    while len(_KEPT) > KEPT_CLASSIFIERS:
        _KEPT.pop(next(iter(_KEPT)))
    return kept


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
    optimizer: keras.optimizers.Optimizer | None = None,
    runners: dict | None = None,
) -> History:
    return fit(
        classifier,
        splits.x_train[labeled],
        splits.y_train[labeled],
        (splits.x_valid, splits.y_valid),
        loss=keras.losses.sparse_categorical_crossentropy,
        optimizer=optimizer or make_optimizer(classifier_cfg.optimizer, learning_rate),
        settings=settings,
        metrics=ACCURACY,
        on_epoch_end=on_epoch_end,
        runners=runners,
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
