"""Ladder network (Rasmus et al. 2015), MLP form, and its top-layer-only special case, the
Γ-model; by default as the reference code has them (CuriousAI/ladder at 5a8daa1, its
learning-rate decay as at 1c40188; experiments/reproduction/README.md lists each ingredient
with its file and line, and the setting that switches it back).

Encoder: a clean and a corrupted pass over the labeled and unlabeled images together; each
layer's pre-activation ``x W`` (no bias) is batch normalised, the corrupted pass adds Gaussian
noise to it, then ``activation(γ (z + β))`` (γ on the softmax layer only). Under the default
``bn_statistics: separate`` the labeled rows are normalised with their own statistics and the
unlabeled rows with theirs, in both passes, and the decoder and its costs see the unlabeled
rows alone. ``unlabeled`` (the labeled rows with the unlabeled rows' statistics; every row
decoded) and ``batch`` (the whole batch's) are earlier variants. At test time the saved
classifier normalises with ``inference_statistics: labeled``: the clean pass's statistics over
the labeled training images, set before every evaluation; ``moving`` keeps moving averages of
the rows ``bn_statistics`` names instead.

Decoder, from the top down: the layer above's estimate mapped down (``V``; tied: the
encoder's kernel transposed), batch normalised, combined with the corrupted lateral ``z̃`` by
the vanilla combinator ``g``; its estimate, normalised with the clean pass's statistics, is
compared with the clean ``z``. Total:
the cross-entropy of the corrupted labeled outputs + Σ_l λ_l · mean squared error at level l.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from omegaconf import DictConfig, OmegaConf

from tiedae.layers import product
from tiedae.models import OUTPUT_DTYPE
from tiedae.objectives.base import (
    Batch,
    Objective,
    ObjectiveSettings,
    labeled_batch_size,
    non_negative,
    register,
)
from tiedae.schema import setting

EPSILON = 1e-5
# vanilla combinator: mu = a1 σ(a2 u + a3) + a4 u + a5, v = a6 σ(a7 u + a8) + a9 u + a10
COMBINATOR_INIT = (0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)


@keras.saving.register_keras_serializable(package="tiedae")
class LadderDense(keras.layers.Layer):
    """``activation(γ (BN(x W) + β))`` without a bias; at inference BN uses moving averages.

    The ladder's training passes call ``preactivation``, ``activate`` and ``track`` directly;
    ``call`` is the inference pass of the saved classifier. Only the product ``x W`` follows
    the layer's compute dtype (bfloat16 under mixed precision); the normalisation, β, γ and
    the output stay float32.
    """

    def __init__(
        self, units: int, activation: str = "relu", scale: bool = False,
        momentum: float = 0.99, kernel_initializer: str | dict = "glorot_uniform",
        epsilon: float = EPSILON, **kwargs,
    ):  # fmt: skip
        super().__init__(**kwargs)
        self.units = units
        self.activation = keras.activations.get(activation)
        self.scale = scale
        self.momentum = momentum
        self.epsilon = epsilon
        # a name or a config: a new initializer object for this layer alone (a shared seeded
        # object would give two same-shaped layers the same start)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        width = (input_shape[-1], self.units)
        self.kernel = self.add_weight(name="kernel", shape=width,
                                      initializer=self.kernel_initializer)  # fmt: skip
        float32 = {"shape": (self.units,), "autocast": False}  # read as float32 in call too
        self.beta = self.add_weight(name="beta", initializer="zeros", **float32)
        self.gamma = (
            self.add_weight(name="gamma", initializer="ones", **float32) if self.scale else None
        )
        self.moving_mean = self.add_weight(
            name="moving_mean", initializer="zeros", trainable=False, **float32
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", initializer="ones", trainable=False, **float32
        )

    def preactivation(self, inputs):
        return product(inputs, self.kernel, self.compute_dtype)

    def activate(self, z):
        z = z + self.beta
        return self.activation(z * self.gamma if self.gamma is not None else z)

    def track(self, mean, variance) -> None:
        m = self.momentum
        self.moving_mean.assign(m * self.moving_mean + (1 - m) * mean)
        self.moving_variance.assign(m * self.moving_variance + (1 - m) * variance)

    def call(self, inputs, training=None):
        z = (self.preactivation(inputs) - self.moving_mean) / tf.sqrt(
            self.moving_variance + self.epsilon
        )
        return self.activate(z)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(), "units": self.units,
            "activation": keras.activations.serialize(self.activation), "scale": self.scale,
            "momentum": self.momentum, "epsilon": self.epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }  # fmt: skip


BN_STATISTICS = ("unlabeled", "batch", "separate")
# What the saved classifier normalises with: ``labeled``, the clean pass's statistics over every
# labeled training image, computed before each evaluation (the reference's); ``moving``, moving
# averages of the rows ``bn_statistics`` names.
INFERENCE_STATISTICS = ("labeled", "moving")
# How kernels start: ``fan_in_normal``, N(0, 1/fan-in) for the encoder's and the decoder's (the
# reference's); ``model``, model.kernel_initializer for the encoder's and Glorot uniform for V.
INITS = ("fan_in_normal", "model")


def batch_normalize(z, statistics_rows: tf.Tensor | None = None, epsilon: float = EPSILON):
    """``z`` normalised with the mean and variance of ``statistics_rows`` (default: ``z``)."""
    mean, variance = tf.nn.moments(z if statistics_rows is None else statistics_rows, axes=[0])
    return (z - mean) / tf.sqrt(variance + epsilon), mean, variance


def kernel_initializer(init: str, model_initializer: str) -> dict | str:
    """A fresh initializer's description for one kernel (never a shared seeded object)."""
    if init == "model":
        return model_initializer
    return {"class_name": "VarianceScaling", "config": {
        "scale": 1.0, "mode": "fan_in", "distribution": "untruncated_normal"}}  # fmt: skip


