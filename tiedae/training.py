"""The training loop both stages share: the plain ``fit`` recipe, with less per-step overhead.

Keras's ``fit`` spends most of a small model's step in dispatch. Here the data sits in memory
as tensors (copied once; an autoencoder's targets are its inputs, not a second copy), each
compiled call runs ``steps_per_execution`` shuffled mini-batches in one ``tf.while_loop``
(traced without AutoGraph), and validation runs once an epoch in large batches through one
function traced once. With ``jit`` the loop is compiled by XLA: every full batch is a
fixed-size slice of the epoch's order (one static shape), the short last batch runs apart.
The epoch loop around it (``run_epochs``: shuffling, validation, early stopping, the best
weights, checkpoints) is also the semi-supervised objectives' (``fit_objective``), which bring
their own compiled steps. The mathematics is the seed's (same batch size, same loss reduction,
same optimizer update), so what is learned is the same; ``tests/test_bench.py`` checks it
against a plain eager loop. ``make bench`` measures the speed against the seed's ``fit``.
"""

from __future__ import annotations

import functools
import gc
import os
import pickle
import sys
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from omegaconf import DictConfig

from tiedae.config import DivergedError, precision_name
from tiedae.data import TENSOR_ALIGNMENT
from tiedae.layers import DenseTranspose

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


def _configure_precision(precision: str) -> None:
    """Keras's dtype policy for every layer built from now on in this process: ``float32``,
    or ``mixed_bfloat16`` (variables float32, each layer computes in bfloat16). Models keep
    their outputs float32 (``tiedae.models.OUTPUT_DTYPE``); call it before building any."""
    keras.config.set_dtype_policy(precision)


def configure_runtime(cfg: DictConfig, deterministic: bool | None = None) -> None:
    """What ``cfg.runtime`` sets for the whole process, before any model is built: thread
    pools, op determinism (``deterministic``, when given, instead of the config's) and the
    dtype policy (``runtime.precision``). Every entry point that trains calls it."""
    runtime = cfg.runtime
    if deterministic is None:
        deterministic = runtime.deterministic
    configure_tensorflow(runtime.threads, deterministic, runtime.inter_op_threads)
    _configure_precision(precision_name(cfg))
    freeze_imported_objects()


@functools.cache
def freeze_imported_objects() -> None:
    """Once a process: put what the imports made (TensorFlow, Keras, MLflow: ~500,000 Python
    objects, alive until exit anyway) out of the garbage collector's reach (``gc.freeze``).

    A full collection walks every tracked object: ~0.2-0.3 s here, paid at each automatic one
    and, in a sweep's joblib worker, after every job (loky calls ``gc.collect()`` between tasks
    when psutil is absent): a third of the time between two jobs. Objects made later are
    collected as before."""
    gc.collect()
    gc.freeze()


ArrayLike = np.ndarray | tf.Tensor


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


# --- the epoch loop ------------------------------------------------------------------------

Progress = Callable[[int], None]  # told the number of steps done so far in the epoch


@dataclass(frozen=True)
class Trainee:
    """What ``run_epochs`` trains: ``name`` (in messages), ``variables`` (its whole state, saved
    in checkpoints with the ``optimizer``'s), and ``weights``, kept at their best epoch."""

    name: str
    variables: Sequence[tf.Variable]
    weights: Sequence[tf.Variable]
    optimizer: keras.optimizers.Optimizer
    remedy: str = "lower its learning rate"  # said when the loss diverges


@dataclass(frozen=True)
class Epochs:
    """How one epoch runs: ``shuffle(rng)`` draws its order(s) of the data; ``train(epoch, order,
    progress)`` runs its ``n_steps`` steps and returns the mean of each named loss (``loss``
    among them); ``validate()`` returns the validation metrics (``loss`` among them)."""

    n_steps: int
    shuffle: Callable[[np.random.Generator], Any]
    train: Callable[[int, Any, Progress | None], dict[str, float]]
    validate: Callable[[], dict[str, float]]


@dataclass(frozen=True)
class Monitor:
    """The logged value early stopping and the kept weights follow, and which way is better."""

    key: str
    higher_is_better: bool = False

    def score(self, logs: Mapping[str, float]) -> float:
        """The value signed so that lower is better."""
        return -logs[self.key] if self.higher_is_better else logs[self.key]


