"""The conv family: a tied transposed convolution, its autoencoder, classifier and config."""

import keras
import numpy as np
import pytest
from conftest import images_right, make_config
from omegaconf import OmegaConf

from tiedae.config import ConfigError, method_name, validate
from tiedae.layers import Conv2DTransposeTied
from tiedae.models import (
    ConvAutoencoder,
    build_conv_classifier,
    rounded_accuracy,
    transplant_encoder,
    weight_layers,
)


def conv_autoencoder(shape=(8, 8), tied=True) -> ConvAutoencoder:
    keras.utils.set_random_seed(0)
    return ConvAutoencoder(shape, [4, 8], [6], tied=tied)


@pytest.mark.parametrize(("size", "target"), [((4, 4), (7, 7)), ((4, 3), (8, 5))])
def test_tied_transposed_conv_is_the_adjoint_of_the_encoder_conv(size, target):
    """<conv(x), y> = <x, conv^T(y)>: the decoder applies the encoder kernel's transpose."""
    conv = keras.layers.Conv2D(5, 3, strides=2, padding="same", use_bias=False)
    conv.build((None, *target, 2))
    tied = Conv2DTransposeTied(conv, target)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, *target, 2)).astype("float32")
    y = rng.normal(size=(1, *size, 5)).astype("float32")
    transposed = tied(y)  # bias zero, no activation
    assert tuple(transposed.shape) == (1, *target, 2)
    assert [w.shape for w in tied.weights] == [(2,)]  # only its own bias
    np.testing.assert_allclose(np.sum(conv(x) * y), np.sum(x * np.asarray(transposed)), rtol=1e-4)


@pytest.mark.parametrize(("tied", "count"), [(True, 357_089), (False, 711_681)])
def test_parameter_counts_tied_decoder_holds_only_biases(tied, count):
    autoencoder = ConvAutoencoder((28, 28), [32, 64, 128], [128], tied=tied)
    assert autoencoder.count_params() == count
    if tied:  # decoder: a bias per transposed layer (2048 code-to-features, 64, 32, 1)
        assert autoencoder.decoder.count_params() == 2048 + 64 + 32 + 1


def test_a_gradient_step_moves_the_kernel_encoder_and_decoder_share():
    autoencoder = conv_autoencoder()
    convs = [
        layer for layer in autoencoder.encoder.layers if isinstance(layer, keras.layers.Conv2D)
    ]
    tied = [lay for lay in autoencoder.decoder.layers if isinstance(lay, Conv2DTransposeTied)]
    assert [layer.tied_to for layer in tied] == convs[::-1]
    kernels = [v for v in autoencoder.trainable_variables if "kernel" in v.path]
    assert len(kernels) == 3  # two convolutions and the code layer: one per tied pair
    before = convs[0].kernel.numpy().copy()
    x = np.random.default_rng(1).random((8, 8, 8)).astype("float32")
    autoencoder.compile(optimizer=keras.optimizers.SGD(1.0), loss="binary_crossentropy")
    autoencoder.train_on_batch(x, x)
    after = convs[0].kernel.numpy()
    assert not np.allclose(before, after)
    np.testing.assert_array_equal(tied[-1].tied_to.kernel.numpy(), after)


