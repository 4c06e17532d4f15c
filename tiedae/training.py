"""The training loop both stages share: the plain ``fit`` recipe, with less per-step overhead.

Keras's ``fit`` spends most of a small model's step in dispatch. Here the data sits in memory
as tensors (copied once; an autoencoder's targets are its inputs, not a second copy), each
compiled call runs ``steps_per_execution`` shuffled mini-batches in one ``tf.while_loop``
(traced without AutoGraph), and validation runs once an epoch in large batches through one
function traced once. With ``jit`` the loop is compiled by XLA: every full batch is a
fixed-size slice of the epoch's order (one static shape), the short last batch runs apart.
The epoch loop around it (``tiedae/loop.py``: ``run_epochs``, ``fit``: shuffling, validation,
early stopping, the best weights, checkpoints) is also the semi-supervised objectives'
(``fit_objective``), which bring their own compiled steps. The mathematics is the seed's
(same batch size, same loss reduction, same optimizer update), so what is learned is the same;
``tests/test_bench.py`` checks it against a plain eager loop. ``make bench`` measures the speed
against the seed's ``fit``.
"""

from __future__ import annotations

import functools
import os
import pickle
import sys
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tiedae.data import TENSOR_ALIGNMENT
from tiedae.layers import DenseTranspose

EpochCallback = Callable[[int, Mapping[str, float]], None]
Metric = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
ArrayLike = np.ndarray | tf.Tensor

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
    """Where a training (``run_epochs``: ``fit``, ``fit_objective``) saves its whole state every
    ``every`` epochs, and resumes from.

    The state (its variables and the optimizer's, epoch, early-stopping state, history, the
    shuffling generator's state) is one pickle written atomically, so a process killed while
    saving leaves the previous one. A training of several ``fit`` calls gives each its own
    ``part``; a ``fit`` that ran to its end saves a final state, so a resumed training passes
    over it without training again. ``resumed`` is told the name and the epoch a ``fit``
    resumed after.
    """

    folder: Path
    every: int = 1
    name: str = "fit"
    resumed: Callable[[str, int], None] | None = None

    def due(self, epoch: int, last: bool) -> bool:
        """Whether to save after ``epoch`` epochs (``last``: the loop ends there)."""
        return self.every > 0 and (last or epoch % self.every == 0)

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


def as_tensor(array: ArrayLike) -> tf.Tensor:
    """``array`` as a tensor, sharing its memory where TensorFlow can (a writeable, C-contiguous
    numpy array starting on a ``TENSOR_ALIGNMENT`` boundary, as ``tiedae.data`` loads images),
    else copied.

    Sharing saves the copy and, on a fresh process, its first touch of new memory: ~0.4 s and
    172 MB for Fashion-MNIST's training images on this machine's VM. The data must not be
    written to while the tensor lives (tiedae never writes to loaded images).
    """
    if (
        isinstance(array, np.ndarray)
        and array.flags.c_contiguous
        and array.flags.writeable
        and array.ctypes.data % TENSOR_ALIGNMENT == 0
        and array.dtype in (np.float32, np.int64, np.int32)
    ):
        return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
    return tf.convert_to_tensor(array)


def one_function(python_function: Callable, **options: Any) -> Callable:
    """``tf.function(python_function, **options)`` for a function made for one model (a
    fit's compiled loop, a model's inference or evaluation), traced once for it.

    TensorFlow's retracing warning counts traces by the source line of the function, so a
    sweep's fifth short fit in a row, each tracing its own new function once, would read as
    "5 out of the last 10 calls triggered retracing". Given a ``functools.partial`` it counts
    each function apart: a function that is traced again and again still warns.
    """
    return tf.function(functools.partial(python_function), **options)


# A model's inference and evaluation functions, built once per model and kind and kept beside
# it (weakly: they go with the model), each traced once per input shape past the batch axis,
# which their input signatures leave open. Built per call instead, every call traced a new
# function (and TensorFlow warned of retracing); with the batch size fixed by the first
# batch, the short last one traced a second graph.
_TRACED: weakref.WeakKeyDictionary[keras.Model, dict[Any, Any]] = weakref.WeakKeyDictionary()


def batch_spec(array: ArrayLike) -> tf.TensorSpec:
    """The spec of ``array``'s batches: its shape past the first axis, any batch size."""
    return tf.TensorSpec((None, *array.shape[1:]), tf.as_dtype(array.dtype))


