"""Stage 2 — models, the dense family: the stacked autoencoder (tied or untied) and the
classifier built on it."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from tiedae.layers import DenseTranspose

# The dtype of every model's output layers (softmax heads, reconstructions and the layers after
# them): float32 under any runtime.precision, so probabilities and losses keep float32's range
# and digits while the hidden layers compute in bfloat16 (Keras's mixed-precision advice).
OUTPUT_DTYPE = "float32"


def dense_layers(
    sizes: Sequence[int], activation: str, kernel_initializer: str, name: str
) -> list[keras.layers.Dense]:
    """One Dense layer per entry of ``sizes``, named ``{name}_1``, ``{name}_2``, ... (the names
    checkpoints and transplants find them by)."""
    return [
        keras.layers.Dense(
            units, activation=activation, kernel_initializer=kernel_initializer,
            name=f"{name}_{depth}",
        )
        for depth, units in enumerate(sizes, start=1)
    ]  # fmt: skip


def softmax_head(n_classes: int) -> keras.layers.Dense:
    """Every classifier's output layer: class probabilities, float32 under any precision."""
    return keras.layers.Dense(n_classes, activation="softmax", dtype=OUTPUT_DTYPE, name="head")


@keras.saving.register_keras_serializable(package="tiedae")
def rounded_accuracy(y_true, y_pred):
    """The seed's metric: pixels rounded to 0/1 on both sides, then binary accuracy."""
    return keras.metrics.binary_accuracy(ops.round(y_true), ops.round(y_pred))


def build_encoder(
    input_shape: Sequence[int],
    sizes: Sequence[int],
    activation: str = "selu",
    kernel_initializer: str = "glorot_uniform",
    name: str = "encoder",
) -> keras.Sequential:
    """Flatten, then one Dense layer per entry of ``sizes``."""
    return keras.Sequential(
        [
            keras.Input(shape=tuple(input_shape)),
            keras.layers.Flatten(),
            *dense_layers(sizes, activation, kernel_initializer, name=f"{name}_dense"),
        ],
        name=name,
    )  # fmt: skip


def encoder_dense_layers(encoder: keras.Model) -> list[keras.layers.Dense]:
    return [layer for layer in encoder.layers if isinstance(layer, keras.layers.Dense)]


