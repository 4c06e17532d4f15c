"""Stage 3 — pretraining: fit a stacked autoencoder on all training images, labels unused."""

from __future__ import annotations

import keras
from omegaconf import DictConfig

from tiedae.data import Splits
from tiedae.models import Autoencoder, encoder_dense_layers, rounded_accuracy
from tiedae.training import EpochCallback, FitSettings, History, fit, make_optimizer

PRETRAINED_ARTIFACT = "models/pretrained.keras"  # where a pretraining run stores its model


def build_autoencoder(input_shape, model_cfg: DictConfig, pretrain_cfg: DictConfig) -> Autoencoder:
    return Autoencoder(
        input_shape,
        list(model_cfg.sizes),
        activation=model_cfg.activation,
        tied=model_cfg.tied,
        kernel_initializer=model_cfg.kernel_initializer,
        input_noise=pretrain_cfg.get("input_noise", "none"),
        noise_rate=pretrain_cfg.get("noise_rate", 0.0),
    )


def pretrain_autoencoder(
    splits: Splits,
    model_cfg: DictConfig,
    pretrain_cfg: DictConfig,
    settings: FitSettings,
    on_epoch_end: EpochCallback | None = None,
) -> tuple[Autoencoder, History]:
    """The seed's recipe by default: reconstruct every training image, validate on the rest."""
    keras.utils.set_random_seed(settings.seed)
    autoencoder = build_autoencoder(splits.image_shape, model_cfg, pretrain_cfg)
    history = fit(
        autoencoder,
        splits.x_train,
        splits.x_train,
        (splits.x_valid, splits.x_valid),
        loss=keras.losses.get(pretrain_cfg.loss),
        optimizer=make_optimizer(pretrain_cfg.optimizer, pretrain_cfg.learning_rate),
        settings=settings,
        metrics={"rounded_accuracy": rounded_accuracy},
        on_epoch_end=on_epoch_end,
    )
    return autoencoder, history


def pretrained_layers(autoencoder: Autoencoder) -> list[keras.layers.Dense]:
    """The encoder's Dense layers, lowest first: what a classifier may reuse."""
    return encoder_dense_layers(autoencoder.encoder)
