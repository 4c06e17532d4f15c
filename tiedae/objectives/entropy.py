"""Entropy minimisation (Grandvalet & Bengio 2005): λ x the mean entropy of the predictions on
unlabeled images, pushing the decision boundary away from the data."""

from __future__ import annotations

import tensorflow as tf
from omegaconf import DictConfig

from tiedae.objectives.base import Batch, Objective, non_negative, register, supervised_loss
from tiedae.objectives.penalties import entropy


@register("entropy")
class Entropy(Objective):
    """Hyperparameters: ``weight`` (λ) and ``ramp_up_epochs``."""

    loss_names = ("loss", "labeled_loss", "unlabeled_loss")
    unlabeled_loss = staticmethod(entropy)

    @classmethod
    def check(cls, section: DictConfig, cfg: DictConfig) -> list[str]:
        problems = super().check(section, cfg)
        non_negative(problems, "weight", section.get("weight"))
        non_negative(problems, "ramp_up_epochs", section.get("ramp_up_epochs"))
        return problems

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
