"""Semantic loss (Xu et al. 2018) for "exactly one class": λ x the mean of
-log Σ_i p_i Π_{j≠i} (1 - p_j) over the unlabeled predictions."""

from __future__ import annotations

import tensorflow as tf

from tiedae.objectives.base import register
from tiedae.objectives.entropy import TINY, Entropy


@register("semantic")
class Semantic(Entropy):
    """Hyperparameters: ``weight`` (λ) and ``ramp_up_epochs``, as entropy minimisation."""

    def unlabeled_loss(self, probabilities: tf.Tensor) -> tf.Tensor:
        p = tf.clip_by_value(probabilities, TINY, 1.0 - TINY)
        log_rest = tf.math.log(1.0 - p)
        # log p_i + Σ_{j≠i} log(1 - p_j), summed over i in log space
        exactly_one = tf.reduce_logsumexp(
            tf.math.log(p) + tf.reduce_sum(log_rest, axis=-1, keepdims=True) - log_rest, axis=-1
        )
        return -tf.reduce_mean(exactly_one)
