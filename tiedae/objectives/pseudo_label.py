"""Pseudo-labelling (Lee 2013): the network's own confident predictions on unlabeled images
become their targets; the unlabeled term's weight ramps up from 0."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from tiedae.objectives.base import Batch, Objective, ObjectiveSettings, register, supervised_loss
from tiedae.schema import setting


def pseudo_labels(probabilities: tf.Tensor, threshold: float) -> tuple[tf.Tensor, tf.Tensor]:
    """The most probable class of each row, and 1.0 where its probability >= ``threshold``."""
    labels = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    confident = tf.cast(tf.reduce_max(probabilities, axis=-1) >= threshold, tf.float32)
    return labels, confident


@dataclass(frozen=True)
class PseudoLabelSettings(ObjectiveSettings):
    threshold: float = setting(0.95, positive=True, maximum=1.0, says="in (0, 1]")
    weight: float = setting(1.0, minimum=0.0)
    ramp_up_epochs: float = setting(5, minimum=0.0)


@register("pseudo_label")
class PseudoLabel(Objective):
    """Hyperparameters: ``threshold`` in (0, 1] (confidence a pseudo-label needs), ``weight``
    (its λ) and ``ramp_up_epochs`` (epochs of the sigmoid ramp-up of λ; 0: none)."""

    loss_names = ("loss", "labeled_loss", "pseudo_loss", "confident")

    settings = PseudoLabelSettings

    def train_step(self, labeled: Batch, unlabeled: tf.Tensor) -> dict[str, tf.Tensor]:
        x, y = labeled
        probabilities, _ = self.forward(x)
        labeled_loss = supervised_loss(y, probabilities)
        clean, _ = self.forward(unlabeled, noisy=False)
        targets, confident = pseudo_labels(tf.stop_gradient(clean), float(self.section.threshold))
        noisy, _ = self.forward(unlabeled)
        per_image = keras.losses.sparse_categorical_crossentropy(targets, noisy)
        pseudo_loss = tf.reduce_sum(per_image * confident) / float(
            self.section.unlabeled_batch_size
        )
        weight = float(self.section.weight) * self.ramp(float(self.section.ramp_up_epochs))
        losses = {
            "loss": labeled_loss + weight * pseudo_loss, "labeled_loss": labeled_loss,
            "pseudo_loss": pseudo_loss, "confident": tf.reduce_mean(confident),
        }  # fmt: skip
        return self.penalized(losses, noisy)
