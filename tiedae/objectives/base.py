"""What every semi-supervised objective shares: its hyperparameters' checks, the noisy MLP pass,
and the compiled two-stream loop (a labeled and an unlabeled batch every step).

An objective is a class registered under a name (``@register("ladder")``). It declares its own
hyperparameters (``check`` lists the problems with them, before anything is trained), builds
the networks it needs, and implements ``train_step(labeled, unlabeled)``: a dict of named
losses whose ``loss`` entry is the total the gradient follows. ``fit_objective`` runs it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import keras
import numpy as np
import tensorflow as tf
from omegaconf import DictConfig, OmegaConf

from tiedae import checks
from tiedae.config import ConfigError, uses_objective
from tiedae.loop import Epochs, Monitor, Progress, Trainee, run_epochs
from tiedae.models import (
    DEFAULT_FAMILY,
    build_encoder,
    encoder_dense_layers,
    family_name,
    softmax_head,
)
from tiedae.objectives.penalties import PENALTIES
from tiedae.schema import check as check_section
from tiedae.schema import setting
from tiedae.training import (
    EpochCallback,
    FitSettings,
    History,
    as_tensor,
    evaluator,
    one_function,
    resolve_jit,
)

ACCURACY = {"accuracy": keras.metrics.sparse_categorical_accuracy}
MONITORS = ("val_accuracy", "val_loss")
# How labeled batches are drawn: ``cycle`` (the ladder's reference) takes each batch from one
# shuffled pass over the labeled images, min(batch size, N) of them, so no image is twice in a
# batch; ``concatenated`` slices batches across concatenated passes (an image may repeat).
LABELED_BATCHES = ("cycle", "concatenated")
Batch = tuple[tf.Tensor, tf.Tensor]  # (images, labels); unlabeled batches carry images only
Logs = dict[str, float]
# With runtime.jit=auto, XLA from this many steps of a training: never yet. On CPU XLA made the
# noisy steps slower (a step: ladder x3.6, mean teacher x1.4, joint x1.3; its random normals
# are slow there, and even with Philox ones the ladder only broke even) and compiles for
# 5-15 CPU-s; runtime.jit=true still asks for it.
JIT_AUTO_MIN_STEPS = math.inf

OBJECTIVES: dict[str, type[Objective]] = {}


def register(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator: ``objective.name=<name>`` selects the class."""

    def add(cls: type[Objective]) -> type[Objective]:
        cls.name = name
        OBJECTIVES[name] = cls
        return cls

    return add


# --- checks -------------------------------------------------------------------------------


def non_negative(problems: list[str], key: str, value: Any) -> None:
    checks.non_negative(problems, f"objective.{key}", value)


def positive_int(problems: list[str], key: str, value: Any) -> None:
    checks.positive_int(problems, f"objective.{key}", value)


def boolean(problems: list[str], key: str, value: Any) -> None:
    checks.boolean(problems, f"objective.{key}", value)


def one_of(problems: list[str], key: str, value: Any, allowed: Sequence[str]) -> None:
    checks.one_of(problems, f"objective.{key}", value, allowed)


BY_LABELS = "by_labels"  # {N: {setting: value}}: a labeled count's own settings (the reference's)


def for_labels(section: DictConfig, n_labels: int) -> DictConfig:
    """``section`` with the ``by_labels`` entry of the largest count <= ``n_labels`` merged in,
    and ``by_labels`` itself gone: the settings a run at ``n_labels`` labels trains with."""
    chosen = OmegaConf.masked_copy(section, [k for k in section if k != BY_LABELS])
    entries = {int(n): settings for n, settings in (section.get(BY_LABELS) or {}).items()}
    counts = sorted(n for n in entries if n <= n_labels)
    if counts:
        chosen = OmegaConf.merge(chosen, entries[counts[-1]])
    return chosen


