"""Why the ladder normalises with the unlabeled images' statistics (objective.bn_statistics).

Trains the tied ladder of experiment=semi_supervised at 100 labels (budget protocol, seed 1) for
10 short epochs of 110 steps and prints, after each, the accuracy on 3,000 training images
outside the labeled 100 (a diagnostic, not a selection: nothing here is tuned on it) twice:
normalised by the saved classifier's moving averages, and by those images' own statistics.

    PYTHONPATH=. .venv/bin/python experiments/semi_supervised/bn_statistics/check.py \
        [objective.bn_statistics=batch]
"""

import sys

import numpy as np
import tensorflow as tf
from hydra import compose, initialize_config_dir

from tiedae.config import CONFIG_DIR
from tiedae.data import load_dataset, stratified_subset
from tiedae.protocols import labeled_view
from tiedae.objectives import build_objective
from tiedae.objectives.base import fit_objective
from tiedae.objectives.ladder import batch_normalize
from tiedae.training import FitSettings, configure_tensorflow, make_optimizer

OVERRIDES = ["experiment=semi_supervised", "method=ladder_tied", "labels.count=100", "seed=1",
             "objective.steps_per_epoch=110", "objective.epochs=10"]  # fmt: skip

with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
    cfg = compose("config", overrides=[*OVERRIDES, *sys.argv[1:]])
configure_tensorflow(1, True, 1)
splits = load_dataset(cfg.data)
labeled = stratified_subset(splits.y_train, cfg.labels.count, cfg.seed)
view = labeled_view(splits, labeled, cfg.protocol, cfg.seed)
held_out = np.setdiff1d(np.arange(len(splits.y_train)), labeled)[:3000]
x_check, y_check = splits.x_train[held_out], splits.y_train[held_out]
ladder = build_objective(cfg, splits.image_shape, splits.n_classes, len(splits.pretrain_images))


def accuracy_with_own_statistics(x: np.ndarray) -> float:
    h = tf.reshape(tf.constant(x), (len(x), -1))
    for layer in ladder.layers:
        z, _, _ = batch_normalize(layer.preactivation(h))
        h = layer.activate(z)
    return float(np.mean(np.argmax(h.numpy(), 1) == y_check))


def report(epoch: int, logs) -> None:
    moving = np.mean(np.argmax(ladder.classifier.predict(x_check, verbose=0), 1) == y_check)
    print(f"epoch {epoch}: labeled loss {logs['labeled_loss']:.3f}, budget validation (20 "
          f"images) {logs['val_accuracy']:.2f}; 3,000 held-out: moving averages {moving:.3f}, "
          f"own statistics {accuracy_with_own_statistics(x_check):.3f}", flush=True)  # fmt: skip


print(f"objective.bn_statistics={cfg.objective.bn_statistics}")
settings = FitSettings(
    epochs=cfg.objective.epochs, batch_size=32, seed=cfg.seed, patience=None,
    steps_per_execution=200, jit=False, validation_batch_size=1000, verbose=0,
)  # fmt: skip
fit_objective(
    ladder, (view.splits.x_train[view.labeled], view.splits.y_train[view.labeled]),
    splits.pretrain_images, (view.splits.x_valid, view.splits.y_valid),
    optimizer=make_optimizer(cfg.classifier.optimizer, cfg.classifier.learning_rate),
    settings=settings, on_epoch_end=report,
)  # fmt: skip
