"""Pseudo-labelling (Lee 2013): the network's own confident predictions on unlabeled images
become their targets; the unlabeled term's weight ramps up from 0."""

from __future__ import annotations

import keras
import tensorflow as tf
from omegaconf import DictConfig

from tiedae.objectives.base import Batch, Objective, non_negative, register, supervised_loss


def pseudo_labels(probabilities: tf.Tensor, threshold: float) -> tuple[tf.Tensor, tf.Tensor]:
    """The most probable class of each row, and 1.0 where its probability >= ``threshold``."""
    labels = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    confident = tf.cast(tf.reduce_max(probabilities, axis=-1) >= threshold, tf.float32)
    return labels, confident


@register("pseudo_label")
class PseudoLabel(Objective):
    """Hyperparameters: ``threshold`` in (0, 1] (confidence a pseudo-label needs), ``weight``
    (its λ) and ``ramp_up_epochs`` (epochs of the sigmoid ramp-up of λ; 0: none)."""

    loss_names = ("loss", "labeled_loss", "pseudo_loss", "confident")

    @classmethod
    def check(cls, section: DictConfig, cfg: DictConfig) -> list[str]:
        problems = super().check(section, cfg)
        threshold = section.get("threshold")
        if (
            not isinstance(threshold, float | int)
            or isinstance(threshold, bool)
            or not (0 < threshold <= 1)
        ):
            problems.append(f"objective.threshold={threshold!r} must be in (0, 1]")
        non_negative(problems, "weight", section.get("weight"))
        non_negative(problems, "ramp_up_epochs", section.get("ramp_up_epochs"))
        return problems

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
