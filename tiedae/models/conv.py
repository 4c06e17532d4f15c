"""The convolutional family: stride-2 convolutions, a dense code, and the mirror image.

``model.filters`` lists the convolutions' widths (each halves the image, ``same`` padding),
``model.sizes`` the dense code layers after them. The tied decoder transposes the encoder's
own kernels (``Conv2DTransposeTied``, ``DenseTranspose``); the untied one owns its kernels.
Images may be ``(H, W)`` (a channel axis is added inside the model) or ``(H, W, C)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras

from tiedae.layers import Conv2DTransposeTied, DenseTranspose
from tiedae.models.dense import (
    OUTPUT_DTYPE,
    SymmetricAutoencoder,
    build_corruption,
    dense_layers,
    softmax_head,
)


def _with_channels(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(n) for n in input_shape)
    return (*shape, 1) if len(shape) == 2 else shape  # type: ignore[return-value]


def _extra_padding(size: int, target: int, stride: int) -> int:
    """``output_padding`` that makes an odd-kernel, ``same``-padded transposed conv hit target."""
    return target - ((size - 1) * stride + 1)


def conv_encoder_layers(
    input_shape: Sequence[int],
    filters: Sequence[int],
    sizes: Sequence[int],
    kernel_size: int = 3,
    activation: str = "relu",
    kernel_initializer: str = "glorot_uniform",
    name: str = "encoder",
) -> list[keras.layers.Layer]:
    """[a channel axis], one stride-2 Conv2D per ``filters``, Flatten, one Dense per ``sizes``."""
    head = []
    if len(input_shape) == 2:
        head.append(keras.layers.Reshape(_with_channels(input_shape), name=f"{name}_channels"))
    convs = [
        keras.layers.Conv2D(
            width, kernel_size, strides=2, padding="same", activation=activation,
            kernel_initializer=kernel_initializer, name=f"{name}_conv_{depth}",
        )
        for depth, width in enumerate(filters, start=1)
    ]  # fmt: skip
    dense = dense_layers(sizes, activation, kernel_initializer, name=f"{name}_dense")
    return [*head, *convs, keras.layers.Flatten(name=f"{name}_flatten"), *dense]


def build_conv_encoder(
    input_shape: Sequence[int],
    filters: Sequence[int],
    sizes: Sequence[int],
    kernel_size: int = 3,
    activation: str = "relu",
    kernel_initializer: str = "glorot_uniform",
    name: str = "encoder",
) -> keras.Sequential:
    layers = conv_encoder_layers(
        input_shape, filters, sizes, kernel_size, activation, kernel_initializer, name
    )
    return keras.Sequential([keras.Input(shape=tuple(input_shape)), *layers], name=name)


def build_conv_decoder(
    encoder: keras.Sequential,
    output_shape: Sequence[int],
    activation: str = "relu",
    output_activation: str = "sigmoid",
    tied: bool = True,
    kernel_initializer: str = "glorot_uniform",
    name: str = "decoder",
) -> keras.Sequential:
    """The encoder mirrored layer by layer; the last layer gives the image's channels."""
    convs = [layer for layer in encoder.layers if isinstance(layer, keras.layers.Conv2D)]
    denses = [layer for layer in encoder.layers if isinstance(layer, keras.layers.Dense)]
    feature_shape = tuple(convs[-1].output.shape[1:])
    layers: list[keras.layers.Layer] = []
    for depth, dense in enumerate(reversed(denses), start=1):
        if tied:
            layers.append(DenseTranspose(dense, activation=activation, name=f"{name}_tied_{depth}"))
        else:
            layers.append(keras.layers.Dense(
                dense.kernel.shape[0], activation=activation,
                kernel_initializer=kernel_initializer, name=f"{name}_dense_{depth}",
            ))  # fmt: skip
    layers.append(keras.layers.Reshape(feature_shape, name=f"{name}_features"))
    for depth, conv in enumerate(reversed(convs), start=1):
        last = depth == len(convs)
        act, dtype = (output_activation, OUTPUT_DTYPE) if last else (activation, None)
        in_shape = tuple(conv.input.shape[1:])
        if tied:
            layers.append(Conv2DTransposeTied(
                conv, in_shape[:2], activation=act, dtype=dtype, name=f"{name}_conv_tied_{depth}"
            ))  # fmt: skip
        else:
            out_size = tuple(conv.output.shape[1:3])
            padding = tuple(
                _extra_padding(size, target, 2)
                for size, target in zip(out_size, in_shape[:2], strict=True)
            )
            layers.append(keras.layers.Conv2DTranspose(
                in_shape[2], conv.kernel_size, strides=2, padding="same",
                output_padding=padding, activation=act, kernel_initializer=kernel_initializer,
                dtype=dtype, name=f"{name}_conv_{depth}",
            ))  # fmt: skip
    if len(output_shape) == 2:
        layers.append(
            keras.layers.Reshape(tuple(output_shape), dtype=OUTPUT_DTYPE, name=f"{name}_image")
        )
    code = denses[-1].units if denses else None
    if code is None:
        raise ValueError("a conv autoencoder needs at least one dense code layer (model.sizes)")
    return keras.Sequential([keras.Input(shape=(code,)), *layers], name=name)


