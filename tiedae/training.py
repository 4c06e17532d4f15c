"""The training loop both stages share: the plain ``fit`` recipe, with less per-step overhead.

Keras's ``fit`` spends most of a small model's step in dispatch. Here the data sits in memory
as tensors (copied once; an autoencoder's targets are its inputs, not a second copy), each
compiled call runs ``steps_per_execution`` shuffled mini-batches in one ``tf.while_loop``
(traced without AutoGraph), and validation runs once an epoch in large batches through one
function traced once. The mathematics is the seed's (same batch size, same loss reduction,
same optimizer update), so what is learned is the same; ``tests/test_bench.py`` checks it
against a plain eager loop. ``make bench`` measures the speed against the seed's ``fit``.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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
    checkpoint: Checkpoint | None = None  # save every few epochs, resume from the last


@dataclass(frozen=True)
class Checkpoint:
    """Where ``fit`` saves its whole state every ``every`` epochs, and resumes from.

    The state (model and optimizer variables, epoch, early-stopping state, history) is one
    pickle written atomically, so a process killed while saving leaves the previous one. A
    training of several ``fit`` calls gives each its own ``part``; a ``fit`` that ran to its
    end saves a final state, so a resumed training passes over it without training again.
    ``resumed`` is told the name and the epoch a ``fit`` resumed after.
    """

    folder: Path
    every: int = 1
    name: str = "fit"
    resumed: Callable[[str, int], None] | None = None

    def part(self, name: str) -> Checkpoint:
        return replace(self, folder=self.folder / name, name=f"{self.name}/{name}")

    @property
    def path(self) -> Path:
        return self.folder / "state.pkl"

    def load(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        with open(self.path, "rb") as handle:
            return pickle.load(handle)

    def save(self, state: Mapping[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        with open(partial, "wb") as handle:
            pickle.dump(dict(state), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, self.path)


@dataclass
class History:
    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    seconds: float = 0.0

    @property
    def last(self) -> dict[str, float]:
        return self.epochs[-1] if self.epochs else {}


def with_part(settings: FitSettings, name: str) -> FitSettings:
    """The settings for one of several ``fit`` calls of a training: its own checkpoint part."""
    if settings.checkpoint is None:
        return settings
    return replace(settings, checkpoint=settings.checkpoint.part(name))


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer {name!r} is unknown; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](learning_rate=learning_rate)


def resolve_verbose(verbose: int | str) -> int:
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def configure_tensorflow(threads: int, deterministic: bool, inter_op_threads: int = 0) -> None:
    """Thread pools and op determinism; call once per process, before any op runs.

    ``threads`` splits one op across cores (intra-op), ``inter_op_threads`` runs independent
    ops side by side; 0 leaves TensorFlow's default (all cores). Neither changes the numbers.
    """
    try:
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        if inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    except RuntimeError:
        pass  # already initialised in this process (e.g. a reused sweep worker)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


ArrayLike = np.ndarray | tf.Tensor


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The model's outputs (inference mode) for all of ``x``, in large batches."""
    infer = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)
    return np.concatenate(
        [infer(tf.constant(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
    )


Evaluator = Callable[[ArrayLike, ArrayLike], dict[str, float]]


def evaluator(
    model: keras.Model,
    loss: Metric,
    metrics: Mapping[str, Metric] | None = None,
    batch_size: int = 1000,
) -> Evaluator:
    """Mean loss and metrics over a whole (x, y), in large batches, as one traced function.

    Build it once and call it every epoch: the graph (model, loss and metrics together) is
    traced once, not once a call, and no per-pixel arithmetic runs eagerly.
    """
    named = {"loss": loss, **(metrics or {})}

    @tf.function(reduce_retracing=True, autograph=False)
    def per_example(x_batch, y_batch):
        predictions = model(x_batch, training=False)
        return {name: function(y_batch, predictions) for name, function in named.items()}

    def evaluate_all(x: ArrayLike, y: ArrayLike) -> dict[str, float]:
        x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)  # no copy if already tensors
        parts = [
            per_example(x[i : i + batch_size], y[i : i + batch_size])
            for i in range(0, len(x), batch_size)
        ]
        return {
            name: float(ops.mean(ops.concatenate([part[name] for part in parts], axis=0)))
            for name in named
        }

    return evaluate_all


def evaluate(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    loss: Metric,
    metrics: Mapping[str, Metric] | None = None,
    batch_size: int = 1000,
) -> dict[str, float]:
    """Mean loss and metrics over the whole of (x, y), computed in large batches."""
    return evaluator(model, loss, metrics, batch_size)(x, y)


TrainSteps = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]


def compiled_steps(
    model: keras.Model,
    x_all: tf.Tensor,
    y_all: tf.Tensor,
    loss: Metric,
    optimizer: keras.optimizers.Optimizer,
    batch_size: int,
) -> TrainSteps:
    """``train_steps(order, first, count)``: mini-batches ``first .. first+count-1`` of ``order``.

    One graph call runs them all in a ``tf.while_loop`` and returns the summed training loss
    (each batch's mean loss times its size). Each step is the seed's: the mean loss of the
    batch, its gradient, one optimizer update. Written without AutoGraph, which saves its
    source transformation at every trace, and gathering a batch once when ``y_all`` is
    ``x_all``.
    """
    variables = model.trainable_variables
    optimizer.build(variables)
    targets_are_inputs = y_all is x_all

    def step(order, index, total):
        batch = order[index * batch_size : (index + 1) * batch_size]
        x_batch = tf.gather(x_all, batch)
        y_batch = x_batch if targets_are_inputs else tf.gather(y_all, batch)
        with tf.GradientTape() as tape:
            batch_loss = ops.mean(loss(y_batch, model(x_batch, training=True)))
        optimizer.apply(tape.gradient(batch_loss, variables), variables)
        return index + 1, total + batch_loss * tf.cast(tf.shape(batch)[0], tf.float32)

    @tf.function(reduce_retracing=True, autograph=False)
    def train_steps(order, first, count):
        _, total = tf.while_loop(
            lambda index, total: index < first + count,
            lambda index, total: step(order, index, total),
            (first, tf.constant(0.0)),
        )
        return total

    return train_steps


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
    # The data sits in memory as tensors, copied once; an autoencoder's targets are its inputs.
    x_all, x_valid = tf.constant(x), tf.constant(validation[0])
    y_all = x_all if y is x else tf.constant(y)
    y_valid = x_valid if validation[1] is validation[0] else tf.constant(validation[1])
    train_steps = compiled_steps(model, x_all, y_all, loss, optimizer, settings.batch_size)
    validate = evaluator(model, loss, metrics, settings.validation_batch_size)
    rng = np.random.default_rng(settings.seed)
    n_steps = -(-len(x) // settings.batch_size)
    chunk = max(1, settings.steps_per_execution)
    verbose = resolve_verbose(settings.verbose)
    history, best_loss, best_weights, waited = History(), np.inf, None, 0
    first_epoch, stopped, seconds_before = 0, False, 0.0
    checkpoint = settings.checkpoint
    state = checkpoint.load() if checkpoint else None
    if state is not None:
        _restore(model, optimizer, state)
        history = History(list(state["history"]), state["best_epoch"])
        best_loss, best_weights, waited = state["best_loss"], state["best_weights"], state["waited"]
        first_epoch, stopped, seconds_before = state["epoch"], state["stopped"], state["seconds"]
        for _ in range(first_epoch):  # the shuffles already drawn: the same ones follow
            rng.permutation(len(x))
        if verbose:
            print(f"{checkpoint.name}: resumed from epoch {first_epoch}", flush=True)
        if checkpoint.resumed:
            checkpoint.resumed(checkpoint.name, first_epoch)
    started = time.perf_counter()
    for epoch in range(first_epoch, 0 if stopped else settings.epochs):
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
        val = validate(x_valid, y_valid)
        logs.update({f"val_{name}": value for name, value in val.items()})
        history.epochs.append(logs)
        if verbose:
            shown = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
            print(f"epoch {epoch + 1}/{settings.epochs} - {time.perf_counter() - epoch_start:.1f}s"
                  f" - {shown}", flush=True)  # fmt: skip
        if on_epoch_end:
            on_epoch_end(epoch, logs)
        if settings.patience is not None:
            if logs["val_loss"] < best_loss:
                best_loss, best_weights, waited = logs["val_loss"], model.get_weights(), 0
                history.best_epoch = epoch
            else:
                waited += 1
                stopped = waited >= settings.patience
        last = stopped or epoch + 1 == settings.epochs
        if checkpoint and checkpoint.every > 0 and (last or (epoch + 1) % checkpoint.every == 0):
            checkpoint.save({
                "epoch": epoch + 1, "stopped": stopped, "history": history.epochs,
                "best_epoch": history.best_epoch, "best_loss": best_loss,
                "best_weights": best_weights, "waited": waited,
                "seconds": seconds_before + time.perf_counter() - started,
                "model": [v.numpy() for v in model.variables],
                "optimizer": [v.numpy() for v in optimizer.variables],
            })  # fmt: skip
        if stopped:
            break
    if best_weights is not None:
        model.set_weights(best_weights)
    history.seconds = seconds_before + time.perf_counter() - started
    return history


def _restore(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, state: Mapping[str, Any]
) -> None:
    """The model's variables (weights and random-seed states) and the optimizer's."""
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    for variables, values in ((model.variables, state["model"]),
                              (optimizer.variables, state["optimizer"])):  # fmt: skip
        if len(variables) != len(values):
            raise ValueError(
                f"checkpoint does not fit: {len(values)} saved variables, {len(variables)} here"
            )
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
