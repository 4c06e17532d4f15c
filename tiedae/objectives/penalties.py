"""Terms on the unlabeled images' predicted class probabilities, registered in ``PENALTIES``.

Each is the loss of the entropy-minimisation or semantic-loss rows, and any objective adds one
to its own loss with ``objective.penalty=<name>`` (λ: ``objective.penalty_weight``), e.g. a
ladder plus entropy minimisation: a reconstruction term combined with a prediction term.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

Penalty = Callable[[tf.Tensor], tf.Tensor]  # probabilities (batch, classes) -> scalar
PENALTIES: dict[str, Penalty] = {}
TINY = 1e-7


def penalty(name: str) -> Callable[[Penalty], Penalty]:
    """Function decorator: ``objective.penalty=<name>`` selects it."""

    def add(function: Penalty) -> Penalty:
        PENALTIES[name] = function
        return function

    return add


@penalty("entropy")
def entropy(probabilities: tf.Tensor) -> tf.Tensor:
    """Mean entropy of the predictions (Grandvalet & Bengio 2005)."""
    p = tf.clip_by_value(probabilities, TINY, 1.0)
    return tf.reduce_mean(-tf.reduce_sum(p * tf.math.log(p), axis=-1))


@penalty("semantic")
def exactly_one_class(probabilities: tf.Tensor) -> tf.Tensor:
    """Semantic loss for "exactly one class" (Xu et al. 2018): the mean of
    -log Σ_i p_i Π_{j≠i} (1 - p_j)."""
    p = tf.clip_by_value(probabilities, TINY, 1.0 - TINY)
    log_rest = tf.math.log(1.0 - p)
    # log p_i + Σ_{j≠i} log(1 - p_j), summed over i in log space
    exactly_one = tf.reduce_logsumexp(
        tf.math.log(p) + tf.reduce_sum(log_rest, axis=-1, keepdims=True) - log_rest, axis=-1
    )
    return -tf.reduce_mean(exactly_one)
