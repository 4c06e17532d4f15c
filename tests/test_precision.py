"""``runtime.precision=mixed_bfloat16`` (issue 13's bfloat16 lead): hidden layers compute in
bfloat16 and outputs stay float32, for the autoencoders and every objective; it changes the
numbers a little, not what is learned much; runs get their own rows and keys; a bad value stops
before training."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import QUICK, make_config
from mlflow.tracking import MlflowClient
from test_objectives import OBJECTIVE_CONFIGS, config, objective_for

from tiedae import pipeline
from tiedae.config import ConfigError, method_name, run_settings, settings_key, validate
from tiedae.data import load_digits_splits, stratified_subset
from tiedae.layers import product
from tiedae.models import Autoencoder, ConvAutoencoder
from tiedae.objectives import train_with_objective
from tiedae.training import FitSettings

MIXED = "runtime.precision=mixed_bfloat16"


@pytest.fixture(scope="module")
def digits():
    return load_digits_splits()


@pytest.fixture
def policy():
    """Set the process's dtype policy with ``policy(name)``; float32 again afterwards."""
    yield keras.config.set_dtype_policy
    keras.config.set_dtype_policy("float32")


def test_a_product_in_bfloat16_rounds_its_inputs_and_returns_float32():
    a = tf.constant([[1.0 + 2**-10, 3.0]])
    b = tf.constant([[1.0], [1.0]])
    assert product(a, b, "float32").numpy()[0, 0] == pytest.approx(4.0 + 2**-10)
    rounded = product(a, b, "bfloat16")  # 8 bits of mantissa: 1 + 2^-10 rounds to 1
    assert rounded.dtype == tf.float32 and rounded.numpy()[0, 0] == 4.0
    transposed = product(a, tf.constant([[1.0, 1.0]]), "bfloat16", transpose_b=True)
    assert transposed.numpy()[0, 0] == 4.0


@pytest.mark.parametrize("tied", [True, False])
def test_an_autoencoder_computes_hidden_layers_in_bfloat16_and_outputs_float32(
    tied, policy, tmp_path
):
    policy("mixed_bfloat16")
    model = Autoencoder((8, 8), [32, 16], tied=tied)
    x = np.random.default_rng(0).random((4, 8, 8), dtype=np.float32)
    assert model.encoder(x).dtype == tf.bfloat16
    assert model(x).dtype == tf.float32 and model(x).shape == (4, 8, 8)
    decoder = model.decoder.layers
    assert [layer.compute_dtype for layer in decoder] == ["bfloat16", "float32", "float32"]
    assert all(v.dtype == "float32" for v in model.weights)  # variables stay float32
    path = tmp_path / "ae.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    assert loaded.encoder.layers[-1].compute_dtype == "bfloat16"


@pytest.mark.parametrize("tied", [True, False])
def test_a_conv_autoencoder_under_mixed_precision_outputs_float32_and_trains(tied, policy):
    policy("mixed_bfloat16")
    model = ConvAutoencoder((8, 8), [4, 8], [6], tied=tied)
    x = tf.constant(np.random.default_rng(0).random((4, 8, 8), dtype=np.float32))
    assert model.encoder(x).dtype == tf.bfloat16 and model(x).dtype == tf.float32
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.binary_crossentropy(x, model(x, training=True)))
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and g.dtype == tf.float32 for g in gradients)
    assert np.isfinite(loss.numpy())


@pytest.mark.parametrize("objective", OBJECTIVE_CONFIGS)
def test_every_objective_steps_in_bfloat16_close_to_float32(objective, digits, policy):
    """One step's losses under each policy from the same initial weights: finite, float32,
    not equal (so the products did run in bfloat16) and within a few percent."""
    labeled = (tf.constant(digits.x_train[:32]), tf.constant(digits.y_train[:32]))
    unlabeled = tf.constant(digits.x_train[100:164])
    quiet = ["objective.input_noise=0.0", "objective.hidden_noise=0.0"]
    steps = {}
    weights = None
    for precision in ("float32", "mixed_bfloat16"):
        policy(precision)
        trained = objective_for(config(objective, *quiet), digits)
        if weights is None:
            weights = [v.numpy() for v in trained.trainable_variables]
        for variable, value in zip(trained.trainable_variables, weights, strict=True):
            variable.assign(value)
        steps[precision] = {k: v.numpy() for k, v in trained.train_step(labeled, unlabeled).items()}
        hidden = [layer for layer in trained.classifier.layers if layer.name != "head"][-1]
        assert hidden.compute_dtype == ("bfloat16" if precision != "float32" else "float32")
    full, mixed = steps["float32"], steps["mixed_bfloat16"]
    assert mixed["loss"].dtype == np.float32 and np.isfinite(mixed["loss"])
    assert mixed["loss"] != full["loss"]
    for name in full:
        np.testing.assert_allclose(mixed[name], full[name], rtol=0.05, atol=1e-3, err_msg=name)


