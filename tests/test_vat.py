"""Virtual adversarial training on digits: its perturbation is the adversarial one at norm ε,
the clean prediction is a constant target, a short training learns, bad settings stop first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from conftest import make_config
from test_objectives import BATCHES, SMALL, config, objective_for

from tiedae import pipeline
from tiedae.config import ConfigError, method_name
from tiedae.data import load_digits_splits, stratified_subset
from tiedae.objectives import train_with_objective
from tiedae.objectives.vat import kl_with_logits, normalized
from tiedae.training import FitSettings


@pytest.fixture(scope="module")
def digits():
    return load_digits_splits()


def flat_images(digits, start: int, n: int) -> tf.Tensor:
    return tf.reshape(tf.constant(digits.x_train[start : start + n]), (n, -1))


def per_example_kl(objective, x: tf.Tensor, clean: tf.Tensor, r: tf.Tensor) -> np.ndarray:
    q = tf.nn.softmax(clean)
    log_ratio = tf.nn.log_softmax(clean) - tf.nn.log_softmax(objective.logits(x + r))
    return tf.reduce_sum(q * log_ratio, axis=-1).numpy()


def test_the_logits_are_the_classifiers_before_its_softmax(digits):
    vat = objective_for(config("vat"), digits)
    images = tf.constant(digits.x_train[:50])
    np.testing.assert_allclose(
        tf.nn.softmax(vat.logits(images)).numpy(), vat.classifier(images).numpy(),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip


@pytest.mark.parametrize("epsilon", [0.5, 2.0])
def test_the_perturbation_has_norm_epsilon_and_moves_the_prediction_most(epsilon, digits):
    """‖r_adv‖ = ε for every image, and r_adv raises the KL of every image above a random
    direction of the same norm (on average by more than 5x)."""
    vat = objective_for(config("vat", f"objective.epsilon={epsilon}"), digits)
    x = flat_images(digits, 0, 200)
    clean = vat.logits(x)
    r_adv = vat.adversarial_perturbation(x, clean)
    np.testing.assert_allclose(np.linalg.norm(r_adv.numpy(), axis=1), epsilon, rtol=1e-5)
    r_random = epsilon * normalized(tf.random.normal(tf.shape(x), seed=1))
    adversarial, random = (per_example_kl(vat, x, clean, r) for r in (r_adv, r_random))
    assert (adversarial > random).mean() > 0.95
    assert adversarial.mean() > 5 * random.mean()


def test_normalized_follows_the_reference(digits):
    d = tf.constant([[3.0, -4.0, 0.0], [0.0, 0.0, 1e-3]])
    np.testing.assert_allclose(normalized(d).numpy(), [[0.6, -0.8, 0.0], [0.0, 0.0, 1.0]],
                               rtol=1e-5)  # fmt: skip
    assert kl_with_logits(d, d).numpy() == pytest.approx(0.0, abs=1e-7)


def test_the_clean_prediction_gets_no_gradient_through_the_target(digits, monkeypatch):
    """The VAT loss's gradient is the one of KL(constant clean prediction ‖ p(x + r_adv)) and
    not the one where the target is live too."""
    vat = objective_for(config("vat", "objective.epsilon=2.0"), digits)
    labeled = (tf.constant(digits.x_train[:32]), tf.constant(digits.y_train[:32]))
    unlabeled = tf.constant(digits.x_train[100:164])
    x = tf.reshape(unlabeled, (64, -1))
    r_adv = vat.adversarial_perturbation(x, vat.logits(x))
    monkeypatch.setattr(vat, "adversarial_perturbation", lambda x, clean: r_adv)
    variables = vat.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        step = vat.train_step(labeled, unlabeled)
        constant_target = kl_with_logits(tf.constant(vat.logits(x).numpy()), vat.logits(x + r_adv))
        live_target = kl_with_logits(vat.logits(x), vat.logits(x + r_adv))
    np.testing.assert_allclose(step["vat_loss"].numpy(), constant_target.numpy(), rtol=1e-6)
    got, constant, live = (
        tape.gradient(loss, variables) for loss in (step["vat_loss"], constant_target, live_target)
    )
    for mine, theirs in zip(got, constant, strict=True):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-8)
    assert not all(
        np.allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-6)
        for a, b in zip(constant, live, strict=True)
    )


def test_vat_entmin_is_vat_plus_the_entropy_of_the_clean_predictions(digits):
    labeled = (tf.constant(digits.x_train[:32]), tf.constant(digits.y_train[:32]))
    unlabeled = tf.constant(digits.x_train[100:164])
    plain, entmin = (objective_for(config(name), digits) for name in ("vat", "vat_entmin"))
    entmin.classifier.set_weights(plain.classifier.get_weights())
    without, with_entropy = (
        plain.train_step(labeled, unlabeled),
        entmin.train_step(labeled, unlabeled),
    )
    p = plain.classifier(unlabeled).numpy()
    entropy = -np.mean(np.sum(p * np.log(np.clip(p, 1e-7, 1.0)), axis=1))
    assert with_entropy["penalty"].numpy() == pytest.approx(entropy, rel=1e-4)
    assert with_entropy["loss"].numpy() == pytest.approx(
        without["loss"].numpy() + entropy, rel=1e-4
    )
    assert method_name(config("vat_entmin")) == "vat+entropy"


def test_a_short_training_on_fifty_digits_labels_beats_chance_clearly(digits):
    cfg = config("vat", "objective.epsilon=1.0", "objective.steps_per_epoch=10",
                 "classifier.learning_rate=0.003")  # fmt: skip
    labeled = stratified_subset(digits.y_train, 50, 0)
    _, history, _ = train_with_objective(
        cfg, digits, labeled, digits.x_train, FitSettings(epochs=6, seed=0, verbose=0)
    )
    assert history.epochs[-1]["vat_loss"] > 0
    assert max(epoch["val_accuracy"] for epoch in history.epochs) > 0.6  # chance: 0.1


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("objective.epsilon=0", "objective.epsilon=0 must be a number > 0"),
        ("objective.epsilon=-1.0", "objective.epsilon=-1.0 must be a number > 0"),
        ("objective.xi=0.0", "objective.xi=0.0 must be a number > 0"),
        ("objective.power_iterations=0", "objective.power_iterations=0 must be a positive"),
    ],
)
def test_bad_vat_settings_stop_with_one_line_before_training(override, named, store):
    with pytest.raises(ConfigError) as error:
        pipeline.run_experiment(make_config(*SMALL, "objective=vat", override, *BATCHES, *store))
    message = str(error.value)
    assert named in message and "\n" not in message
    assert not Path(store[0].split("sqlite:///", 1)[1]).exists()  # no store opened, no run


def test_the_epsilon_experiment_composes_each_job():
    """experiment=vat_epsilon's jobs: a row at each ε, ε not overridden by by_labels."""
    cfg = make_config("experiment=vat_epsilon", "method=vat_entmin", "objective.epsilon=2.5",
                      "labels.count=100", "seed=1")  # fmt: skip
    assert (cfg.objective.epsilon, cfg.objective.by_labels, cfg.protocol.name) == (
        2.5, None, "budget",
    )  # fmt: skip
    assert method_name(cfg) == "vat+entropy[1000,500,250,250,250]"


def test_epsilon_is_chosen_on_validation_and_test_is_never_read():
    import importlib.util

    from tiedae.config import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location(
        "vat_epsilon", PROJECT_ROOT / "scripts" / "vat_epsilon.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    runs = pd.DataFrame({
        "tags.method": ["vat"] * 4 + ["vat+entropy"] * 2,
        "params.labels.n": ["100", "100", "100", "500", "100", "100"],
        "params.objective.epsilon": ["1.0", "2.5", "2.5", "1.0", "1.0", "2.5"],
        "metrics.clf/val_accuracy_at_best": [0.70, 0.60, 0.90, 0.5, 0.65, 0.65],
        "metrics.test/accuracy": [0.1, 0.99, 0.99, 0.2, 0.99, 0.1],
    })  # fmt: skip
    table = script.validation_table(runs)
    chosen = table[table.chosen].set_index(["method", "labels"])["epsilon"].to_dict()
    assert chosen == {("vat", 100): 2.5, ("vat", 500): 1.0, ("vat+entropy", 100): 1.0}
    assert table.loc[(table.method == "vat") & (table.epsilon == 2.5), "seeds"].item() == 2
    assert not any("test" in column for column in table.columns)
