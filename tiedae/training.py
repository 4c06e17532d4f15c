"""The training loop both stages share: the plain ``fit`` recipe, with less per-step overhead.

Keras's ``fit`` spends most of a small model's step in dispatch. Here the data sits in memory
as one tensor, each compiled call runs ``steps_per_execution`` shuffled mini-batches in a
graph loop, and validation runs once an epoch in large batches. The mathematics is the seed's
(same batch size, same loss reduction, same optimizer update), so what is learned is the same.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tiedae.config import DivergedError

EpochCallback = Callable[[int, Mapping[str, float]], None]
Metric = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

OPTIMIZERS = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "nadam": keras.optimizers.Nadam,
    "rmsprop": keras.optimizers.RMSprop,
}


@dataclass(frozen=True)
class FitSettings:
    epochs: int
    batch_size: int = 32
    seed: int = 0
    patience: int | None = None  # early stopping on val_loss, restoring the best weights
    steps_per_execution: int = 200
    validation_batch_size: int = 1000
    verbose: int = 2  # 0 silent, 1 progress bar, 2 one line an epoch


@dataclass
class History:
    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    seconds: float = 0.0

    @property
    def last(self) -> dict[str, float]:
        return self.epochs[-1] if self.epochs else {}


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer {name!r} is unknown; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](learning_rate=learning_rate)


def resolve_verbose(verbose: int | str) -> int:
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def configure_tensorflow(threads: int, deterministic: bool) -> None:
    """Thread pools and op determinism; call once per process, before any op runs."""
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
        except RuntimeError:
            pass  # already initialised in this process (e.g. a reused sweep worker)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    infer = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)
    return np.concatenate(
        [infer(tf.constant(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
    )


def evaluate(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    loss: Metric,
    metrics: Mapping[str, Metric] | None = None,
    batch_size: int = 1000,
) -> dict[str, float]:
    """Mean loss and metrics over the whole of (x, y), computed in large batches."""
    predictions = predict(model, x, batch_size)
    results = {"loss": float(ops.mean(loss(y, predictions)))}
    for name, metric in (metrics or {}).items():
        results[name] = float(ops.mean(metric(y, predictions)))
    return results


def fit(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray],
    *,
    loss: Metric,
    optimizer: keras.optimizers.Optimizer,
    settings: FitSettings,
    metrics: Mapping[str, Metric] | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> History:
    """Mini-batch training with per-epoch validation; returns the per-epoch logs.

    Logs hold ``loss`` (mean training loss of the epoch), ``val_loss`` and ``val_<metric>``.
    """
    x_all, y_all = tf.constant(x), tf.constant(y)
    variables = model.trainable_variables
    optimizer.build(variables)
    batch_size = settings.batch_size

    @tf.function(reduce_retracing=True)
    def train_steps(order, first_step, n_steps):
        total = tf.constant(0.0)
        for step in tf.range(first_step, first_step + n_steps):
            batch = order[step * batch_size : (step + 1) * batch_size]
            x_batch, y_batch = tf.gather(x_all, batch), tf.gather(y_all, batch)
            with tf.GradientTape() as tape:
                batch_loss = ops.mean(loss(y_batch, model(x_batch, training=True)))
            optimizer.apply(tape.gradient(batch_loss, variables), variables)
            total += batch_loss * tf.cast(tf.shape(batch)[0], tf.float32)
        return total

    rng = np.random.default_rng(settings.seed)
    n_steps = -(-len(x) // batch_size)
    chunk = max(1, settings.steps_per_execution)
    verbose = resolve_verbose(settings.verbose)
    history, best_loss, best_weights, waited = History(), np.inf, None, 0
    started = time.perf_counter()
    for epoch in range(settings.epochs):
        epoch_start = time.perf_counter()
        order = tf.constant(rng.permutation(len(x)), dtype=tf.int32)
        bar = keras.utils.Progbar(n_steps, verbose=1) if verbose == 1 else None
        if bar:
            print(f"Epoch {epoch + 1}/{settings.epochs}")
        loss_sum = 0.0
        for first in range(0, n_steps, chunk):
            count = min(chunk, n_steps - first)
            loss_sum += float(train_steps(order, tf.constant(first), tf.constant(count)))
            if bar:
                bar.update(first + count)
        logs = {"loss": loss_sum / len(x)}
        if not np.isfinite(logs["loss"]):
            raise DivergedError(
                f"training diverged: loss {logs['loss']} in epoch {epoch + 1} of {model.name}; "
                "lower its learning rate"
            )
        val = evaluate(model, *validation, loss, metrics, settings.validation_batch_size)
        logs.update({f"val_{name}": value for name, value in val.items()})
        history.epochs.append(logs)
        if verbose:
            shown = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
            print(f"epoch {epoch + 1}/{settings.epochs} - {time.perf_counter() - epoch_start:.1f}s"
                  f" - {shown}", flush=True)  # fmt: skip
        if on_epoch_end:
            on_epoch_end(epoch, logs)
        if settings.patience is None:
            continue
        if logs["val_loss"] < best_loss:
            best_loss, best_weights, waited = logs["val_loss"], model.get_weights(), 0
            history.best_epoch = epoch
        else:
            waited += 1
            if waited >= settings.patience:
                break
    if best_weights is not None:
        model.set_weights(best_weights)
    history.seconds = time.perf_counter() - started
    return history
