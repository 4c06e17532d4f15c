"""Entropy minimisation (Grandvalet & Bengio 2005): λ x the mean entropy of the predictions on
unlabeled images, pushing the decision boundary away from the data."""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from tiedae.objectives.base import (
    Batch,
    Objective,
    ObjectiveSettings,
    register,
    supervised_loss,
)
from tiedae.objectives.penalties import entropy
from tiedae.schema import setting


@dataclass(frozen=True)
class EntropySettings(ObjectiveSettings):
    weight: float = setting(1.0, minimum=0.0)  # λ of the unlabeled term
    ramp_up_epochs: float = setting(0.0, minimum=0.0)  # λ reaches its value after these


@register("entropy")
class Entropy(Objective):
    """Hyperparameters: ``weight`` (λ) and ``ramp_up_epochs``."""

    loss_names = ("loss", "labeled_loss", "unlabeled_loss")
    unlabeled_loss = staticmethod(entropy)

    settings = EntropySettings

    def train_step(self, labeled: Batch, unlabeled: tf.Tensor) -> dict[str, tf.Tensor]:
        x, y = labeled
        probabilities, _ = self.forward(x)
        labeled_loss = supervised_loss(y, probabilities)
        unlabeled_probabilities, _ = self.forward(unlabeled)
        unlabeled_loss = self.unlabeled_loss(unlabeled_probabilities)
        weight = float(self.section.weight) * self.ramp(float(self.section.ramp_up_epochs))
        losses = {
            "loss": labeled_loss + weight * unlabeled_loss, "labeled_loss": labeled_loss,
            "unlabeled_loss": unlabeled_loss,
        }  # fmt: skip
        return self.penalized(losses, unlabeled_probabilities)