def _check_by_labels(section: DictConfig, cfg: DictConfig) -> list[str]:
    """Every ``by_labels`` entry: a positive count of settings the objective already has,
    which, merged in, pass the objective's own checks — those of counts above
    ``labels.count`` (when it is a number) only for their form: a run at 100 labels with
    other ``model.sizes`` is not stopped by the 1000-label costs it never uses."""
    entries = section.get(BY_LABELS)
    if entries is None:
        return []
    if not OmegaConf.is_dict(entries):
        return [f"objective.{BY_LABELS}={entries!r} must map labeled counts to settings"]
    count_run = cfg.get("labels", {}).get("count")
    applies = (
        count_run if isinstance(count_run, int) and cfg.labels.get("fraction") is None else None
    )
    problems: list[str] = []
    for count, settings in entries.items():
        where = f"objective.{BY_LABELS}.{count}"
        if not str(count).isdigit() or int(count) < 1 or not OmegaConf.is_dict(settings):
            problems.append(f"{where} must be a positive labeled count mapping to settings")
            continue
        unknown = sorted(set(settings) - set(section) - {BY_LABELS})
        if unknown:
            problems.append(f"{where} sets {', '.join(unknown)}, which the objective does not have")
            continue
        if applies is not None and int(count) > applies:
            continue
        merged = OmegaConf.merge(for_labels(section, 0), settings)
        problems += [f"{where}: {p}" for p in OBJECTIVES[section.name].check(merged, cfg)]
    return problems


def check_objective(cfg: DictConfig) -> None:
    """Raise one ConfigError naming every bad ``objective.*`` value (does no I/O)."""
    if not uses_objective(cfg):
        return
    section = cfg.objective
    name = section.get("name")
    if name not in OBJECTIVES:
        raise ConfigError(
            f"objective.name={name!r} is unknown; allowed: none, {', '.join(sorted(OBJECTIVES))}"
        )
    problems = OBJECTIVES[name].check(for_labels(section, 0), cfg) + _check_by_labels(section, cfg)
    if cfg.classifier.get("kind", "keras") != "keras":
        problems.append(
            f"objective={name} trains a network but classifier.kind={cfg.classifier.kind}; "
            "use a keras classifier (e.g. classifier=finetune) or objective=none"
        )
    if family_name(cfg.model) != DEFAULT_FAMILY:
        problems.append(
            f"objective={name} builds an MLP of model.sizes, not the {family_name(cfg.model)} "
            f"model {cfg.model.get('name')}; use model=tied or model=untied, or objective=none"
        )
    if problems:
        raise ConfigError("; ".join(problems))


# --- the objective ------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectiveSettings:
    """What every objective reads (``conf/objective/_common.yaml``); an objective's own
    hyperparameters extend it (``class VATSettings(ObjectiveSettings)``) as its ``settings``."""

    labeled_batch_size: int = setting(100, minimum=1)
    unlabeled_batch_size: int = setting(100, minimum=1)
    steps_per_epoch: int | None = setting(None, minimum=1, means="null: one pass over the pool")
    input_noise: float = setting(0.3, minimum=0.0)
    hidden_noise: float = setting(0.3, minimum=0.0)
    monitor: Literal["val_accuracy", "val_loss"] = setting("val_accuracy")
    lr_decay_start: float | None = setting(None, minimum=0.0, below=1.0, says="null or in [0, 1)")
    epochs: int | None = setting(None, minimum=1, means="null: the classifier's")
    patience: int | None = setting(None, minimum=1, means="null: the classifier's")
    penalty: str = setting("none", allowed=("none", *PENALTIES))
    penalty_weight: float = setting(1.0, minimum=0.0)
    labeled_batches: Literal["cycle", "concatenated"] = setting("concatenated")