@pytest.mark.parametrize("tied", [True, False])
def test_save_and_load_round_trip_keeps_outputs_and_ties(tmp_path, tied):
    autoencoder = ConvAutoencoder((6, 5, 3), [4, 8], [6], tied=tied, input_noise="dropout",
                                  noise_rate=0.1)  # fmt: skip
    x = np.random.default_rng(2).random((5, 6, 5, 3)).astype("float32")
    autoencoder.compile(optimizer="sgd", loss="binary_crossentropy", metrics=[rounded_accuracy])
    autoencoder.train_on_batch(x, x)
    path = tmp_path / "ae.keras"
    autoencoder.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, ConvAutoencoder) and loaded.tied == tied
    np.testing.assert_allclose(loaded.predict(x, verbose=0), autoencoder.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    assert loaded.count_params() == autoencoder.count_params()
    if tied:
        tied_layers = [lay for lay in loaded.decoder.layers if isinstance(lay, Conv2DTransposeTied)]
        convs = [lay for lay in loaded.encoder.layers if isinstance(lay, keras.layers.Conv2D)]
        assert all(
            t.tied_to.kernel is c.kernel for t, c in zip(tied_layers, convs[::-1], strict=True)
        )


@pytest.mark.parametrize("trainable", [True, False])
def test_classifier_copies_the_lowest_encoder_layers(trainable):
    autoencoder = conv_autoencoder()
    classifier = build_conv_classifier((8, 8), [4, 8], [6], n_classes=3, reuse=2)
    pretrained = weight_layers(autoencoder.encoder)[:2]  # the two convolutions
    transplant_encoder(classifier, pretrained, trainable=trainable)
    hidden = weight_layers(classifier)
    assert [type(layer).__name__ for layer in hidden] == ["Conv2D", "Conv2D", "Dense"]
    for source, target in zip(pretrained, hidden, strict=False):
        np.testing.assert_array_equal(source.kernel.numpy(), target.kernel.numpy())
        assert source.kernel is not target.kernel and target.trainable == trainable
    assert classifier.output_shape == (None, 3)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["pretrain=greedy"], "pretrain=greedy does not work with model.family=conv"),
        (["pretrain=transfer", "data.classes=[5,6]"], "pretrain=transfer does not work"),
        (["model.filters=[8,0]"], "model.filters=[8, 0] must be a non-empty list"),
        (["model.kernel_size=4"], "model.kernel_size=4 must be an odd positive integer"),
        (["model.family=rnn"], "model.family='rnn' is unknown; allowed: dense, conv"),
        (["classifier.reuse_layers=5"], "classifier.reuse_layers=5 must be null (all) or 1..4"),
    ],
)
def test_bad_conv_settings_fail_with_one_line(overrides, expected):
    with pytest.raises(ConfigError) as error:
        validate(make_config("data=digits", "model=conv_tied", *overrides))
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_conv_rows_are_named_apart_from_the_dense_ones():
    names = {
        method_name(make_config(f"method={m}"))
        for m in ("conv_scratch", "conv_tied_frozen", "conv_untied_finetune", "scratch")
    }
    assert names == {
        "conv_scratch", "conv_tied-autoencoder-frozen", "conv_untied-autoencoder-finetune",
        "scratch",
    }  # fmt: skip
    small = make_config("method=conv_scratch", "model.filters=[8,16]", "model.sizes=[16]")
    assert method_name(small) == "conv_scratch[8,16|16]"


def test_conv_pipeline_end_to_end_on_digits_denoising_and_frozen(store):
    from tiedae import pipeline

    cfg = make_config(
        "data=digits", "method=conv_tied_frozen", "model.filters=[8,16]", "model.sizes=[16]",
        "pretrain.epochs=1", "pretrain.input_noise=dropout", "pretrain.noise_rate=0.2",
        "classifier.epochs=2", "classifier.patience=1", "labels.count=100", "runtime.verbose=0",
        *store,
    )  # fmt: skip
    results = pipeline.run_experiment(cfg)
    # two epochs of a frozen head stay near chance: the accuracy is a count of the 360 test
    # images, and the kept weights' validation accuracy one of the 200 validation images
    assert 0 < images_right(results["test/accuracy"]) < 360
    images_right(results["clf/val_accuracy_at_best"], 200)
    # frozen: only the head (16 -> 10) learns; the copied conv and code layers do not
    assert results["params/classifier_trainable"] == 16 * 10 + 10
    n_conv = 3 * 3 * 1 * 8 + 8 + 3 * 3 * 8 * 16 + 16
    assert results["params/classifier"] == n_conv + 2 * 2 * 16 * 16 + 16 + 16 * 10 + 10
    assert OmegaConf.select(cfg, "model.family") == "conv"


@pytest.mark.parametrize("classifier", ["finetune", "gradual"])
def test_conv_classifier_trains_from_scratch_or_gradually_from_pretrained_layers(classifier):
    from tiedae.classify import train_classifier
    from tiedae.data import load_digits_splits
    from tiedae.training import FitSettings

    cfg = make_config("data=digits", "model=conv_tied", "model.filters=[4,8]", "model.sizes=[8]",
                      f"classifier={classifier}", "classifier.frozen_epochs=1")  # fmt: skip
    splits = load_digits_splits()
    autoencoder = conv_autoencoder()  # filters [4, 8], code 6: reuse its two convolutions
    pretrained = weight_layers(autoencoder.encoder)[:2] if classifier == "gradual" else None
    settings = FitSettings(epochs=1, batch_size=32, seed=1, patience=1, verbose=0)
    model, history = train_classifier(
        splits, np.arange(64), cfg.model, cfg.classifier, settings, pretrained=pretrained, reuse=2
    )
    hidden = weight_layers(model)
    assert [type(layer).__name__ for layer in hidden] == ["Conv2D", "Conv2D", "Dense"]
    assert all(layer.trainable for layer in hidden)  # gradual: unfrozen after its first phase
    assert len(history.epochs) == (2 if classifier == "gradual" else 1)
    if pretrained:  # frozen first, so the copied kernel moved only if the tuned phase won
        moved = not np.allclose(hidden[0].kernel.numpy(), pretrained[0].kernel.numpy())
        assert moved == (history.best_epoch == 1)