@keras.saving.register_keras_serializable(package="tiedae")
class ConvAutoencoder(SymmetricAutoencoder):
    """A convolutional autoencoder: ``encoder`` then its mirror ``decoder``.

    With ``tied=True`` every decoder layer transposes the matching encoder layer's kernel, so
    each tied pair holds one kernel. As ``Autoencoder`` does, the architecture is rebuilt from
    ``get_config`` on load, which restores the ties; the weights then load by name.
    ``input_noise``/``noise_rate`` corrupt the inputs in training only (denoising).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        filters: Sequence[int],
        sizes: Sequence[int],
        kernel_size: int = 3,
        activation: str = "relu",
        tied: bool = True,
        output_activation: str = "sigmoid",
        kernel_initializer: str = "glorot_uniform",
        input_noise: str | None = None,
        noise_rate: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.config = {
            "input_shape": list(input_shape), "filters": list(filters), "sizes": list(sizes),
            "kernel_size": kernel_size, "activation": activation, "tied": tied,
            "output_activation": output_activation, "kernel_initializer": kernel_initializer,
            "input_noise": input_noise, "noise_rate": noise_rate,
        }  # fmt: skip
        self.corruption = build_corruption(input_noise, noise_rate)
        self.encoder = build_conv_encoder(
            input_shape, filters, sizes, kernel_size, activation, kernel_initializer
        )
        self.decoder = build_conv_decoder(
            self.encoder, input_shape, activation, output_activation, tied, kernel_initializer
        )
        self.build((None, *input_shape))


def build_conv_classifier(
    input_shape: Sequence[int],
    filters: Sequence[int],
    sizes: Sequence[int],
    n_classes: int,
    reuse: int,
    kernel_size: int = 3,
    activation: str = "relu",
    kernel_initializer: str = "glorot_uniform",
) -> keras.Sequential:
    """The encoder's lowest ``reuse`` layers (convolutions first, then dense), a softmax head."""
    n_conv = min(reuse, len(filters))
    layers = conv_encoder_layers(
        input_shape, list(filters)[:n_conv], list(sizes)[: reuse - n_conv], kernel_size,
        activation, kernel_initializer, name="hidden",
    )  # fmt: skip
    return keras.Sequential(
        [keras.Input(shape=tuple(input_shape)), *layers, softmax_head(n_classes)],
        name="classifier",
    )  # fmt: skip


# --- the family's entries in tiedae.models.MODEL_FAMILIES ---------------------------------


def conv_autoencoder(
    input_shape: Sequence[int],
    model_cfg: Mapping[str, Any],
    sizes: Sequence[int] | None = None,
    output_activation: str = "sigmoid",
    input_noise: str | None = None,
    noise_rate: float = 0.0,
) -> ConvAutoencoder:
    return ConvAutoencoder(
        input_shape, list(model_cfg["filters"]),
        list(model_cfg["sizes"]) if sizes is None else list(sizes),
        kernel_size=model_cfg.get("kernel_size", 3), activation=model_cfg["activation"],
        tied=model_cfg["tied"], output_activation=output_activation,
        kernel_initializer=model_cfg["kernel_initializer"], input_noise=input_noise,
        noise_rate=noise_rate,
    )  # fmt: skip


def conv_classifier(
    input_shape: Sequence[int], model_cfg: Mapping[str, Any], n_classes: int, reuse: int
) -> keras.Sequential:
    return build_conv_classifier(
        input_shape, list(model_cfg["filters"]), list(model_cfg["sizes"]), n_classes, reuse,
        model_cfg.get("kernel_size", 3), model_cfg["activation"], model_cfg["kernel_initializer"],
    )  # fmt: skip
