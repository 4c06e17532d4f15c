"""Stage 3 — pretraining: fit a stacked autoencoder on all training images, labels unused.

Two ways: the whole stack at once (``pretrain=autoencoder``, the seed's), or greedily, one
shallow autoencoder per layer, each trained on the codes of the one below (``pretrain=greedy``),
then stacked into one ``Autoencoder`` of the same shape.
"""

from __future__ import annotations

import keras
from omegaconf import DictConfig

from tiedae.data import Splits
from tiedae.layers import DenseTranspose
from tiedae.loop import fit
from tiedae.models import (
    Autoencoder,
    encoder_dense_layers,
    model_family,
    rounded_accuracy,
    weight_layers,
)
from tiedae.training import EpochCallback, FitSettings, History, make_optimizer, predict, with_part

PRETRAINED_ARTIFACT = "models/pretrained.keras"  # where a pretraining run stores its model


def build_autoencoder(
    input_shape,
    model_cfg: DictConfig,
    pretrain_cfg: DictConfig,
    sizes: list[int] | None = None,
    output_activation: str = "sigmoid",
) -> keras.Model:
    """The autoencoder ``model_cfg`` describes (its ``model.family``), or one of ``sizes``
    (a greedy stage)."""
    return model_family(model_cfg).autoencoder(
        input_shape,
        model_cfg,
        sizes,
        output_activation,
        pretrain_cfg.get("input_noise", "none"),
        pretrain_cfg.get("noise_rate", 0.0),
    )


def pretrain_autoencoder(
    splits: Splits,
    model_cfg: DictConfig,
    pretrain_cfg: DictConfig,
    settings: FitSettings,
    on_epoch_end: EpochCallback | None = None,
) -> tuple[Autoencoder, History]:
    """The seed's recipe by default: reconstruct every training image (and the unlabeled
    ones, if the dataset has any), validate on the rest."""
    keras.utils.set_random_seed(settings.seed)
    autoencoder = build_autoencoder(splits.image_shape, model_cfg, pretrain_cfg)
    images = splits.pretrain_images
    history = fit(
        autoencoder,
        images,
        images,
        (splits.x_valid, splits.x_valid),
        loss=keras.losses.get(pretrain_cfg.loss),
        optimizer=make_optimizer(pretrain_cfg.optimizer, pretrain_cfg.learning_rate),
        settings=settings,
        metrics={"rounded_accuracy": rounded_accuracy},
        on_epoch_end=on_epoch_end,
    )
    return autoencoder, history


def pretrained_layers(autoencoder: keras.Model) -> list[keras.layers.Layer]:
    """The encoder's Conv2D and Dense layers, lowest first: what a classifier may reuse."""
    return weight_layers(autoencoder.encoder)


# --- greedy layer-wise ---------------------------------------------------------------------


def pretrain_greedy(
    splits: Splits,
    model_cfg: DictConfig,
    pretrain_cfg: DictConfig,
    settings: FitSettings,
    on_epoch_end: EpochCallback | None = None,
) -> tuple[Autoencoder, History]:
    """Train one shallow autoencoder per width of ``model.sizes``, then stack them.

    Stage 1 reconstructs the pixels (sigmoid output, ``pretrain.loss``); stage k > 1 reconstructs
    the codes of stage k - 1 with the model's own activation as output (the codes' range) and
    mean squared error, with ``pretrain.code_optimizer`` at ``pretrain.code_learning_rate``
    (the seed's SGD at 1.5 diverges on unbounded codes). Each stage runs ``pretrain.epochs``
    epochs with a fresh optimizer, and corrupts its own inputs when ``pretrain.input_noise`` is
    set (stacked denoising autoencoders). Because every stage's output activation is the one its
    slot in the stack uses, the stacked autoencoder computes exactly the composed stages,
    decoder included.
    Logged metrics carry the stage: ``stage1_loss``, ``stage2_val_loss``, ...
    """
    keras.utils.set_random_seed(settings.seed)
    stages: list[Autoencoder] = []
    history = History()
    x_train, x_valid = splits.pretrain_images, splits.x_valid
    for depth, width in enumerate(model_cfg.sizes, start=1):
        first = depth == 1
        stage = build_autoencoder(
            x_train.shape[1:], model_cfg, pretrain_cfg, sizes=[width],
            output_activation="sigmoid" if first else model_cfg.activation,
        )  # fmt: skip
        stage_history = fit(
            stage, x_train, x_train, (x_valid, x_valid),
            loss=keras.losses.get(pretrain_cfg.loss if first else "mse"),
            optimizer=_stage_optimizer(pretrain_cfg, first),
            settings=with_part(settings, f"stage{depth}"),
            metrics={"rounded_accuracy": rounded_accuracy} if first else None,
            on_epoch_end=_stage_logger(on_epoch_end, depth, len(history.epochs)),
        )  # fmt: skip
        history.epochs += [_prefixed(depth, logs) for logs in stage_history.epochs]
        history.seconds += stage_history.seconds
        stages.append(stage)
        x_train = predict(stage.encoder, x_train, settings.validation_batch_size)
        x_valid = predict(stage.encoder, x_valid, settings.validation_batch_size)
    return stack_stages(stages, splits.image_shape, model_cfg, pretrain_cfg), history


def stack_stages(
    stages: list[Autoencoder], input_shape, model_cfg: DictConfig, pretrain_cfg: DictConfig
) -> Autoencoder:
    """One autoencoder whose encoder is the stages' encoders in order, decoder the reverse."""
    stacked = build_autoencoder(input_shape, model_cfg, pretrain_cfg)
    encoder_layers = encoder_dense_layers(stacked.encoder)
    decoder_layers = decoder_dense_layers(stacked.decoder)
    for depth, stage in enumerate(stages):
        (encoder_layer,) = encoder_dense_layers(stage.encoder)
        (decoder_layer,) = decoder_dense_layers(stage.decoder)
        encoder_layers[depth].set_weights(encoder_layer.get_weights())
        decoder_layers[-1 - depth].set_weights(decoder_layer.get_weights())  # tied: bias only
    return stacked


def decoder_dense_layers(decoder: keras.Model) -> list[keras.layers.Layer]:
    return [
        layer for layer in decoder.layers
        if isinstance(layer, keras.layers.Dense | DenseTranspose)
    ]  # fmt: skip


def _stage_optimizer(pretrain_cfg: DictConfig, first: bool) -> keras.optimizers.Optimizer:
    if first:
        return make_optimizer(pretrain_cfg.optimizer, pretrain_cfg.learning_rate)
    return make_optimizer(pretrain_cfg.code_optimizer, pretrain_cfg.code_learning_rate)


def _prefixed(depth: int, logs: dict[str, float]) -> dict[str, float]:
    return {f"stage{depth}_{name}": value for name, value in logs.items()}


def _stage_logger(on_epoch_end: EpochCallback | None, depth: int, offset: int):
    if on_epoch_end is None:
        return None
    return lambda epoch, logs: on_epoch_end(offset + epoch, _prefixed(depth, dict(logs)))