VAL_LOSS = Monitor("val_loss")


@dataclass
class LoopState:
    """Where the loop stands after ``epoch`` epochs: what a checkpoint holds besides variables."""

    epoch: int = 0
    stopped: bool = False
    history: History = field(default_factory=History)
    best: float = np.inf  # the best ``Monitor.score`` so far
    best_weights: list[np.ndarray] | None = None
    waited: int = 0  # epochs since the best

    def judge(
        self, epoch: int, score: float, weights: Sequence[tf.Variable], patience: int | None
    ) -> None:
        """Keep the weights if ``score`` is the best yet; else stop after ``patience`` epochs."""
        if score < self.best:
            self.best, self.best_weights, self.waited = score, [w.numpy() for w in weights], 0
            self.history.best_epoch = epoch
        else:
            self.waited += 1
            self.stopped = patience is not None and self.waited >= patience


def run_epochs(
    trainee: Trainee,
    epochs: Epochs,
    settings: FitSettings,
    *,
    monitor: Monitor = VAL_LOSS,
    keep_best: bool = False,
    on_epoch_end: EpochCallback | None = None,
) -> History:
    """The epoch loop every training shares; returns the per-epoch logs (the named losses and
    ``val_<metric>``s). Each epoch draws its order from one generator seeded with
    ``settings.seed``, trains, stops with ``DivergedError`` on a non-finite loss, validates,
    prints (``settings.verbose``) and calls ``on_epoch_end(epoch, logs)``. With ``keep_best``,
    the weights of the best ``monitor`` are restored at the end, and ``settings.patience``
    epochs without a better one stop the loop. With ``settings.checkpoint`` it saves its whole
    state every ``checkpoint.every`` epochs and at its end, and resumes from the last one.
    """
    rng = np.random.default_rng(settings.seed)
    verbose = resolve_verbose(settings.verbose)
    checkpoint = settings.checkpoint
    loop = _resume(checkpoint, trainee, epochs, rng, verbose) if checkpoint else LoopState()
    seconds_before, started = loop.history.seconds, time.perf_counter()
    for epoch in range(loop.epoch, 0 if loop.stopped else settings.epochs):
        epoch_start = time.perf_counter()
        order = epochs.shuffle(rng)
        bar = keras.utils.Progbar(epochs.n_steps, verbose=1) if verbose == 1 else None
        if bar:
            print(f"Epoch {epoch + 1}/{settings.epochs}")
        logs = epochs.train(epoch, order, bar.update if bar else None)
        if not np.isfinite(logs["loss"]):
            raise DivergedError(
                f"training diverged: loss {logs['loss']} in epoch {epoch + 1} of {trainee.name}; "
                f"{trainee.remedy}"
            )
        logs.update({f"val_{name}": value for name, value in epochs.validate().items()})
        loop.history.epochs.append(logs)
        if verbose:
            shown = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
            print(f"epoch {epoch + 1}/{settings.epochs} - {time.perf_counter() - epoch_start:.1f}s"
                  f" - {shown}", flush=True)  # fmt: skip
        if on_epoch_end:
            on_epoch_end(epoch, logs)
        if keep_best:
            loop.judge(epoch, monitor.score(logs), trainee.weights, settings.patience)
        loop.epoch = epoch + 1
        loop.history.seconds = seconds_before + time.perf_counter() - started
        if checkpoint and checkpoint.due(loop.epoch, loop.stopped or loop.epoch == settings.epochs):
            checkpoint.save(_state(loop, trainee, rng))
        if loop.stopped:
            break
    if loop.best_weights is not None:
        for variable, value in zip(trainee.weights, loop.best_weights, strict=True):
            variable.assign(value)
    loop.history.seconds = seconds_before + time.perf_counter() - started
    return loop.history