def traced(model: keras.Model, key: Any, build: Callable[[], Any]) -> Any:
    """``model``'s function ``key``, made by ``build()`` the first time it is asked for."""
    functions = _TRACED.setdefault(model, {})
    if key not in functions:
        functions[key] = build()
    return functions[key]


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The model's outputs (inference mode, as float32) for all of ``x``, in large batches,
    through one function per model, traced once."""
    spec, held = batch_spec(x), weakref.ref(model)

    def build() -> Callable[[tf.Tensor], tf.Tensor]:
        def infer(batch: tf.Tensor) -> tf.Tensor:
            return tf.cast(held()(batch, training=False), tf.float32)

        return one_function(infer, input_signature=[spec], autograph=False)

    infer = traced(model, ("predict", spec), build)
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

    The graph (model, loss and metrics together) is traced once per model, loss, metrics and
    input shapes, not once a call, and reused by every evaluator asking for the same (a fit's
    validation, then the restored model's, then the test set's); no per-pixel arithmetic runs
    eagerly.
    """
    named = {"loss": loss, **(metrics or {})}
    held = weakref.ref(model)

    def build(x_spec: tf.TensorSpec, y_spec: tf.TensorSpec) -> Callable[..., dict]:
        def per_example(x_batch, y_batch):
            predictions = held()(x_batch, training=False)
            return {name: function(y_batch, predictions) for name, function in named.items()}

        return one_function(
            per_example, input_signature=[x_spec, y_spec], autograph=False, jit_compile=jit
        )

    def evaluate_all(x: ArrayLike, y: ArrayLike) -> dict[str, float]:
        x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)  # no copy if already tensors
        specs = (batch_spec(x), batch_spec(y))
        key = ("evaluate", tuple(named.items()), jit, specs)
        per_example = traced(model, key, lambda: build(*specs))
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
    if not optimizer.built:  # built already: a kept optimizer (tiedae.classify), reset
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
    The data are arguments of the compiled functions, not captured by them: ``with_data``
    runs the same functions (traced once) on other data of the same shapes.
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
        self.x_all, self.y_all = x_all, y_all
        b = batch_size

        def batch_loss(x: tf.Tensor, y: tf.Tensor, indices: tf.Tensor, size: int) -> tf.Tensor:
            x_batch = tf.gather(x, indices)
            y_batch = x_batch if targets_are_inputs else tf.gather(y, indices)
            return step(x_batch, y_batch) * float(size)

        def full_batches(x, y, order, first, count):
            def body(index, total):
                return index + 1, total + batch_loss(x, y, tf.slice(order, [index * b], [b]), b)

            _, total = tf.while_loop(
                lambda index, total: index < first + count, body, (first, tf.constant(0.0))
            )
            return total

        def last_batch(x, y, order):
            return batch_loss(x, y, order[self.full_steps * b :], self.rest)

        # The short batch runs once an epoch: XLA's compile (~0.5 s) would cost more than it saves.
        self.full_batches: TrainSteps = one_function(
            full_batches, autograph=False, jit_compile=jit, reduce_retracing=True
        )
        self.last_batch = one_function(last_batch, autograph=False)

    def with_data(self, x_all: tf.Tensor, y_all: tf.Tensor) -> EpochRunner:
        """This runner, its epochs now over ``x_all``, ``y_all`` (the shapes it was made for)."""
        if tuple(x_all.shape) != tuple(self.x_all.shape) or (
            tuple(y_all.shape) != tuple(self.y_all.shape)
        ):
            raise ValueError(f"data of shape {tuple(x_all.shape)} for a runner made for "
                             f"{tuple(self.x_all.shape)}")  # fmt: skip
        self.x_all, self.y_all = x_all, y_all
        return self

    def __call__(self, order: tf.Tensor, on_progress: Callable[[int], None] | None = None) -> float:
        totals, x, y = [], self.x_all, self.y_all
        for first in range(0, self.full_steps, self.chunk):
            count = min(self.chunk, self.full_steps - first)
            totals.append(self.full_batches(x, y, order, tf.constant(first), tf.constant(count)))
            if on_progress:
                on_progress(first + count)
        if self.rest:
            totals.append(self.last_batch(x, y, order))
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


def resolve_jit(jit: bool | str, n_batches: int, pays_off_at: float = JIT_AUTO_MIN_BATCHES) -> bool:
    """``jit`` (``runtime.jit``), with ``"auto"`` resolved: XLA for a training of
    ``n_batches`` batches if that is ``pays_off_at`` or more."""
    if jit == "auto":
        return n_batches >= pays_off_at
    return bool(jit)


# Where XLA was measured to pay off on this CPU: dense networks (``make bench``). A
# dropout-corrupted 784-500-200 autoencoder ran 4x slower under it (XLA's CPU random numbers:
# 8.9 against 2.1 CPU-s), the conv autoencoder 10x (23 against 2.2 CPU-s for 100 batches).
XLA_LAYERS = (keras.layers.Dense, DenseTranspose)
RANDOM_LAYERS = (
    keras.layers.Dropout, keras.layers.GaussianNoise, keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)  # fmt: skip


def xla_pays_off(model: keras.Layer) -> bool:
    """Whether ``runtime.jit=auto`` may compile ``model``'s training with XLA: every layer with
    weights is dense (``XLA_LAYERS``) and none draws random numbers."""
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, RANDOM_LAYERS):
            return False
        is_leaf = not layer._flatten_layers(include_self=False)
        if is_leaf and layer.weights and not isinstance(layer, XLA_LAYERS):
            return False
    return True


def use_jit(settings: FitSettings, n_examples: int, xla_suits_model: bool = True) -> bool:
    """``settings.jit`` for a ``fit`` on ``n_examples``: "auto" counts its full batches, and
    stays plain for a model XLA does not suit (``xla_pays_off``)."""
    if settings.jit == "auto" and not xla_suits_model:
        return False
    return resolve_jit(settings.jit, settings.epochs * (n_examples // settings.batch_size))