@pytest.mark.parametrize("objective", ["ladder_tied", "joint_tied"])
def test_a_bfloat16_objective_learns_as_float32_does(objective, digits, policy):
    labeled = stratified_subset(digits.y_train, 100, 0)
    accuracy = {}
    for precision in ("float32", "mixed_bfloat16"):
        policy(precision)
        cfg = config(objective, "classifier.learning_rate=0.003")
        _, history, _ = train_with_objective(
            cfg, digits, labeled, digits.x_train, FitSettings(epochs=3, seed=0, verbose=0)
        )
        accuracy[precision] = history.epochs[-1]["val_accuracy"]
    assert accuracy["float32"] > 0.5
    assert abs(accuracy["mixed_bfloat16"] - accuracy["float32"]) <= 0.03


def test_a_bfloat16_objective_is_deterministic(digits, policy):
    policy("mixed_bfloat16")
    labeled = stratified_subset(digits.y_train, 100, 0)
    cfg = config("ladder_tied", "objective.steps_per_epoch=5")
    first, second = (
        train_with_objective(
            cfg, digits, labeled, digits.x_train, FitSettings(epochs=2, seed=0, verbose=0)
        )[1].epochs
        for _ in range(2)
    )
    assert first == second


def test_precision_names_its_own_row_and_key():
    full = make_config("data=digits", "pretrain=autoencoder")
    mixed = make_config("data=digits", "pretrain=autoencoder", MIXED)
    assert method_name(full) == "tied-autoencoder-frozen"
    assert method_name(mixed) == "tied-autoencoder-frozen@mixed_bfloat16"
    assert settings_key(run_settings(full)) != settings_key(run_settings(mixed))
    assert "precision" not in run_settings(full)  # float32 runs keep the keys they had
    pixels = ["data=digits", "pretrain=none", "classifier=logreg"]
    assert method_name(make_config(*pixels, MIXED)) == "logreg-pixels"  # no network
    assert run_settings(make_config(*pixels, MIXED)) == run_settings(make_config(*pixels))


def test_an_unknown_precision_stops_with_one_line():
    with pytest.raises(ConfigError, match=r"runtime.precision='float16'.*float32, mixed_bfloat16"):
        validate(make_config("data=digits", "runtime.precision=float16"))


@pytest.mark.slow
def test_a_bfloat16_pipeline_run_logs_its_row_and_scores_as_float32_does(store, policy):
    """Pretraining (under XLA), freezing, the classifier and the model's logging all run under
    mixed precision; its test loss and accuracy are float32's, nearly."""
    quick = [*QUICK, "pretrain=autoencoder", "runtime.jit=true", *store]
    full = pipeline.run_experiment(make_config(*quick))
    mixed = pipeline.run_experiment(make_config(*quick, MIXED))
    assert keras.config.dtype_policy().name == "mixed_bfloat16"  # the run set it
    client = MlflowClient(store[0].split("=", 1)[1])
    experiment = client.get_experiment_by_name("tiedae").experiment_id
    jobs = {
        run.data.tags["method"]: run
        for run in client.search_runs([experiment], "tags.`tiedae.role` = 'job'")
    }
    job = jobs["tied-autoencoder-frozen@mixed_bfloat16"]
    assert set(jobs) == {"tied-autoencoder-frozen", "tied-autoencoder-frozen@mixed_bfloat16"}
    assert job.info.status == "FINISHED"
    assert job.data.params["runtime.precision"] == "mixed_bfloat16"
    assert mixed["test/loss"] != full["test/loss"]  # bfloat16 did compute something
    assert mixed["test/loss"] == pytest.approx(full["test/loss"], rel=0.02)
    assert abs(mixed["test/accuracy"] - full["test/accuracy"]) <= 0.05