@dataclass(frozen=True)
class NormalisedSettings(ObjectiveSettings):
    """What the ladder and the Γ-model share: the batch normalisation and the kernels' start
    (the defaults are the reference code's; experiments/reproduction/README.md)."""

    tied: bool = setting(True)
    bn_statistics: str = setting("separate", allowed=BN_STATISTICS)
    inference_statistics: str = setting("labeled", allowed=INFERENCE_STATISTICS)
    bn_momentum: float = setting(0.99, minimum=0.0, below=1.0, says="in [0, 1)")
    bn_epsilon: float = setting(1e-10, positive=True, says="a number > 0")
    init: str = setting("fan_in_normal", allowed=INITS)


@dataclass(frozen=True)
class LadderSettings(NormalisedSettings):
    costs: tuple[float, ...] = setting((), own_rule=True)  # one per level: check_costs


@dataclass(frozen=True)
class GammaSettings(NormalisedSettings):
    top_cost: float = setting(0.5, minimum=0.0)  # the softmax level's λ (10 from 1000 labels)


@register("ladder")
class Ladder(Objective):
    """Hyperparameters: ``tied`` (decoder maps down with the encoder's kernels, transposed),
    ``costs`` (λ_0 .. λ_L: the input, each of ``model.sizes``, the softmax layer),
    ``bn_statistics`` (which images' statistics normalise the encoder: ``unlabeled``, the
    whole ``batch``, or each half its own, ``separate``), ``inference_statistics``
    (``INFERENCE_STATISTICS``), ``bn_momentum`` (the moving averages, when those are used),
    ``bn_epsilon`` and ``init`` (``INITS``). The defaults (conf/objective/ladder_*.yaml) are the
    reference code's; experiments/reproduction/README.md lists each with its file and line."""

    def level_costs(self, levels: int) -> list[float]:
        """λ_0 .. λ_L for the ``levels`` levels (input, hidden layers, softmax)."""
        return [float(c) for c in self.section.costs]

    settings = LadderSettings

    @classmethod
    def check(cls, section: DictConfig, cfg: DictConfig) -> list[str]:
        """The schema's checks, then the costs against the model's depth."""
        return super().check(section, cfg) + cls.check_costs(section, cfg)

    @classmethod
    def check_costs(cls, section: DictConfig, cfg: DictConfig) -> list[str]:
        problems: list[str] = []
        costs = section.get("costs")
        levels = len(cfg.model.sizes) + 2 if OmegaConf.is_list(cfg.model.get("sizes")) else None
        if not OmegaConf.is_list(costs) or (levels is not None and len(costs) != levels):
            problems.append(
                f"objective.costs={costs!r} must list {levels} numbers >= 0: one per level "
                f"(the input, each of model.sizes, the softmax layer)"
            )
        else:
            for level, cost in enumerate(costs):
                non_negative(problems, f"costs[{level}]", cost)
        return problems

    def build(self) -> keras.Model:
        model, section = self.model_cfg, self.section
        momentum, self.epsilon = float(section.bn_momentum), float(section.bn_epsilon)
        start = str(section.init)
        sizes = list(model.sizes)
        self.layers = [
            LadderDense(width, model.activation, False, momentum,
                        kernel_initializer(start, model.kernel_initializer), self.epsilon,
                        name=f"ladder_{depth}")
            for depth, width in enumerate(sizes, start=1)
        ]  # fmt: skip
        self.layers.append(LadderDense(
            self.n_classes, "softmax", True, momentum,
            kernel_initializer(start, "glorot_uniform"), self.epsilon,
            dtype=OUTPUT_DTYPE, name="head",
        ))  # fmt: skip
        classifier = keras.Sequential(
            [keras.Input(shape=self.input_shape), keras.layers.Flatten(), *self.layers],
            name="classifier",
        )
        widths = [int(np.prod(self.input_shape)), *sizes, self.n_classes]
        self.costs = self.level_costs(len(widths))
        positive = [level for level, cost in enumerate(self.costs) if cost > 0]
        self.lowest = min(positive) if positive else len(widths)
        self.loss_names = (
            "loss", "labeled_loss", *(f"reconstruction_{level}" for level in positive)
        )  # fmt: skip
        top = len(widths) - 1
        init = tf.constant(COMBINATOR_INIT)[:, None]
        self.combinators = {
            level: tf.Variable(tf.tile(init, [1, widths[level]]), name=f"combinator_{level}")
            for level in range(self.lowest, top + 1)
        }
        self.tied = bool(section.tied)
        self.bn_statistics = str(section.bn_statistics)
        self.labeled_statistics = section.inference_statistics == "labeled"
        self.down = {}  # level -> V mapping level+1 down to level (untied only)
        if not self.tied:
            self.down = {
                level: tf.Variable(
                    self.decoder_kernel(start, widths[level + 1], widths[level]), name=f"V_{level}"
                )  # fmt: skip
                for level in range(self.lowest, top)
            }
        return classifier

    @staticmethod
    def decoder_kernel(init: str, rows: int, columns: int) -> tf.Tensor:
        """A new initializer for each V, drawn from the seeded global generator."""
        description = kernel_initializer(init, "glorot_uniform")
        return keras.initializers.get(description)((rows, columns))

    def start_from(self, pretrained: Sequence[keras.layers.Dense]) -> None:
        """Pretrained kernels into the lowest layers (biases have no place under BN)."""
        for target, source in zip(self.layers[:-1], pretrained, strict=False):
            target.kernel.assign(source.kernel)

    @property
    def decoder_variables(self) -> list[tf.Variable]:
        return [*self.combinators.values(), *self.down.values()]

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        return [*self.classifier.trainable_variables, *self.decoder_variables]

    def normalize(self, z: tf.Tensor, n_labeled: tf.Tensor):
        """``z`` batch normalised as ``bn_statistics`` says, and the statistics the moving
        averages and the decoder's estimates take; rows from ``n_labeled`` on are unlabeled."""
        eps = self.epsilon
        if self.bn_statistics == "batch":
            return batch_normalize(z, epsilon=eps)
        if self.bn_statistics == "unlabeled":
            return batch_normalize(z, z[n_labeled:], eps)
        labeled, _, _ = batch_normalize(z[:n_labeled], epsilon=eps)
        unlabeled, mean, variance = batch_normalize(z[n_labeled:], epsilon=eps)
        return tf.concat([labeled, unlabeled], axis=0), mean, variance

    def prepare_inference(self, labeled_images: tf.Tensor) -> None:
        """With ``inference_statistics=labeled``, each layer's test-time mean and variance
        become the reference's final statistics: over the labeled images in batches of the
        labeled batch size, each batch passed clean and normalised with its own moments, the
        batches' means and unbiased variances averaged."""
        if not self.labeled_statistics:
            return
        n = int(labeled_images.shape[0])
        size = labeled_batch_size(self.section, n)
        sums = [[0.0, 0.0] for _ in self.layers]
        starts = range(0, n - n % size or n, size)
        for first in starts:
            rows = labeled_images[first : first + size]
            h = tf.reshape(rows, (tf.shape(rows)[0], -1))
            count = float(rows.shape[0])
            for layer, total in zip(self.layers, sums, strict=True):
                z, mean, variance = batch_normalize(layer.preactivation(h), epsilon=self.epsilon)
                total[0] += mean
                total[1] += variance * count / max(count - 1.0, 1.0)
                h = layer.activate(z)
        for layer, (mean, variance) in zip(self.layers, sums, strict=True):
            layer.moving_mean.assign(mean / len(starts))
            layer.moving_variance.assign(variance / len(starts))

    def encode(self, h: tf.Tensor, n_labeled: tf.Tensor, noisy: bool):
        """Normalised pre-activations ``z`` per level, their statistics, and the output; the
        rows from ``n_labeled`` on are the unlabeled images."""
        zs, stats = [h], [None]
        for layer in self.layers:
            z, mean, variance = self.normalize(layer.preactivation(h), n_labeled)
            if noisy:
                z = self.noise(z, self.hidden_noise)
            elif not self.labeled_statistics:
                layer.track(mean, variance)
            zs.append(z)
            stats.append((mean, variance))
            h = layer.activate(z)
        return zs, stats, h

    def combine(self, level: int, z_noisy: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
        a = tf.unstack(self.combinators[level])
        mu = a[0] * tf.sigmoid(a[1] * u + a[2]) + a[3] * u + a[4]
        v = a[5] * tf.sigmoid(a[6] * u + a[7]) + a[8] * u + a[9]
        return (z_noisy - mu) * v + mu

    def map_down(self, level: int, z_hat: tf.Tensor) -> tf.Tensor:
        """The decoder's product, in the compute dtype of the encoder layer it mirrors."""
        layer = self.layers[level]
        if self.tied:
            return product(z_hat, layer.kernel, layer.compute_dtype, transpose_b=True)
        return product(z_hat, self.down[level], layer.compute_dtype)

    def train_step(self, labeled: Batch, unlabeled: tf.Tensor) -> dict[str, tf.Tensor]:
        x, y = labeled
        n_labeled = tf.shape(x)[0]
        images = tf.concat([x, unlabeled], axis=0)
        h = tf.reshape(images, (tf.shape(images)[0], -1))
        clean, stats, _ = self.encode(h, n_labeled, noisy=False)
        noisy, _, output = self.encode(self.noise(h, self.input_noise), n_labeled, noisy=True)
        labeled_loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(y, output[:n_labeled])
        )
        losses = {"labeled_loss": labeled_loss}
        total = labeled_loss
        unlabeled_output = output[n_labeled:]  # corrupted, as the labeled cross-entropy's
        if self.bn_statistics == "separate":  # the decoder sees the unlabeled rows alone
            output = output[n_labeled:]
            clean = [z[n_labeled:] for z in clean]
            noisy = [z[n_labeled:] for z in noisy]
        top = len(self.layers)
        z_hat = None
        for level in range(top, self.lowest - 1, -1):
            u = output if level == top else self.map_down(level, z_hat)
            u, _, _ = batch_normalize(u, epsilon=self.epsilon)
            z_hat = self.combine(level, noisy[level], u)
            estimate = z_hat
            if stats[level] is not None:
                mean, variance = stats[level]
                estimate = (z_hat - mean) / tf.sqrt(variance + self.epsilon)
            if self.costs[level] > 0:
                cost = tf.reduce_mean(tf.square(estimate - clean[level]))
                losses[f"reconstruction_{level}"] = cost
                total = total + self.costs[level] * cost
        return self.penalized({"loss": total, **losses}, unlabeled_output)


@register("gamma")
class Gamma(Ladder):
    """The Γ-model: the ladder's top-layer cost only (``top_cost``), a one-level decoder."""

    settings = GammaSettings

    def level_costs(self, levels: int) -> list[float]:
        return [0.0] * (levels - 1) + [float(self.section.top_cost)]

    @classmethod
    def check_costs(cls, section: DictConfig, cfg: DictConfig) -> list[str]:
        return []  # one cost, top_cost: its schema checks it
