"""The seed's recipe, as the seed writes it: what tiedae's paths are timed against."""

from __future__ import annotations

from collections.abc import Sequence


def seed_autoencoder(tied: bool, image_shape: Sequence[int] = (28, 28)):
    """The seed's autoencoder (HOML 2e ch. 17), compiled, with the changes Keras 3 needs.

    ``self.dense.input_shape[-1]`` became ``self.dense.kernel.shape[0]`` (Keras 3 layers have no
    ``input_shape``), ``SGD(lr=1.5)`` became ``SGD(learning_rate=1.5)``, and ``[28, 28]`` is
    ``image_shape`` so tests can run it on digits. The untied one is the book's stacked
    autoencoder that the tied one is compared with.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    class DenseTranspose(keras.layers.Layer):
        def __init__(self, dense, activation=None, **kwargs):
            self.dense = dense
            self.activation = keras.activations.get(activation)
            super().__init__(**kwargs)

        def build(self, batch_input_shape):
            self.biases = self.add_weight(
                name="bias", shape=[self.dense.kernel.shape[0]], initializer="zeros"
            )
            super().build(batch_input_shape)

        def call(self, inputs):
            z = tf.matmul(inputs, self.dense.weights[0], transpose_b=True)
            return self.activation(z + self.biases)

    def rounded_accuracy(y_true, y_pred):
        return keras.metrics.binary_accuracy(tf.round(y_true), tf.round(y_pred))

    shape = list(image_shape)
    keras.backend.clear_session()
    tf.random.set_seed(42)
    np.random.seed(42)
    if tied:
        dense_1 = keras.layers.Dense(100, activation="selu")
        dense_2 = keras.layers.Dense(30, activation="selu")
        encoder = keras.models.Sequential(
            [keras.layers.Flatten(input_shape=shape), dense_1, dense_2]
        )
        decoder = keras.models.Sequential([
            DenseTranspose(dense_2, activation="selu"),
            DenseTranspose(dense_1, activation="sigmoid"),
            keras.layers.Reshape(shape),
        ])  # fmt: skip
    else:
        encoder = keras.models.Sequential([
            keras.layers.Flatten(input_shape=shape),
            keras.layers.Dense(100, activation="selu"),
            keras.layers.Dense(30, activation="selu"),
        ])  # fmt: skip
        decoder = keras.models.Sequential([
            keras.layers.Dense(100, activation="selu", input_shape=[30]),
            keras.layers.Dense(int(np.prod(shape)), activation="sigmoid"),
            keras.layers.Reshape(shape),
        ])  # fmt: skip
    autoencoder = keras.models.Sequential([encoder, decoder])
    autoencoder.compile(
        loss="binary_crossentropy",
        optimizer=keras.optimizers.SGD(learning_rate=1.5),
        metrics=[rounded_accuracy],
    )
    return autoencoder