def weight_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The Conv2D and Dense layers, lowest first: what a classifier reuses from an encoder."""
    kinds = (keras.layers.Conv2D, keras.layers.Dense)
    return [layer for layer in model.layers if isinstance(layer, kinds)]


def build_decoder(
    encoder: keras.Sequential,
    output_shape: Sequence[int],
    activation: str = "selu",
    output_activation: str = "sigmoid",
    tied: bool = True,
    kernel_initializer: str = "glorot_uniform",
    name: str = "decoder",
) -> keras.Sequential:
    """The encoder mirrored: tied layers reuse its kernels transposed, untied ones own theirs."""
    dense_layers = encoder_dense_layers(encoder)
    widths = [layer.kernel.shape[0] for layer in reversed(dense_layers)]  # each layer's input
    activations = [activation] * (len(widths) - 1) + [output_activation]
    dtypes = [None] * (len(widths) - 1) + [OUTPUT_DTYPE]  # None: the policy's
    if tied:
        mirrored = zip(reversed(dense_layers), activations, dtypes, strict=True)
        layers = [
            DenseTranspose(dense, activation=act, dtype=dtype, name=f"{name}_tied_{depth}")
            for depth, (dense, act, dtype) in enumerate(mirrored, start=1)
        ]
    else:
        mirrored = zip(widths, activations, dtypes, strict=True)
        layers = [
            keras.layers.Dense(
                width, activation=act, kernel_initializer=kernel_initializer, dtype=dtype,
                name=f"{name}_dense_{depth}",
            )
            for depth, (width, act, dtype) in enumerate(mirrored, start=1)
        ]  # fmt: skip
    return keras.Sequential(
        [keras.Input(shape=(dense_layers[-1].units,)), *layers,
         keras.layers.Reshape(tuple(output_shape), dtype=OUTPUT_DTYPE)],
        name=name,
    )  # fmt: skip


class SymmetricAutoencoder(keras.Model):
    """What every autoencoder family shares: inputs corrupted in training only (``corruption``,
    or None), then ``encoder`` and its mirror ``decoder``; ``config`` rebuilds it on load."""

    config: dict
    corruption: keras.layers.Layer | None

    @property
    def tied(self) -> bool:
        return self.config["tied"]

    def call(self, inputs, training=None):
        if self.corruption is not None:
            inputs = self.corruption(inputs, training=training)
        return self.decoder(self.encoder(inputs, training=training), training=training)

    def get_config(self):
        return {"name": self.name, **self.config}


@keras.saving.register_keras_serializable(package="tiedae")
class Autoencoder(SymmetricAutoencoder):
    """A symmetric stacked autoencoder: ``encoder`` then its mirror ``decoder``.

    With ``tied=True`` each decoder layer is a ``DenseTranspose`` of the matching encoder layer,
    so the model holds one kernel per tied pair. The architecture is rebuilt from ``get_config``
    on load, which restores the ties; the weights then load by name.
    ``input_noise`` (``gaussian`` or ``dropout``, with ``noise_rate``) corrupts the inputs during
    training only — a denoising autoencoder.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        sizes: Sequence[int],
        activation: str = "selu",
        tied: bool = True,
        output_activation: str = "sigmoid",
        kernel_initializer: str = "glorot_uniform",
        input_noise: str | None = None,
        noise_rate: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.config = {
            "input_shape": list(input_shape), "sizes": list(sizes), "activation": activation,
            "tied": tied, "output_activation": output_activation,
            "kernel_initializer": kernel_initializer, "input_noise": input_noise,
            "noise_rate": noise_rate,
        }  # fmt: skip
        self.corruption = build_corruption(input_noise, noise_rate)
        self.encoder = build_encoder(input_shape, sizes, activation, kernel_initializer)
        self.decoder = build_decoder(
            self.encoder, input_shape, activation, output_activation, tied, kernel_initializer
        )
        self.build((None, *input_shape))


def build_corruption(kind: str | None, rate: float) -> keras.layers.Layer | None:
    if kind in (None, "none") or rate == 0:
        return None
    if kind == "gaussian":
        return keras.layers.GaussianNoise(rate)
    if kind == "dropout":
        return keras.layers.Dropout(rate)
    raise ValueError(f"input noise {kind!r} is unknown; use gaussian, dropout or none")


def build_classifier(
    input_shape: Sequence[int],
    hidden_sizes: Sequence[int],
    n_classes: int,
    activation: str = "selu",
    kernel_initializer: str = "glorot_uniform",
) -> keras.Sequential:
    """An MLP of ``hidden_sizes`` under a softmax head; its hidden layers mirror an encoder's."""
    return keras.Sequential(
        [
            keras.Input(shape=tuple(input_shape)),
            keras.layers.Flatten(),
            *dense_layers(hidden_sizes, activation, kernel_initializer, name="hidden"),
            softmax_head(n_classes),
        ],
        name="classifier",
    )  # fmt: skip


def transplant_encoder(
    classifier: keras.Sequential, pretrained: Sequence[keras.layers.Layer], trainable: bool
) -> None:
    """Copy pretrained Dense (or Conv2D) weights into the classifier's lowest hidden layers.

    The classifier owns copies, not the pretrained layers themselves, so freezing or fine-tuning
    it never touches the autoencoder. Shapes must match layer by layer.
    """
    hidden = weight_layers(classifier)[:-1]
    if len(pretrained) > len(hidden):
        raise ValueError(f"{len(pretrained)} pretrained layers but only {len(hidden)} hidden ones")
    for target, source in zip(hidden, pretrained, strict=False):
        if target.kernel.shape != source.kernel.shape:
            raise ValueError(
                f"{source.name} has kernel {tuple(source.kernel.shape)} but {target.name} "
                f"expects {tuple(target.kernel.shape)}"
            )
        target.set_weights(source.get_weights())
        target.trainable = trainable


def set_hidden_trainable(classifier: keras.Sequential, count: int, trainable: bool) -> None:
    for layer in weight_layers(classifier)[:-1][:count]:
        layer.trainable = trainable
