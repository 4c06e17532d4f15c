"""Custom Keras layers."""

from __future__ import annotations

import keras
import tensorflow as tf


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
