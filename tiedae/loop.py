"""The epoch loop both stages and the objectives share (``run_epochs``): shuffling, validation,
early stopping, the best weights, divergence, checkpoints; and ``fit``, the plain recipe on it
(``tiedae/training.py`` holds the compiled steps it runs)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tiedae.config import DivergedError
from tiedae.training import (
    Checkpoint,
    EpochCallback,
    EpochRunner,
    FitSettings,
    History,
    Metric,
    as_tensor,
    compiled_steps,
    evaluator,
    resolve_verbose,
    use_jit,
    xla_pays_off,
)

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
