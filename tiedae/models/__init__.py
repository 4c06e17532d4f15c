"""Stage 2 — models: one module per model family, registered in ``MODEL_FAMILIES``.

``model.family`` picks the family (``dense`` when absent, as in the seed's configs):
``dense`` (tiedae.models.dense: Flatten, Dense layers) or ``conv`` (tiedae.models.conv:
stride-2 convolutions, a dense code). Each entry says how to build the autoencoder and the
classifier from a ``model`` config, how many layers a classifier may reuse, what to validate,
and which pretrainings the family cannot use (and why).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras

from tiedae.families import DEFAULT_FAMILY, FAMILIES, FamilyRules, family_name
from tiedae.models.conv import (
    ConvAutoencoder,
    build_conv_classifier,
    conv_autoencoder,
    conv_classifier,
)
from tiedae.models.dense import (
    OUTPUT_DTYPE,
    Autoencoder,
    build_classifier,
    build_corruption,
    build_decoder,
    build_encoder,
    encoder_dense_layers,
    rounded_accuracy,
    set_hidden_trainable,
    softmax_head,
    transplant_encoder,
    weight_layers,
)


def dense_autoencoder(
    input_shape: Sequence[int],
    model_cfg: Mapping[str, Any],
    sizes: Sequence[int] | None = None,
    output_activation: str = "sigmoid",
    input_noise: str | None = None,
    noise_rate: float = 0.0,
) -> Autoencoder:
    return Autoencoder(
        input_shape, list(model_cfg["sizes"]) if sizes is None else list(sizes),
        activation=model_cfg["activation"], tied=model_cfg["tied"],
        output_activation=output_activation, kernel_initializer=model_cfg["kernel_initializer"],
        input_noise=input_noise, noise_rate=noise_rate,
    )  # fmt: skip


def dense_classifier(
    input_shape: Sequence[int], model_cfg: Mapping[str, Any], n_classes: int, reuse: int
) -> keras.Sequential:
    return build_classifier(
        input_shape, list(model_cfg["sizes"])[:reuse], n_classes,
        activation=model_cfg["activation"], kernel_initializer=model_cfg["kernel_initializer"],
    )  # fmt: skip


@dataclass(frozen=True)
class ModelFamily:
    """How one family of networks is built from a ``model`` config; what the config checks of
    it (``n_layers``, ``validate``) is its ``tiedae.families`` rules."""

    autoencoder: Callable[..., keras.Model]  # (input_shape, model_cfg, sizes, output_act, noise..)
    classifier: Callable[[Sequence[int], Mapping[str, Any], int, int], keras.Sequential]
    rules: FamilyRules

    @property
    def n_layers(self) -> Callable[[Mapping[str, Any]], int]:
        return self.rules.n_layers


MODEL_FAMILIES: dict[str, ModelFamily] = {
    "dense": ModelFamily(dense_autoencoder, dense_classifier, FAMILIES["dense"]),
    "conv": ModelFamily(conv_autoencoder, conv_classifier, FAMILIES["conv"]),
}


def model_family(model_cfg: Mapping[str, Any]) -> ModelFamily:
    return MODEL_FAMILIES[family_name(model_cfg)]


__all__ = [
    "DEFAULT_FAMILY", "MODEL_FAMILIES", "OUTPUT_DTYPE", "Autoencoder", "ConvAutoencoder",
    "ModelFamily", "build_classifier", "build_conv_classifier", "build_corruption", "build_decoder",
    "build_encoder", "encoder_dense_layers", "family_name", "model_family", "rounded_accuracy",
    "set_hidden_trainable", "softmax_head", "transplant_encoder", "weight_layers",
]  # fmt: skip
