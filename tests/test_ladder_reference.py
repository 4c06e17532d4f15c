"""The ladder's reference ingredients (experiments/reproduction/README.md), one test each, so
none drifts: own moments for the labeled rows, denoising costs blind to them, test-time
statistics of the labeled images, the schedule's decay, labeled batches without repeats,
kernels that never start equal, and the 1000-label settings."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_config
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from tiedae import pipeline
from tiedae.config import ConfigError
from tiedae.data import load_digits_splits, stratified_subset
from tiedae.objectives import build_objective, settle_for_labels, train_with_objective
from tiedae.objectives.base import for_labels, learning_rate_factor, shuffled_orders
from tiedae.training import FitSettings

SMALL = ["data=digits", "runtime.verbose=0", "objective.labeled_batch_size=32",
         "objective.unlabeled_batch_size=64", "model.sizes=[32,16,16,16]",
         "objective.costs=[1.0,1.0,0.1,0.1,0.1,0.1]", "objective.by_labels=null"]  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    return load_digits_splits()


def ladder(digits, *overrides: str, method: str = "ladder_untied"):
    cfg = make_config(f"method={method}", *SMALL, *overrides)
    return build_objective(cfg, digits.image_shape, digits.n_classes, len(digits.x_train))


def test_the_default_ladder_is_the_reference_one():
    section = make_config("method=ladder_tied").objective
    assert (section.bn_statistics, section.inference_statistics, section.init) == (
        "separate",
        "labeled",
        "fan_in_normal",
    )
    assert (section.labeled_batches, section.lr_decay_start, section.bn_epsilon) == (
        "cycle",
        0.67,
        1e-10,
    )
    assert make_config("method=ladder_untied").objective.epochs == 150


def test_labeled_rows_are_normalised_by_their_own_moments_in_both_passes(digits):
    objective = ladder(digits, "objective.input_noise=0.0", "objective.hidden_noise=0.0")
    labeled = tf.reshape(tf.constant(digits.x_train[:32]), (32, -1))
    unlabeled = tf.reshape(tf.constant(digits.x_train[500:564]), (64, -1))
    for noisy in (False, True):
        zs, _, _ = objective.encode(tf.concat([labeled, unlabeled], 0), tf.constant(32), noisy)
        for z in zs[1:]:
            for rows in (z[:32], z[32:]):
                np.testing.assert_allclose(tf.reduce_mean(rows, 0), 0.0, atol=1e-4)
                variance = tf.math.reduce_variance(rows, 0).numpy()
                assert np.all((np.abs(variance - 1) < 1e-3) | (variance < 1e-6))


def test_the_denoising_costs_are_blind_to_the_labeled_rows(digits):
    """Same seeds, same unlabeled batch, other labeled images: every reconstruction cost equal
    to the last digit, the labeled cross-entropy not."""
    unlabeled = tf.constant(digits.x_train[500:564])
    labels = tf.constant(digits.y_train[:32])
    steps = []
    for images in (digits.x_train[:32], digits.x_train[100:132]):
        objective = ladder(digits)
        steps.append(objective.train_step((tf.constant(images), labels), unlabeled))
    names = [n for n in steps[0] if n.startswith("reconstruction_")]
    assert len(names) == 6
    for name in names:
        assert steps[0][name].numpy() == steps[1][name].numpy()
    assert steps[0]["labeled_loss"].numpy() != steps[1]["labeled_loss"].numpy()


@pytest.mark.parametrize("n", [32, 64])
def test_test_time_statistics_are_the_labeled_images_clean_moments(n, digits):
    """After training, each layer normalises with the labeled images' clean-pass moments: per
    labeled batch (32 here), each normalised with its own, means and unbiased variances
    averaged over the batches (the reference's final statistics)."""
    cfg = make_config("method=ladder_tied", *SMALL, "objective.steps_per_epoch=3")
    labeled = stratified_subset(digits.y_train, n, 0)
    classifier, _, objective = train_with_objective(
        cfg, digits, labeled, digits.x_train, FitSettings(epochs=2, seed=0, verbose=0)
    )
    images = tf.constant(digits.x_train[labeled])
    batches = [tf.reshape(images[first : first + 32], (32, -1)) for first in range(0, n, 32)]
    for layer in objective.layers:
        zs = [layer.preactivation(h) for h in batches]
        means = [tf.reduce_mean(z, 0) for z in zs]
        variances = [tf.math.reduce_variance(z, 0) * 32 / 31 for z in zs]
        np.testing.assert_allclose(layer.moving_mean, np.mean(means, 0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(layer.moving_variance, np.mean(variances, 0), rtol=1e-4)
        batches = [layer.activate((z - tf.reduce_mean(z, 0)) / tf.math.reduce_std(z, 0))
                   for z in zs]  # fmt: skip
    h = tf.reshape(images, (n, -1))
    for layer in objective.layers:  # the saved classifier normalises with those
        z = layer.preactivation(h) - layer.moving_mean
        h = layer.activate(z / tf.sqrt(layer.moving_variance + layer.epsilon))
    np.testing.assert_allclose(classifier(images), h, rtol=1e-4, atol=1e-5)


def test_the_learning_rate_holds_two_thirds_then_falls_linearly_to_zero():
    """The reference's LRDecay (150 epochs, decay from 0.67 of them): constant, then a straight
    line whose next value, after the last epoch, is 0."""
    factors = [learning_rate_factor(epoch, 150, 0.67) for epoch in range(150)]
    assert factors[:101] == [1.0] * 101
    steps = np.diff(factors[101:] + [0.0])
    np.testing.assert_allclose(steps, steps[0])
    assert 0 < factors[-1] == pytest.approx(1 / 49.5) and factors[-1] + steps[0] == pytest.approx(0)
    assert factors[101] == pytest.approx(49 / 49.5)  # after epoch 102 of 150 (1-based)


def test_the_ported_schedule_is_the_tensorflow_ports_rate_epoch_by_epoch():
    """ladder_ablation=rinuboney_schedule: Adam 0.02, and rinuboney/ladder's per-epoch rule
    (ladder.py:233-240 at 7216aba): once epoch k (0-based) has run and k + 1 >= 15, the next
    epoch's rate is 0.02 (150 - (k + 1)) / 135."""
    cfg = make_config("experiment=reproduction_ablation", "method=ladder_untied",
                      "ladder_ablation=rinuboney_schedule", "hydra.mode=RUN")  # fmt: skip
    assert cfg.classifier.learning_rate == 0.02 and cfg.objective.epochs == 150
    start = cfg.objective.lr_decay_start
    ported = [1.0] * 16 + [(150 - (k + 1)) / 135 for k in range(15, 149)]
    ours = [learning_rate_factor(epoch, 150, start) for epoch in range(150)]
    np.testing.assert_allclose(ours, ported, rtol=1e-12)


@pytest.mark.parametrize(("n", "batch"), [(100, 100), (1000, 100), (250, 100), (80, 80)])
def test_no_labeled_image_is_twice_in_one_batch(n, batch):
    order = shuffled_orders(np.random.default_rng(0), n, 40 * batch, whole=batch).numpy()
    batches = order.reshape(40, batch)
    assert all(len(set(b)) == batch for b in batches)
    per_pass = n // batch  # each pass of whole batches covers distinct images
    seen = batches[:per_pass].ravel()
    assert len(set(seen)) == per_pass * batch
    legacy = shuffled_orders(np.random.default_rng(0), 80, 4000).numpy().reshape(40, 100)
    assert any(len(set(b)) < 100 for b in legacy)  # what cycle prevents


@pytest.mark.parametrize("start", ["fan_in_normal", "model"])
def test_same_shaped_layers_never_start_equal(start, digits):
    objective = ladder(digits, f"objective.init={start}")
    encoder = [layer.kernel.numpy() for layer in objective.layers]
    decoder = [v.numpy() for v in objective.down.values()]
    assert encoder[2].shape == encoder[3].shape == (16, 16)
    assert decoder[2].shape == decoder[3].shape == (16, 16)
    assert not np.allclose(encoder[2], encoder[3])
    assert not np.allclose(decoder[2], decoder[3])
    if start == "fan_in_normal":  # N(0, 1/fan-in)
        wide = ladder(digits, "model.sizes=[400,16,16,16]").layers[0].kernel.numpy()
        assert np.std(wide) * np.sqrt(64) == pytest.approx(1.0, abs=0.02)


def test_settings_of_a_labeled_count_apply_from_that_count_on():
    section = make_config("method=ladder_tied").objective
    assert list(for_labels(section, 100).costs)[:2] == [1000, 10]
    assert list(for_labels(section, 999).costs)[:2] == [1000, 10]
    at_1000 = for_labels(section, 55000)
    assert (list(at_1000.costs)[:2], at_1000.hidden_noise) == ([2000, 20], 0.2)
    assert "by_labels" not in at_1000
    cfg = settle_for_labels(make_config("method=ladder_tied", "labels.count=1000"), 1000)
    assert cfg.objective.hidden_noise == 0.2 and "by_labels" not in cfg.objective


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("+objective.by_labels.500.hidden_noise=-1", "objective.by_labels.500: objective.hidden"),
        ("+objective.by_labels.500.costz=1", "sets costz, which the objective does not have"),
        ("objective.inference_statistics=running", "inference_statistics='running'"),
        ("objective.init=zeros", "objective.init='zeros'"),
        ("objective.labeled_batches=twice", "objective.labeled_batches='twice'"),
    ],
)
def test_bad_reference_settings_stop_with_one_line(override, named, store):
    with pytest.raises(ConfigError) as error:
        pipeline.run_experiment(make_config("method=ladder_tied", *SMALL, override, *store))
    assert named in str(error.value) and "\n" not in str(error.value)


def test_a_run_logs_the_settings_of_its_labeled_count(store):
    cfg = make_config(
        "method=ladder_tied", *SMALL[:-1], "objective.steps_per_epoch=2", "objective.epochs=1",
        "labels.count=60", "objective.by_labels.1000.costs=[2.0,1.0,0.1,0.1,0.1,0.1]",
        "+objective.by_labels.50={hidden_noise: 0.1}", *store,
    )  # fmt: skip
    pipeline.run_experiment(cfg)
    client = MlflowClient(store[0].split("=", 1)[1])
    [job] = client.search_runs([client.get_experiment_by_name("tiedae").experiment_id])
    assert job.data.params["objective.hidden_noise"] == "0.1"
    assert not any(key.startswith("objective.by_labels") for key in job.data.params)
    assert cfg.objective.by_labels["50"] == OmegaConf.create({"hidden_noise": 0.1})


def test_each_ablation_switches_back_exactly_its_ingredients():
    """conf/ladder_ablation: the reference changes nothing; each other variant differs from it
    in the keys its ledger line names, and earlier_variant in all of them."""
    from tiedae.config import CONFIG_DIR

    def section(variant: str) -> dict:
        cfg = make_config("experiment=reproduction_ablation", "method=ladder_untied",
                          f"ladder_ablation={variant}", "hydra.mode=RUN")  # fmt: skip
        return OmegaConf.to_container(cfg.objective)

    reference = section("reference")
    assert reference == OmegaConf.to_container(
        make_config("method=ladder_untied", "objective.steps_per_epoch=600").objective
    )
    changed = {}
    for path in sorted((CONFIG_DIR / "ladder_ablation").glob("*.yaml")):
        variant = section(path.stem)
        changed[path.stem] = {k for k in reference if variant[k] != reference[k]}
    assert changed["reference"] == set()
    assert changed["bn_unlabeled"] == {"bn_statistics"}
    assert changed["constant_rate"] == {"lr_decay_start"}
    assert changed["rinuboney_schedule"] == {"lr_decay_start"}
    singles = set().union(*(keys for name, keys in changed.items() if name != "earlier_variant"))
    assert singles - {"patience"} <= changed["earlier_variant"]


def test_settings_of_a_count_not_run_do_not_stop_a_run_with_other_sizes():
    from tiedae.objectives import check_objective

    other = ["method=ladder_tied", "model.sizes=[32,16]", "objective.costs=[1.0,1.0,0.1,0.1]"]
    check_objective(make_config(*other, "labels.count=100"))  # the 1000-label costs unused
    with pytest.raises(ConfigError, match=r"objective.by_labels.1000: objective.costs="):
        check_objective(make_config(*other, "labels.count=1000"))
