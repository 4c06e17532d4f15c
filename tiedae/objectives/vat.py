"""Virtual adversarial training (Miyato et al. 2018, TPAMI): the classifier's prediction on each
unlabeled image is kept where it is under the small perturbation that changes it most, found by
one power iteration on the KL divergence; with ``penalty: entropy`` it is VAT+EntMin.

The loss follows the reference code, takerum/vat_tf at c5125d267531ce0f10b2238cf95604d287de63c8,
point by point:

- d: a standard normal draw per unlabeled example (vat.py:40), scaled to ξ ``normalized``
  (vat.py:43); ξ = 1e-6 (``xi``, vat.py:12); one power iteration (``power_iterations``,
  vat.py:11,42).
- ``normalized``: each example divided by its largest absolute entry (+1e-12), then by
  sqrt(1e-6 + its squared norm) (vat.py:33-36), so ‖r_adv‖ = ε per example (to ~1e-6).
- the gradient of KL(p(y|x) ‖ p(y|x + d)) with respect to d, the clean logits as they are
  (vat.py:44-47), held constant (stop_gradient, vat.py:48); r_adv = ε·normalized(g)
  (``epsilon``, vat.py:50).
- the VAT loss: KL(p(y|x) ‖ p(y|x + r_adv)) with the clean logits under stop_gradient
  (vat.py:53-59); the KL from logits, the batch mean of Σ_y q (log q − log p) (layers.py:132-142).
- weight α = 1 (``weight``): the labeled cross-entropy plus the VAT loss, no ramp-up
  (train_semisup.py:52-57,68).
- VAT+EntMin: plus the mean entropy of the clean unlabeled predictions (train_semisup.py:59-63,
  layers.py:145-147), here the shared ``penalty: entropy`` with ``penalty_weight`` 1.0 (the
  entropy's weight; ``penalty: none`` is plain VAT), so the row is named ``vat+entropy``.
- the clean unlabeled prediction is a pass of its own, not the labeled one
  (train_semisup.py:56).

Deviations, each a setting or the network: the reference trains a conv net with batch norm
(its VAT passes ``update_batch_stats=False``) and dropout; here the objectives' MLP
(``model.sizes``), which has neither, so nothing is updated by the perturbed passes. The
reference's passes are stochastic with the same dropout seeds in each; here the unlabeled passes
(clean, x + d, x + r_adv) are noise-free and ``input_noise``/``hidden_noise`` (0 in
conf/objective/vat.yaml) apply to the labeled pass only. The unlabeled passes compute in float32
under ``runtime.precision=mixed_bfloat16`` too (the reference's precision; see ``logits``).
ε is chosen on the budget's validation images (conf/experiment/vat_epsilon.yaml); the
reference's are 2.5-10 on whitened SVHN/CIFAR-10.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from tiedae.models import encoder_dense_layers
from tiedae.objectives.base import (
    Batch,
    Objective,
    ObjectiveSettings,
    register,
    supervised_loss,
)
from tiedae.schema import setting


def normalized(d: tf.Tensor) -> tf.Tensor:
    """Each row of ``d`` at unit norm, as the reference computes it (vat.py:33-36)."""
    d = d / (1e-12 + tf.reduce_max(tf.abs(d), axis=1, keepdims=True))
    return d / tf.sqrt(1e-6 + tf.reduce_sum(tf.square(d), axis=1, keepdims=True))


def kl_with_logits(q_logits: tf.Tensor, p_logits: tf.Tensor) -> tf.Tensor:
    """Batch mean of KL(softmax(q) ‖ softmax(p)) (layers.py:138-142)."""
    q = tf.nn.softmax(q_logits)
    log_ratio = tf.nn.log_softmax(q_logits) - tf.nn.log_softmax(p_logits)
    return tf.reduce_mean(tf.reduce_sum(q * log_ratio, axis=-1))


@dataclass(frozen=True)
class VATSettings(ObjectiveSettings):
    epsilon: float = setting(5.0, positive=True, says="a number > 0")  # ‖r_adv‖ per image
    xi: float = setting(1e-6, positive=True, says="a number > 0")  # the finite difference
    power_iterations: int = setting(1, minimum=1)
    weight: float = setting(1.0, minimum=0.0)  # α of the VAT loss


@register("vat")
class VirtualAdversarial(Objective):
    """Hyperparameters: ``epsilon`` (ε > 0, the perturbation's norm per image), ``xi`` (ξ > 0,
    the finite difference), ``power_iterations`` (>= 1) and ``weight`` (α)."""

    loss_names = ("loss", "labeled_loss", "vat_loss")

    settings = VATSettings

    def logits(self, x: tf.Tensor) -> tf.Tensor:
        """The classifier's logits (the head before its softmax), without noise, in float32
        whatever ``runtime.precision``: ξ = 1e-6 is far below bfloat16's resolution, and the
        power iteration's finite difference would vanish in it."""
        h = tf.reshape(x, (tf.shape(x)[0], -1))
        for dense in [*encoder_dense_layers(self.encoder), self.head]:
            h = tf.matmul(h, tf.cast(dense.kernel, tf.float32)) + tf.cast(dense.bias, tf.float32)
            h = h if dense is self.head else dense.activation(h)
        return h

    def adversarial_perturbation(self, x: tf.Tensor, clean_logits: tf.Tensor) -> tf.Tensor:
        """r_adv for the flat images ``x`` (vat.py:39-50): ε x the normalized gradient, with
        respect to d, of the KL between the clean and the x + d predictions."""
        d = keras.random.normal(tf.shape(x), seed=self.noise_seed)
        for _ in range(int(self.section.power_iterations)):
            d = float(self.section.xi) * normalized(d)
            with tf.GradientTape() as tape:
                tape.watch(d)
                distance = kl_with_logits(clean_logits, self.logits(x + d))
            d = tf.stop_gradient(tape.gradient(distance, d))
        return float(self.section.epsilon) * normalized(d)

    def train_step(self, labeled: Batch, unlabeled: tf.Tensor) -> dict[str, tf.Tensor]:
        x, y = labeled
        probabilities, _ = self.forward(x)
        labeled_loss = supervised_loss(y, probabilities)
        flat = tf.reshape(unlabeled, (tf.shape(unlabeled)[0], -1))
        clean = self.logits(flat)
        r_adv = self.adversarial_perturbation(flat, clean)
        vat_loss = kl_with_logits(tf.stop_gradient(clean), self.logits(flat + r_adv))
        losses = {
            "loss": labeled_loss + float(self.section.weight) * vat_loss,
            "labeled_loss": labeled_loss, "vat_loss": vat_loss,
        }  # fmt: skip
        return self.penalized(losses, tf.nn.softmax(clean))
