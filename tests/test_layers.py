import keras
import numpy as np
import pytest

from tiedae.layers import DenseTranspose
from tiedae.models import Autoencoder, rounded_accuracy


def seed_autoencoder(tied: bool) -> Autoencoder:
    keras.utils.set_random_seed(0)
    return Autoencoder((28, 28), [100, 30], activation="selu", tied=tied)


def test_dense_transpose_maps_back_to_the_tied_layers_input_width():
    dense = keras.layers.Dense(30)
    dense.build((None, 100))
    layer = DenseTranspose(dense, activation="selu")
    out = layer(np.zeros((4, 30), dtype="float32"))
    assert out.shape == (4, 100)
    assert [w.shape for w in layer.weights] == [(100,)]  # only its own bias


def test_dense_transpose_computes_activation_of_x_times_kernel_transposed_plus_bias():
    dense = keras.layers.Dense(3)
    dense.build((None, 5))
    layer = DenseTranspose(dense, activation="sigmoid")
    x = np.random.default_rng(0).normal(size=(2, 3)).astype("float32")
    layer.build(x.shape)
    layer.bias.assign(np.arange(5, dtype="float32"))
    expected = 1 / (1 + np.exp(-(x @ dense.kernel.numpy().T + np.arange(5))))
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5)


@pytest.mark.parametrize(("tied", "count"), [(True, 82_414), (False, 163_814)])
def test_parameter_counts_match_the_seed(tied, count):
    assert seed_autoencoder(tied).count_params() == count


def test_a_gradient_step_moves_one_kernel_that_encoder_and_decoder_both_use():
    autoencoder = seed_autoencoder(tied=True)
    encoder_dense = autoencoder.encoder.layers[1]  # after Flatten
    decoder_tied = autoencoder.decoder.layers[-2]
    assert isinstance(decoder_tied, DenseTranspose) and decoder_tied.tied_to is encoder_dense
    kernels = [v for v in autoencoder.trainable_variables if "kernel" in v.path]
    assert len(kernels) == 2  # one per tied pair
    before = encoder_dense.kernel.numpy().copy()
    x = np.random.default_rng(1).random((8, 28, 28)).astype("float32")
    autoencoder.compile(optimizer=keras.optimizers.SGD(1.0), loss="binary_crossentropy")
    autoencoder.train_on_batch(x, x)
    after = encoder_dense.kernel.numpy()
    assert not np.allclose(before, after)
    # the decoder reads the very same, updated variable
    np.testing.assert_array_equal(decoder_tied.tied_to.kernel.numpy(), after)


@pytest.mark.parametrize("tied", [True, False])
def test_save_and_load_round_trip_keeps_outputs_and_ties(tmp_path, tied):
    autoencoder = seed_autoencoder(tied)
    x = np.random.default_rng(2).random((5, 28, 28)).astype("float32")
    autoencoder.compile(optimizer="sgd", loss="binary_crossentropy", metrics=[rounded_accuracy])
    autoencoder.train_on_batch(x, x)
    path = tmp_path / "ae.keras"
    autoencoder.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), autoencoder.predict(x, verbose=0), rtol=1e-6
    )
    assert loaded.count_params() == autoencoder.count_params()
    if tied:
        tied_layers = [lay for lay in loaded.decoder.layers if isinstance(lay, DenseTranspose)]
        encoder_layers = loaded.encoder.layers[1:][::-1]
        assert [lay.tied_to for lay in tied_layers] == encoder_layers
        pairs = zip(tied_layers, encoder_layers, strict=True)
        assert all(tied.tied_to.kernel is dense.kernel for tied, dense in pairs)


def test_rounded_accuracy_rounds_both_sides():
    y_true = np.array([[0.2, 0.8, 0.6]], dtype="float32")
    y_pred = np.array([[0.4, 0.9, 0.1]], dtype="float32")
    assert float(np.mean(rounded_accuracy(y_true, y_pred))) == pytest.approx(2 / 3)
