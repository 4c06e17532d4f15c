"""The training loop both stages share: the plain ``fit`` recipe, with less per-step overhead.

Keras's ``fit`` spends most of a small model's step in dispatch. Here the data sits in memory
as tensors (copied once; an autoencoder's targets are its inputs, not a second copy), each
compiled call runs ``steps_per_execution`` shuffled mini-batches in one ``tf.while_loop``
(traced without AutoGraph), and validation runs once an epoch in large batches through one
function traced once. With ``jit`` the loop is compiled by XLA: every full batch is a
fixed-size slice of the epoch's order (one static shape), the short last batch runs apart.
Objectives plug in as a step function (``train_step``; ``EpochRunner`` runs any). The
mathematics is the seed's (same batch size, same loss reduction,
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
    jit: bool | str = False  # the loop compiled by XLA: True, False or "auto" (runtime.jit)
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
    jit: bool = False,
) -> Evaluator:
    """Mean loss and metrics over a whole (x, y), in large batches, as one traced function.

    Build it once and call it every epoch: the graph (model, loss and metrics together) is
    traced once, not once a call, and no per-pixel arithmetic runs eagerly.
    """
    named = {"loss": loss, **(metrics or {})}

    @tf.function(reduce_retracing=True, autograph=False, jit_compile=jit)
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


StepFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
TrainSteps = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]


def train_step(model: keras.Model, loss: Metric, optimizer: keras.optimizers.Optimizer) -> StepFn:
    """The seed's step as ``step(x_batch, y_batch) -> batch loss``: mean loss, gradient, update.

    Any objective plugs into the shared loop as such a function: it runs inside the compiled
    loop (traced once, under XLA when ``jit``), updates its variables and returns the batch's
    mean loss. An objective drawing a second batch a step (e.g. unlabeled images beside the
    labeled ones) keeps that data and its own position in tensors/variables it closes over.
    """
    variables = model.trainable_variables
    optimizer.build(variables)

    def step(x_batch: tf.Tensor, y_batch: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            batch_loss = ops.mean(loss(y_batch, model(x_batch, training=True)))
        optimizer.apply(tape.gradient(batch_loss, variables), variables)
        return batch_loss

    return step


class EpochRunner:
    """``run_epoch(order) -> summed loss``: one epoch of mini-batches of ``order``, compiled.

    Every full batch is a fixed-size slice of ``order`` (``tf.slice(order, [i * b], [b])``),
    so all of them share one static shape and run ``steps_per_execution`` at a time in one
    ``tf.while_loop``; the one short last batch (if any) runs through a second function with its
    own static shape. With ``jit`` the full batches' loop is compiled by XLA (a dynamic batch
    size is what keeps XLA out). The sum is each batch's mean loss times its size, as the
    seed's ``fit`` averages; ``steps_per_execution`` batches a call, one float read a call.
    """

    def __init__(
        self,
        step: StepFn,
        x_all: tf.Tensor,
        y_all: tf.Tensor,
        batch_size: int,
        steps_per_execution: int = 200,
        jit: bool = False,
    ):
        n = int(x_all.shape[0])
        self.full_steps, self.rest = divmod(n, batch_size)
        self.n_steps = self.full_steps + (1 if self.rest else 0)
        self.chunk = max(1, steps_per_execution)
        targets_are_inputs = y_all is x_all
        b = batch_size

        def batch_loss(indices: tf.Tensor, size: int) -> tf.Tensor:
            x_batch = tf.gather(x_all, indices)
            y_batch = x_batch if targets_are_inputs else tf.gather(y_all, indices)
            return step(x_batch, y_batch) * float(size)

        def full_batches(order, first, count):
            def body(index, total):
                return index + 1, total + batch_loss(tf.slice(order, [index * b], [b]), b)

            _, total = tf.while_loop(
                lambda index, total: index < first + count, body, (first, tf.constant(0.0))
            )
            return total

        def last_batch(order):
            return batch_loss(order[self.full_steps * b :], self.rest)

        # The short batch runs once an epoch: XLA's compile (~0.5 s) would cost more than it saves.
        self.full_batches: TrainSteps = tf.function(
            full_batches, autograph=False, jit_compile=jit, reduce_retracing=True
        )
        self.last_batch = tf.function(last_batch, autograph=False)

    def __call__(self, order: tf.Tensor, on_progress: Callable[[int], None] | None = None) -> float:
        totals = []
        for first in range(0, self.full_steps, self.chunk):
            count = min(self.chunk, self.full_steps - first)
            totals.append(self.full_batches(order, tf.constant(first), tf.constant(count)))
            if on_progress:
                on_progress(first + count)
        if self.rest:
            totals.append(self.last_batch(order))
            if on_progress:
                on_progress(self.n_steps)
        return sum(float(total) for total in totals)


def compiled_steps(
    model: keras.Model,
    x_all: tf.Tensor,
    y_all: tf.Tensor,
    loss: Metric,
    optimizer: keras.optimizers.Optimizer,
    batch_size: int,
    steps_per_execution: int = 200,
    jit: bool = False,
) -> EpochRunner:
    """The seed's supervised step (``train_step``) run by an ``EpochRunner``."""
    step = train_step(model, loss, optimizer)
    return EpochRunner(step, x_all, y_all, batch_size, steps_per_execution, jit)


# XLA's compile (~0.5 CPU-s for the seed's autoencoder) pays for itself after about 5,000
# batches of 32 (it saves ~0.1 ms a batch on this machine); below that "auto" stays plain.
JIT_AUTO_MIN_BATCHES = 5000
# Layers that draw random numbers in training. XLA's CPU random-number generator made a
# dropout-corrupted 784-500-200 autoencoder's epoch 4x slower here (8.9 against 2.1 CPU-s):
# "auto" keeps such models plain.
RANDOM_LAYERS = (
    keras.layers.Dropout, keras.layers.GaussianNoise, keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)  # fmt: skip


def draws_random_numbers(model: keras.Layer) -> bool:
    """Whether training ``model`` draws random numbers (a dropout or noise layer in it)."""
    return any(isinstance(layer, RANDOM_LAYERS) for layer in model._flatten_layers())


def use_jit(settings: FitSettings, n_examples: int, draws_random: bool = False) -> bool:
    """``settings.jit``, with ``"auto"`` resolved: XLA when the run has enough full batches
    and its steps draw no random numbers."""
    if settings.jit == "auto":
        long_enough = settings.epochs * (n_examples // settings.batch_size) >= JIT_AUTO_MIN_BATCHES
        return long_enough and not draws_random
    return bool(settings.jit)


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
    run_epoch = compiled_steps(
        model, x_all, y_all, loss, optimizer, settings.batch_size,
        settings.steps_per_execution, use_jit(settings, len(x), draws_random_numbers(model)),
    )  # fmt: skip
    # Validation stays a plain graph under jit too: XLA saves ~1% of it and compiles per shape.
    validate = evaluator(model, loss, metrics, settings.validation_batch_size)
    rng = np.random.default_rng(settings.seed)
    n_steps = run_epoch.n_steps
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
        loss_sum = run_epoch(order, bar.update if bar else None)
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