class Objective:
    """One semi-supervised method: its networks, its losses, its per-step updates.

    Shared hyperparameters (every ``conf/objective/*.yaml``): ``labeled_batch_size``,
    ``unlabeled_batch_size``, ``steps_per_epoch`` (null: one pass over the unlabeled pool),
    ``input_noise`` and ``hidden_noise`` (Gaussian standard deviations, training only),
    ``monitor`` (what early stopping and the kept weights follow), ``lr_decay_start`` (null, or
    the fraction of the epochs after which the learning rate falls linearly to 0); ``epochs``
    and ``patience`` (null: the classifier's), so a sweep's ``classifier.epochs`` for other rows
    leaves these alone; ``penalty`` (``none`` or a name in ``PENALTIES``) and
    ``penalty_weight``: a term on the unlabeled predictions added to the objective's own loss,
    which ``train_step`` applies through ``penalized``. XLA follows ``runtime.jit``, as the
    other trainings do.
    """

    name: ClassVar[str] = ""
    loss_names: tuple[str, ...] = ("loss", "labeled_loss")
    settings: ClassVar[type] = ObjectiveSettings  # its hyperparameters, typed

    def __init__(
        self, section: DictConfig, input_shape: Sequence[int], n_classes: int,
        model_cfg: DictConfig, seed: int, steps_per_epoch: int,
    ) -> None:  # fmt: skip
        self.section = section
        self.input_shape = tuple(input_shape)
        self.n_classes = n_classes
        self.model_cfg = model_cfg
        self.steps_per_epoch = steps_per_epoch
        self.seed = seed
        self.input_noise = float(section.input_noise)
        self.hidden_noise = float(section.hidden_noise)
        self.noise_seed = keras.random.SeedGenerator(seed)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="objective_step")
        self.penalty = PENALTIES.get(section.get("penalty", "none"))
        self.penalty_weight = float(section.penalty_weight) if self.penalty else 0.0
        self.classifier = self.build()
        if self.penalty is not None:
            self.loss_names = (*self.loss_names, "penalty")

    @classmethod
    def check(cls, section: DictConfig, cfg: DictConfig) -> list[str]:
        """The problems with the section's values, one line each: its ``settings`` schema's
        (types and ranges), then what an objective adds by overriding this."""
        problems: list[str] = []
        check_section(problems, "objective", section, cls.settings)
        return problems

    # networks ----------------------------------------------------------------------------

    def build(self) -> keras.Model:
        """The classifier that is evaluated and saved; here an MLP of ``model.sizes``."""
        model = self.model_cfg
        self.encoder = build_encoder(
            self.input_shape, list(model.sizes), model.activation, model.kernel_initializer
        )
        self.head = softmax_head(self.n_classes)
        return keras.Sequential(
            [keras.Input(shape=self.input_shape), self.encoder, self.head], name="classifier"
        )

    def start_from(self, pretrained: Sequence[keras.layers.Dense]) -> None:
        """Copy pretrained encoder layers into the lowest hidden layers (as a transplant)."""
        for target, source in zip(encoder_dense_layers(self.encoder), pretrained, strict=False):
            target.set_weights(source.get_weights())

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        return list(self.classifier.trainable_variables)

    @property
    def variables(self) -> list[tf.Variable]:
        """Its whole state, as a checkpoint saves it: networks (the classifier's moving
        averages too), the step count and the noise's seed."""
        variables = [
            *self.classifier.variables, *self.trainable_variables, self.step,
            self.noise_seed.state,
        ]  # fmt: skip
        return list({id(v): v for v in variables}.values())  # each once, in order

    def count_parameters(self) -> int:
        return sum(int(np.prod(v.shape)) for v in self.trainable_variables)

    def noise(self, x: tf.Tensor, stddev: float) -> tf.Tensor:
        if stddev == 0:
            return x
        return x + keras.random.normal(tf.shape(x), stddev=stddev, seed=self.noise_seed)

    def forward(self, x: tf.Tensor, noisy: bool = True) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """Class probabilities and hidden codes (float32 whatever the layers compute in);
        Gaussian noise on input and hidden layers."""
        h = tf.reshape(x, (tf.shape(x)[0], -1))
        h = self.noise(h, self.input_noise) if noisy else h
        codes = []
        for dense in encoder_dense_layers(self.encoder):
            h = tf.cast(dense(h), tf.float32)
            h = self.noise(h, self.hidden_noise) if noisy else h
            codes.append(h)
        return self.head(h), codes

    def ramp(self, epochs: float) -> tf.Tensor:
        """Tarvainen & Valpola's sigmoid ramp-up, exp(-5 (1 - t)^2), over ``epochs`` epochs."""
        if epochs <= 0:
            return tf.constant(1.0)
        t = tf.cast(self.step, tf.float32) / float(epochs * self.steps_per_epoch)
        t = tf.minimum(t, 1.0)
        return tf.exp(-5.0 * tf.square(1.0 - t))

    # one step ----------------------------------------------------------------------------

    def train_step(self, labeled: Batch, unlabeled: tf.Tensor) -> dict[str, tf.Tensor]:
        """Named losses of one step; ``loss`` is the total (returned through ``penalized``)."""
        raise NotImplementedError

    def penalized(
        self, losses: dict[str, tf.Tensor], unlabeled_probabilities: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        """``losses`` with ``objective.penalty`` of the unlabeled predictions added to the
        total, and named ``penalty``; unchanged without one."""
        if self.penalty is None:
            return losses
        term = self.penalty(unlabeled_probabilities)
        return {**losses, "loss": losses["loss"] + self.penalty_weight * term, "penalty": term}

    def after_update(self) -> None:
        """Runs after each optimizer update (mean teacher's average)."""

    def prepare_inference(self, labeled_images: tf.Tensor) -> None:
        """Runs before the classifier is evaluated (each validation, so also after the last
        epoch): the ladder's test-time statistics from the labeled images."""


def supervised_loss(labels: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, probabilities))


