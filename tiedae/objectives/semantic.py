"""Semantic loss (Xu et al. 2018) for "exactly one class": λ x the mean of
-log Σ_i p_i Π_{j≠i} (1 - p_j) over the unlabeled predictions."""

from __future__ import annotations

from dataclasses import dataclass

from tiedae.objectives.base import register
from tiedae.objectives.entropy import Entropy, EntropySettings
from tiedae.objectives.penalties import exactly_one_class
from tiedae.schema import setting


@dataclass(frozen=True)
class SemanticSettings(EntropySettings):
    weight: float = setting(0.5, minimum=0.0)  # λ (conf/objective/semantic.yaml's)


@register("semantic")
class Semantic(Entropy):
    """Hyperparameters: ``weight`` (λ) and ``ramp_up_epochs``, as entropy minimisation."""

    unlabeled_loss = staticmethod(exactly_one_class)
    settings = SemanticSettings