def _state(loop: LoopState, trainee: Trainee, rng: np.random.Generator) -> dict[str, Any]:
    """What a checkpoint holds: the loop's state, the variables' values, the generator's."""
    return {
        "epoch": loop.epoch, "stopped": loop.stopped, "history": loop.history.epochs,
        "best_epoch": loop.history.best_epoch, "seconds": loop.history.seconds,
        "best": loop.best, "best_weights": loop.best_weights, "waited": loop.waited,
        "model": [v.numpy() for v in trainee.variables],
        "optimizer": [v.numpy() for v in trainee.optimizer.variables],
        "rng": rng.bit_generator.state,
    }  # fmt: skip


def _resume(
    checkpoint: Checkpoint, trainee: Trainee, epochs: Epochs, rng: np.random.Generator,
    verbose: int,
) -> LoopState:  # fmt: skip
    """The loop's state saved in ``checkpoint`` (a new one if none is), with the variables and
    the generator restored as they were."""
    state = checkpoint.load()
    if state is None:
        return LoopState()
    for variables, values in ((trainee.variables, state["model"]),
                              (trainee.optimizer.variables, state["optimizer"])):  # fmt: skip
        if len(variables) != len(values):
            raise ValueError(
                f"checkpoint does not fit: {len(values)} saved variables, {len(variables)} here"
            )
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
    if "rng" in state:
        rng.bit_generator.state = state["rng"]
    else:  # saved before the generator's state was: draw the orders already drawn again
        for _ in range(state["epoch"]):
            epochs.shuffle(rng)
    history = History(list(state["history"]), state["best_epoch"], state["seconds"])
    loop = LoopState(
        state["epoch"], state["stopped"], history, state.get("best", state.get("best_loss")),
        state["best_weights"], state["waited"],
    )  # fmt: skip
    if verbose:
        print(f"{checkpoint.name}: resumed from epoch {loop.epoch}", flush=True)
    if checkpoint.resumed:
        checkpoint.resumed(checkpoint.name, loop.epoch)
    return loop


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
    runners: dict[Any, EpochRunner] | None = None,
) -> History:
    """Mini-batch training with per-epoch validation; returns the per-epoch logs.

    Logs hold ``loss`` (mean training loss of the epoch), ``val_loss`` and ``val_<metric>``.
    With ``settings.patience``, early stopping on ``val_loss`` restores the best weights.
    With ``runners`` (a dict kept with ``model`` and ``optimizer``), the compiled epoch is
    taken from it when an earlier fit of them on data of the same shapes left one there, and
    left there otherwise: a sweep worker traces a classifier's training once, not once a job.
    """
    # The data sits in memory as tensors (shared with numpy where it can be, else copied once);
    # an autoencoder's targets are its inputs.
    x_all, x_valid = as_tensor(x), as_tensor(validation[0])
    y_all = x_all if y is x else as_tensor(y)
    y_valid = x_valid if validation[1] is validation[0] else as_tensor(validation[1])
    jit = use_jit(settings, len(x), xla_pays_off(model))
    key = (optimizer, loss, settings.batch_size, settings.steps_per_execution, jit,
           tuple(x_all.shape), None if y is x else tuple(y_all.shape),
           tuple(id(variable) for variable in model.trainable_variables))  # fmt: skip
    run_epoch = runners.get(key) if runners is not None else None
    if run_epoch is None:
        run_epoch = compiled_steps(
            model, x_all, y_all, loss, optimizer, settings.batch_size,
            settings.steps_per_execution, jit,
        )  # fmt: skip
        if runners is not None:
            runners[key] = run_epoch
    else:  # traced for an earlier fit of this model and optimizer: the same graph, new data
        run_epoch = run_epoch.with_data(x_all, y_all)
    # Validation stays a plain graph under jit too: XLA saves ~1% of it and compiles per shape.
    validate = evaluator(model, loss, metrics, settings.validation_batch_size)

    def train(epoch: int, order: np.ndarray, progress: Progress | None) -> dict[str, float]:
        return {"loss": run_epoch(tf.constant(order, dtype=tf.int32), progress) / len(x)}

    epochs = Epochs(
        run_epoch.n_steps, lambda rng: rng.permutation(len(x)), train,
        lambda: validate(x_valid, y_valid),
    )  # fmt: skip
    trainee = Trainee(model.name, model.variables, model.weights, optimizer)
    return run_epochs(
        trainee, epochs, settings, keep_best=settings.patience is not None,
        on_epoch_end=on_epoch_end,
    )  # fmt: skip