# --- the loop -----------------------------------------------------------------------------


def steps_per_epoch(section: DictConfig, n_unlabeled: int) -> int:
    given = section.get("steps_per_epoch")
    return int(given) if given else max(1, math.ceil(n_unlabeled / section.unlabeled_batch_size))


def shuffled_orders(rng: np.random.Generator, n: int, needed: int, whole: int = 1) -> tf.Tensor:
    """Shuffled passes over ``range(n)``, each cut to a multiple of ``whole`` (so a batch of
    ``whole`` never spans two passes), concatenated to ``needed`` indices."""
    used = n - n % whole
    passes = [rng.permutation(n)[:used] for _ in range(math.ceil(needed / used))]
    return tf.constant(np.concatenate(passes)[:needed], dtype=tf.int32)


def labeled_batch_size(section: DictConfig, n_labeled: int) -> int:
    """``cycle``: at most one pass's worth, min(batch size, N); else the batch size."""
    size = int(section.labeled_batch_size)
    return min(size, n_labeled) if section.get("labeled_batches") == "cycle" else size


def compiled_objective_steps(
    objective: Objective, optimizer: keras.optimizers.Optimizer,
    x_labeled: tf.Tensor, y_labeled: tf.Tensor, x_unlabeled: tf.Tensor,
    labeled_batch: int, unlabeled_batch: int, jit_compile: bool = False,
) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, ...]]:  # fmt: skip
    """``run(labeled_order, unlabeled_order, first, count)``: steps ``first .. first+count-1``.

    Every step takes a fixed-size slice of each order (so XLA sees static shapes), the
    objective's named losses, the gradient of ``loss`` and one update; one call runs ``count``
    steps in a ``tf.while_loop`` traced without AutoGraph and returns each loss summed.
    """
    variables = objective.trainable_variables
    optimizer.build(variables)
    names = objective.loss_names

    def step(labeled_order, unlabeled_order, index, sums):
        take_labeled = tf.slice(labeled_order, [index * labeled_batch], [labeled_batch])
        take_unlabeled = tf.slice(unlabeled_order, [index * unlabeled_batch], [unlabeled_batch])
        labeled = (tf.gather(x_labeled, take_labeled), tf.gather(y_labeled, take_labeled))
        unlabeled = tf.gather(x_unlabeled, take_unlabeled)
        with tf.GradientTape() as tape:
            losses = objective.train_step(labeled, unlabeled)
        optimizer.apply(tape.gradient(losses["loss"], variables), variables)
        objective.after_update()
        objective.step.assign_add(1)
        return index + 1, tuple(
            s + tf.cast(losses[n], tf.float32) for s, n in zip(sums, names, strict=True)
        )

    def run(labeled_order, unlabeled_order, first, count):
        zeros = tuple(tf.constant(0.0) for _ in names)
        _, sums = tf.while_loop(
            lambda index, sums: index < first + count,
            lambda index, sums: step(labeled_order, unlabeled_order, index, sums),
            (first, zeros),
        )
        return sums

    return one_function(run, reduce_retracing=True, autograph=False, jit_compile=jit_compile)


