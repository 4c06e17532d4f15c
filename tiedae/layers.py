"""Custom Keras layers."""

from __future__ import annotations

import keras
import tensorflow as tf


def product(a: tf.Tensor, b: tf.Tensor, dtype: str, transpose_b: bool = False) -> tf.Tensor:
    """``a @ b`` (``b`` transposed with ``transpose_b``) computed in ``dtype`` — a layer's
    compute dtype, bfloat16 under ``runtime.precision=mixed_bfloat16`` — and returned as
    float32, for the passes that call a layer's parts directly rather than through Keras's
    autocasting ``__call__`` (the ladder's)."""
    if dtype == "float32":
        return tf.matmul(a, b, transpose_b=transpose_b)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    return tf.cast(tf.matmul(a, b, transpose_b=transpose_b), tf.float32)


@keras.saving.register_keras_serializable(package="tiedae")
class DenseTranspose(keras.layers.Layer):
    """A Dense layer that uses another Dense layer's kernel, transposed, and a bias of its own.

    It maps ``units_out -> units_in`` of the tied layer: ``activation(x @ W.T + b)``. The tied
    layer is held without Keras tracking it, so the kernel stays owned (and saved) once, by the
    encoder. Rebuilding the tie after loading is the owning model's job (see
    ``tiedae.models.Autoencoder``); ``get_config`` records the tied layer's name for that.
    """

    def __init__(self, dense: keras.layers.Dense, activation=None, **kwargs):
        super().__init__(**kwargs)
        object.__setattr__(self, "tied_to", dense)  # bypass Keras's tracking: no second owner
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        if not self.tied_to.built:
            raise ValueError(f"{self.name}: the tied layer {self.tied_to.name} must be built first")
        self.bias = self.add_weight(
            name="bias", shape=(self.tied_to.kernel.shape[0],), initializer="zeros"
        )

    def call(self, inputs):
        z = tf.matmul(inputs, self.tied_to.kernel, transpose_b=True)
        return self.activation(z + self.bias)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.tied_to.kernel.shape[0])

    def get_config(self):
        return {
            **super().get_config(),
            "tied_to": self.tied_to.name,
            "activation": keras.activations.serialize(self.activation),
        }


@keras.saving.register_keras_serializable(package="tiedae")
class Conv2DTransposeTied(keras.layers.Layer):
    """The transposed convolution of another Conv2D layer's own kernel, with a bias of its own.

    A ``Conv2D`` with kernel ``(kh, kw, c_in, c_out)`` maps ``c_in -> c_out`` channels; this
    layer maps ``c_out -> c_in`` with ``keras.ops.conv_transpose`` on that very variable, with
    the tied layer's strides and ``same`` padding, to the spatial size ``output_size`` (the tied
    layer's input size, which strides alone cannot recover: 7 -> 4 and 8 -> 4 both halve).
    As for ``DenseTranspose``, the tied layer is held untracked (the kernel is owned and saved
    once, by the encoder) and the owning model rebuilds the tie on load.
    """

    def __init__(self, conv: keras.layers.Conv2D, output_size, activation=None, **kwargs):
        super().__init__(**kwargs)
        object.__setattr__(self, "tied_to", conv)  # bypass Keras's tracking: no second owner
        self.output_size = tuple(int(n) for n in output_size)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        if not self.tied_to.built:
            raise ValueError(f"{self.name}: the tied layer {self.tied_to.name} must be built first")
        self.bias = self.add_weight(
            name="bias", shape=(self.tied_to.kernel.shape[2],), initializer="zeros"
        )

    def _output_padding(self, input_shape) -> tuple[int, int]:
        """Per axis, the extra rows/columns that make ``same`` padding reach ``output_size``."""
        strides = self.tied_to.strides
        padding = []
        for size, target, stride, kernel in zip(
            input_shape[1:3], self.output_size, strides, self.tied_to.kernel_size, strict=True
        ):
            extra = target - ((size - 1) * stride + kernel - 2 * (kernel // 2))
            if not 0 <= extra < stride:
                raise ValueError(f"{self.name}: cannot map {size} to {target} with stride {stride}")
            padding.append(extra)
        return tuple(padding)

    def call(self, inputs):
        z = keras.ops.conv_transpose(
            inputs, self.tied_to.kernel, strides=self.tied_to.strides, padding="same",
            output_padding=self._output_padding(inputs.shape),
        )  # fmt: skip
        return self.activation(z + self.bias)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, self.tied_to.kernel.shape[2])

    def get_config(self):
        return {
            **super().get_config(),
            "tied_to": self.tied_to.name,
            "output_size": list(self.output_size),
            "activation": keras.activations.serialize(self.activation),
        }
