"""Stage 3, transfer: lower layers from a network trained on a related task, not an autoencoder.

A source is any saved Keras model whose hidden Dense layers (every Dense layer but the last,
its output head) fit the configured encoder: layer i must map the width below it to
``model.sizes[i]`` with ``model.activation``. The builtin source is a classifier of the same
shape trained with every label of other classes of the same dataset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
from omegaconf import DictConfig

from tiedae.classify import train_classifier
from tiedae.config import ConfigError
from tiedae.data import Splits
from tiedae.training import EpochCallback, FitSettings, History


def dense_layers(model: keras.Layer) -> list[keras.layers.Dense]:
    """Every Dense layer of ``model``, nested models included, in the order they run."""
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.Dense):
            found.append(layer)
        else:
            found.extend(dense_layers(layer))
    return found


def hidden_layers(model: keras.Layer) -> list[keras.layers.Dense]:
    """The Dense layers below the output head (the last Dense layer), lowest first."""
    return dense_layers(model)[:-1]


def expected_kernels(image_shape: Sequence[int], sizes: Sequence[int]) -> list[tuple[int, int]]:
    """The kernel shape of each encoder layer: (width below, width), from the flat image up."""
    widths = [math.prod(image_shape), *sizes]
    return list(zip(widths[:-1], widths[1:], strict=True))


def matching_layers(
    source: keras.Layer,
    name: str,
    image_shape: Sequence[int],
    model_cfg: DictConfig,
    reuse: int,
) -> list[keras.layers.Dense]:
    """The source's lowest ``reuse`` hidden layers, checked against the encoder layer by layer.

    Raises ConfigError naming the source and the first mismatch: too few layers, a kernel of
    the wrong shape, or another activation.
    """
    hidden = hidden_layers(source)
    if len(hidden) < reuse:
        raise ConfigError(
            f"pretrain.source={name} has {len(hidden)} hidden Dense layer(s) (its last Dense "
            f"layer is the output head), fewer than classifier.reuse_layers={reuse}"
        )
    wanted = expected_kernels(image_shape, model_cfg.sizes)[:reuse]
    for depth, (layer, shape) in enumerate(zip(hidden, wanted, strict=False), start=1):
        kernel = tuple(layer.kernel.shape)
        if kernel != shape:
            raise ConfigError(
                f"pretrain.source={name}: layer {depth} ({layer.name}) has kernel {kernel} but "
                f"encoder layer {depth} needs {shape} (images {tuple(image_shape)}, "
                f"model.sizes={list(model_cfg.sizes)})"
            )
        activation = keras.activations.serialize(layer.activation)
        if activation != model_cfg.activation:
            raise ConfigError(
                f"pretrain.source={name}: layer {depth} ({layer.name}) uses {activation} but the "
                f"encoder uses model.activation={model_cfg.activation}; set model.activation="
                f"{activation}"
            )
    return hidden[:reuse]


def load_source(path: Path, name: str) -> keras.Model:
    """Load a saved Keras model; ``path`` may be a folder holding exactly one .keras file."""
    if path.is_dir():
        files = sorted(path.rglob("*.keras"))
        if len(files) != 1:
            found = ", ".join(f.name for f in files) or "none"
            raise ConfigError(
                f"pretrain.source={name} must hold exactly one .keras file, found: {found}"
            )
        path = files[0]
    if not path.is_file():
        raise ConfigError(
            f"pretrain.source={name}: file not found; give a .keras file, runs:/<run id>/<path>, "
            "models:/<name>/<version> or builtin"
        )
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"pretrain.source={name} is not a loadable Keras model: {reason}"
        ) from None


def train_source_classifier(
    source: Splits,
    model_cfg: DictConfig,
    pretrain_cfg: DictConfig,
    settings: FitSettings,
    on_epoch_end: EpochCallback | None = None,
) -> tuple[keras.Sequential, History]:
    """The builtin source: the target's classifier shape, trained on every label of ``source``."""
    every_image = np.arange(len(source.x_train))
    return train_classifier(
        source, every_image, model_cfg, pretrain_cfg, settings, on_epoch_end=on_epoch_end
    )