def fit_objective(
    objective: Objective,
    labeled: tuple[np.ndarray, np.ndarray],
    unlabeled: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray],
    *,
    optimizer: keras.optimizers.Optimizer,
    settings: FitSettings,
    on_epoch_end: EpochCallback | None = None,
    keep_best: bool = True,
) -> History:
    """Train ``objective`` for ``settings.epochs`` epochs of its steps in the shared loop
    (``run_epochs``); per-epoch logs hold the mean of each named loss, ``val_loss`` and
    ``val_accuracy``. With ``keep_best`` the best weights on ``objective.monitor`` are kept
    (else the last epoch's: nothing to choose on); with ``settings.patience`` it stops when
    the monitor has not improved for that many epochs.
    ``settings.checkpoint`` saves and resumes it; ``settings.jit`` applies ("auto": XLA from
    ``JIT_AUTO_MIN_STEPS`` steps)."""
    section = objective.section
    x_labeled, y_labeled = tf.constant(labeled[0]), tf.constant(labeled[1])
    x_unlabeled = as_tensor(unlabeled)
    n_steps = objective.steps_per_epoch
    lb, ub = labeled_batch_size(section, len(labeled[0])), int(section.unlabeled_batch_size)
    whole = lb if section.get("labeled_batches") == "cycle" else 1
    run = compiled_objective_steps(
        objective, optimizer, x_labeled, y_labeled, x_unlabeled, lb, ub,
        resolve_jit(settings.jit, settings.epochs * n_steps, JIT_AUTO_MIN_STEPS),
    )  # fmt: skip
    validate = evaluator(
        objective.classifier, keras.losses.sparse_categorical_crossentropy, ACCURACY,
        settings.validation_batch_size,
    )  # fmt: skip
    x_valid, y_valid = as_tensor(validation[0]), as_tensor(validation[1])

    def validate_now() -> Logs:
        objective.prepare_inference(x_labeled)
        return validate(x_valid, y_valid)

    chunk, names = max(1, settings.steps_per_execution), objective.loss_names
    base_rate = float(optimizer.learning_rate.numpy())
    decay_start = section.get("lr_decay_start")

    def shuffle(rng: np.random.Generator) -> tuple[tf.Tensor, tf.Tensor]:
        return (
            shuffled_orders(rng, len(labeled[0]), n_steps * lb, whole),
            shuffled_orders(rng, len(unlabeled), n_steps * ub),
        )

    def train(epoch: int, orders: tuple[tf.Tensor, ...], progress: Progress | None) -> Logs:
        if decay_start is not None:
            rate = base_rate * learning_rate_factor(epoch, settings.epochs, float(decay_start))
            optimizer.learning_rate.assign(rate)
        sums = np.zeros(len(names))
        for first in range(0, n_steps, chunk):
            count = min(chunk, n_steps - first)
            sums += [float(s) for s in run(*orders, tf.constant(first), tf.constant(count))]
            if progress:
                progress(first + count)
        return {name: total / n_steps for name, total in zip(names, sums, strict=True)}

    trainee = Trainee(
        f"objective {objective.name}", objective.variables, objective.classifier.weights,
        optimizer, remedy="lower classifier.learning_rate or the objective's weights",
    )  # fmt: skip
    monitor = Monitor(section.monitor, higher_is_better=section.monitor == "val_accuracy")
    epochs = Epochs(n_steps, shuffle, train, validate_now)
    return run_epochs(
        trainee, epochs, settings, monitor=monitor, keep_best=keep_best, on_epoch_end=on_epoch_end
    )


def learning_rate_factor(epoch: int, epochs: int, start: float) -> float:
    """The rate's factor in epoch ``epoch`` (0-based): 1 while no more than ``start`` x
    ``epochs`` epochs are done, then (epochs - done) / (epochs - start x epochs), so the value
    after the last epoch is 0 (the reference's per-epoch LRDecay, run.py/nn.py, at 1c40188)."""
    first = start * epochs
    if epoch <= first:
        return 1.0
    return (epochs - epoch) / (epochs - first)
