"""Joint objective (a semi-supervised autoencoder): one encoder shared by the softmax head and
a decoder, tied (``DenseTranspose``) or untied. Each step: the cross-entropy of the labeled
batch plus ``weight`` x the reconstruction loss of the unlabeled batch."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from tiedae.models import build_decoder
from tiedae.objectives.base import (
    Batch,
    Objective,
    ObjectiveSettings,
    register,
    supervised_loss,
)
from tiedae.schema import setting

RECONSTRUCTIONS = ("binary_crossentropy", "mse")


@dataclass(frozen=True)
class JointSettings(ObjectiveSettings):
    tied: bool = setting(
        True
    )  # the decoder's kernels: the encoder's transposed (joint_untied: false)
    weight: float = setting(1.0, minimum=0.0)  # λ of the reconstruction term
    reconstruction: str = setting("binary_crossentropy", allowed=RECONSTRUCTIONS)


@register("joint")
class Joint(Objective):
    """Hyperparameters: ``tied``, ``weight`` (λ of the reconstruction), ``reconstruction``
    (binary_crossentropy or mse)."""

    loss_names = ("loss", "labeled_loss", "reconstruction")

    settings = JointSettings

    def build(self) -> keras.Model:
        classifier = super().build()
        model = self.model_cfg
        self.decoder = build_decoder(
            self.encoder, self.input_shape, model.activation, "sigmoid",
            bool(self.section.tied), model.kernel_initializer,
        )  # fmt: skip
        return classifier

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        return [*self.classifier.trainable_variables, *self.decoder.trainable_variables]

    def train_step(self, labeled: Batch, unlabeled: tf.Tensor) -> dict[str, tf.Tensor]:
        x, y = labeled
        probabilities, _ = self.forward(x)
        labeled_loss = supervised_loss(y, probabilities)
        unlabeled_probabilities, codes = self.forward(unlabeled)
        reconstructed = self.decoder(codes[-1], training=True)
        target = tf.reshape(unlabeled, (tf.shape(unlabeled)[0], -1))
        flat = tf.reshape(reconstructed, tf.shape(target))
        if self.section.reconstruction == "mse":
            reconstruction = tf.reduce_mean(tf.square(flat - target))
        else:
            reconstruction = tf.reduce_mean(keras.losses.binary_crossentropy(target, flat))
        total = labeled_loss + float(self.section.weight) * reconstruction
        losses = {"loss": total, "labeled_loss": labeled_loss, "reconstruction": reconstruction}
        return self.penalized(losses, unlabeled_probabilities)
