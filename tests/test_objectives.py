"""Issue 10's semi-supervised objectives on digits: tied decoders own no kernels, every loss
term falls, the mean teacher averages, pseudo-labels respect their threshold, bad values stop
before training, and a pipeline run logs each named loss per epoch."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_config
from mlflow.tracking import MlflowClient

from tiedae import pipeline
from tiedae.config import ConfigError, method_name
from tiedae.data import load_digits_splits, stratified_subset
from tiedae.objectives import (
    OBJECTIVES,
    base,
    build_objective,
    discover,
    fit_objective,
    objective_configs,
    objective_methods,
    train_with_objective,
)
from tiedae.objectives.base import compiled_objective_steps
from tiedae.objectives.penalties import PENALTIES
from tiedae.objectives.pseudo_label import pseudo_labels
from tiedae.training import FitSettings, make_optimizer

SMALL = ["data=digits", "pretrain=none", "classifier=finetune", "runtime.verbose=0"]
BATCHES = ["objective.labeled_batch_size=32", "objective.unlabeled_batch_size=64"]
LADDER = ["model.sizes=[32,16]", "objective.costs=[1.0,1.0,0.1,0.1]", "objective.by_labels=null"]


@pytest.fixture(scope="module")
def digits():
    return load_digits_splits()


def config(objective: str, *overrides: str):
    """A small digits config with ``objective``; the ladders on a [32, 16] MLP."""
    extra = LADDER if objective.startswith("ladder") else []
    return make_config(*SMALL, f"objective={objective}", *BATCHES, *extra, *overrides)


def objective_for(cfg, digits):
    return build_objective(cfg, digits.image_shape, digits.n_classes, len(digits.x_train))


def kernel_count(variables) -> int:
    return sum(int(np.prod(v.shape)) for v in variables if len(v.shape) == 2)


def test_tied_decoders_own_no_kernels(digits):
    tied = objective_for(config("joint_tied"), digits)
    untied = objective_for(config("joint_untied"), digits)
    assert kernel_count(tied.decoder.trainable_variables) == 0
    assert len(tied.decoder.trainable_variables) == 2  # one bias per decoder layer
    # the untied decoder owns the two transposed kernels: 30x100 and 100x64
    assert tied.count_parameters() + 30 * 100 + 100 * 64 == untied.count_parameters()
    ladder_tied = objective_for(config("ladder_tied"), digits)
    ladder_untied = objective_for(config("ladder_untied"), digits)
    # the tied ladder's decoder: the combinators' 10 numbers per unit of each level, no kernel
    assert sum(int(np.prod(v.shape)) for v in ladder_tied.decoder_variables) == 10 * (
        64 + 32 + 16 + 10
    )
    assert all(v.shape[0] == 10 for v in ladder_tied.decoder_variables)
    assert ladder_tied.count_parameters() + 10 * 16 + 16 * 32 + 32 * 64 == (
        ladder_untied.count_parameters()
    )
    gamma = objective_for(config("gamma"), digits)  # top level only: one combinator
    assert [tuple(v.shape) for v in gamma.decoder_variables] == [(10, 10)]


@pytest.mark.parametrize(
    ("objective", "extra"),
    [("joint_tied", "objective.penalty=entropy"), ("ladder_untied", "objective.penalty=none")],
)
def test_each_loss_term_falls_on_a_tiny_run(objective, extra, digits):
    cfg = config(objective, "objective.input_noise=0.1", "objective.hidden_noise=0.1",
                 "classifier.learning_rate=0.003", extra)  # fmt: skip
    labeled = stratified_subset(digits.y_train, 100, 0)
    _, history, trained = train_with_objective(
        cfg, digits, labeled, digits.x_train, FitSettings(epochs=3, seed=0, verbose=0)
    )
    first, last = history.epochs[0], history.epochs[-1]
    terms = [name for name in trained.loss_names if name != "loss"]
    assert len(terms) >= 2 and "labeled_loss" in terms
    for name in ["loss", *terms]:
        assert last[name] < first[name], (name, first[name], last[name])
    assert last["val_accuracy"] > 0.5


def test_the_mean_teacher_is_the_moving_average_of_the_student(digits):
    cfg = config("mean_teacher", "objective.ema_decay=0.9", "objective.steps_per_epoch=1")
    teacher = objective_for(cfg, digits)
    before = [v.numpy() for v in teacher.teacher.weights]
    run = compiled_objective_steps(
        teacher, make_optimizer("adam", 0.01), tf.constant(digits.x_train),
        tf.constant(digits.y_train), tf.constant(digits.x_train), 32, 64,
    )  # fmt: skip
    order = tf.range(len(digits.x_train), dtype=tf.int32)
    run(order, order, tf.constant(0), tf.constant(1))
    student = [v.numpy() for v in teacher.student.weights]
    after = [v.numpy() for v in teacher.teacher.weights]
    assert not np.allclose(before[0], after[0])  # the teacher moved ...
    for old, new, own in zip(before, after, student, strict=True):  # ... by 0.1 of the gap
        np.testing.assert_allclose(new, 0.9 * old + 0.1 * own, rtol=1e-5, atol=1e-6)
    assert teacher.classifier is teacher.teacher
    assert not set(map(id, teacher.trainable_variables)) & set(map(id, teacher.teacher.weights))


@pytest.mark.parametrize("statistics", ["unlabeled", "batch", "separate"])
def test_the_ladder_normalises_with_the_statistics_it_is_told(statistics, digits):
    """Under ``unlabeled`` the labeled few (here: blank images) do not shift the encoder's
    normalisation nor the moving averages the saved classifier uses; under ``batch`` they do."""
    cfg = config("ladder_tied", "objective.bn_momentum=0.0",
                 "objective.inference_statistics=moving",
                 f"objective.bn_statistics={statistics}")  # fmt: skip
    ladder = objective_for(cfg, digits)
    labeled = (tf.zeros((32, *digits.image_shape)), tf.constant(digits.y_train[:32]))
    unlabeled = tf.constant(digits.x_train[:64])
    ladder.train_step(labeled, unlabeled)
    first = ladder.layers[0]
    unlabeled_mean = tf.reduce_mean(first.preactivation(tf.reshape(unlabeled, (64, -1))), 0)
    expected = unlabeled_mean * (64 / 96 if statistics == "batch" else 1.0)
    np.testing.assert_allclose(first.moving_mean.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("statistics", ["unlabeled", "separate"])
def test_a_separate_ladder_normalises_each_half_apart_and_decodes_the_unlabeled(statistics, digits):
    """``separate`` (the reference code's): the labeled rows take their own statistics, and
    the denoising costs do not see them at all; ``unlabeled`` decodes every row."""
    cfg = config("ladder_tied", f"objective.bn_statistics={statistics}",
                 "objective.input_noise=0.0", "objective.hidden_noise=0.0")  # fmt: skip
    ladder = objective_for(cfg, digits)
    unlabeled = tf.constant(digits.x_train[:64])
    n = tf.constant(32)
    pair = [tf.constant(digits.x_train[100:132]), tf.constant(digits.x_train[200:232])]
    zs, _, _ = ladder.encode(tf.reshape(tf.concat([pair[0], unlabeled], 0), (96, -1)), n, False)
    labeled_means = tf.reduce_mean(zs[1][:32], axis=0).numpy()
    own = np.allclose(labeled_means, 0.0, atol=1e-4)
    assert own == (statistics == "separate")
    costs = [
        ladder.train_step((images, tf.constant(digits.y_train[:32])), unlabeled) for images in pair
    ]
    names = [name for name in costs[0] if name.startswith("reconstruction_")]
    same = all(np.isclose(costs[0][k].numpy(), costs[1][k].numpy(), rtol=1e-6) for k in names)
    assert same == (statistics == "separate")


OBJECTIVE_CONFIGS = tuple(objective_configs())  # every conf/objective option but none


@pytest.mark.parametrize("objective", OBJECTIVE_CONFIGS)
@pytest.mark.parametrize("penalty", sorted(PENALTIES))
def test_every_objective_adds_the_penalty_of_its_unlabeled_predictions(objective, penalty, digits):
    """Without noise the step's unlabeled predictions are the classifier's (the ladders' batch
    statistics its moving averages, at momentum 0); the total grows by λ x the penalty of
    those, and by nothing else, against the same objective without it."""
    quiet = ["objective.input_noise=0.0", "objective.hidden_noise=0.0"]
    if objective.startswith(("ladder", "gamma")):
        quiet += ["objective.bn_momentum=0.0", "objective.inference_statistics=moving"]
    plain = objective_for(config(objective, *quiet, "objective.penalty=none"), digits)
    added = objective_for(config(objective, *quiet, f"objective.penalty={penalty}",
                                 "objective.penalty_weight=0.5"), digits)  # fmt: skip
    labeled = (tf.constant(digits.x_train[:32]), tf.constant(digits.y_train[:32]))
    unlabeled = tf.constant(digits.x_train[100:164])
    without, with_penalty = (
        plain.train_step(labeled, unlabeled),
        added.train_step(labeled, unlabeled),
    )
    assert "penalty" not in without and "penalty" in added.loss_names
    expected = PENALTIES[penalty](added.classifier(unlabeled, training=False))
    np.testing.assert_allclose(with_penalty["penalty"].numpy(), expected.numpy(), rtol=1e-4)
    np.testing.assert_allclose(
        with_penalty["loss"].numpy(), (without["loss"] + 0.5 * expected).numpy(), rtol=1e-4
    )


def test_pseudo_labels_respect_their_threshold():
    probabilities = tf.constant([[0.96, 0.04], [0.5, 0.5], [0.2, 0.8], [0.05, 0.95]])
    labels, confident = pseudo_labels(probabilities, 0.95)
    assert labels.numpy().tolist() == [0, 0, 1, 1]
    assert confident.numpy().tolist() == [1.0, 0.0, 0.0, 1.0]
    _, everything = pseudo_labels(probabilities, 0.5)
    assert everything.numpy().tolist() == [1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["objective=joint_tied", "objective.weight=-1"], "objective.weight=-1"),
        (["objective=ladder_tied", "objective.hidden_noise=-0.3"], "objective.hidden_noise=-0.3"),
        (["objective=pseudo_label", "objective.threshold=1.5"], "objective.threshold=1.5"),
        (["objective=joint_tied", "objective.name=ladderz"], "objective.name='ladderz'"),
        (["objective=ladder_tied", "model.sizes=[32]"], "objective.costs="),
        (["objective=gamma", "objective.bn_statistics=labeled"], "bn_statistics='labeled'"),
        (["objective=ladder_tied", "objective.penalty=entropic"], "objective.penalty='entropic'"),
        (["objective=joint_tied", "objective.penalty_weight=-2"], "objective.penalty_weight=-2"),
        (["objective=joint_tied", "model=conv_tied"], "not the conv model conv_tied"),
    ],
)
def test_bad_objective_values_stop_with_one_line_before_training(overrides, named, store):
    with pytest.raises(ConfigError) as error:
        pipeline.run_experiment(make_config(*SMALL, *overrides, *BATCHES, *store))
    message = str(error.value)
    assert named in message and "\n" not in message
    assert not Path(store[0].split("sqlite:///", 1)[1]).exists()  # no store opened, no run


def test_every_objective_has_a_config_and_a_distinct_row():
    configs = {name: config(name) for name in OBJECTIVE_CONFIGS}
    names = {name: method_name(cfg) for name, cfg in configs.items()}
    assert len(set(names.values())) == len(names)
    assert names["ladder_tied"] == "ladder-tied[32,16]"
    with_penalty = config("ladder_tied", "objective.penalty=entropy")
    assert method_name(with_penalty) == "ladder-tied+entropy[32,16]"
    assert {cfg.objective.name for cfg in configs.values()} == set(OBJECTIVES)
    assert method_name(make_config(*SMALL)) == "scratch"  # objective=none: as before
    pretrained = config("joint_untied", "pretrain=autoencoder")
    assert method_name(pretrained) == "tied-autoencoder+joint-untied"


def test_the_registry_holds_every_module_and_every_config_has_its_method_row():
    """A new objective is its module, its conf/objective and conf/method yamls: the package's
    modules register themselves, and the rows of conf/method pick every objective config."""
    modules = set(discover())
    assert {"base", "penalties", "entropy", "ladder"} <= modules and "cost" not in modules
    assert {cls.__module__.rsplit(".", 1)[1] for cls in OBJECTIVES.values()} <= modules
    assert {"ladder_tied", "gamma_model", "entropy_min"} <= set(objective_methods())
    picked = [make_config(f"method={row}").objective for row in objective_methods()]
    assert {o.name for o in picked} == set(OBJECTIVES)
    assert len(objective_methods()) == len(OBJECTIVE_CONFIGS)


def test_an_objective_key_for_a_whole_sweep_over_methods_composes_with_plus_plus():
    """Hydra composes a sweep's config before its jobs pick a method (objective: none, no
    keys), then each job's: ``++objective.penalty`` composes in both, a plain override only in
    the job (README, semi-supervised objectives)."""
    from hydra.errors import ConfigCompositionException

    sweep_level = make_config("++objective.penalty=entropy")
    job = make_config("method=ladder_tied", "++objective.penalty=entropy")
    assert (sweep_level.objective.name, job.objective.penalty) == ("none", "entropy")
    assert method_name(job) == "ladder-tied+entropy[1000,500,250,250,250]"
    assert make_config("method=ladder_tied", "objective.penalty=entropy").objective.penalty
    with pytest.raises(ConfigCompositionException):
        make_config("objective.penalty=entropy")


@pytest.mark.slow
def test_a_pipeline_run_with_an_objective_logs_each_loss_per_epoch(store):
    cfg = config(
        "ladder_tied", "pretrain=none", "classifier.epochs=2", "classifier.patience=2",
        "labels.count=50", "objective.steps_per_epoch=10", *store,
    )  # fmt: skip
    results = pipeline.run_experiment(cfg)
    client = MlflowClient(store[0].split("=", 1)[1])
    experiment = client.get_experiment_by_name("tiedae")
    [job] = client.search_runs([experiment.experiment_id])
    assert job.info.status == "FINISHED"
    assert job.data.tags["method"] == "ladder-tied[32,16]"
    for curve in ("clf/labeled_loss", "clf/reconstruction_0", "clf/reconstruction_1",
                  "clf/reconstruction_2", "clf/reconstruction_3", "clf/val_accuracy"):  # fmt: skip
        assert [m.step for m in client.get_metric_history(job.info.run_id, curve)] == [0, 1]
    assert job.data.metrics["test/accuracy"] == pytest.approx(results["test/accuracy"])
    assert job.data.metrics["params/objective_trainable"] > job.data.metrics["params/classifier"]


def test_fit_objective_keeps_the_best_weights(digits):
    cfg = config("entropy", "objective.steps_per_epoch=5")
    objective = objective_for(cfg, digits)
    labeled = stratified_subset(digits.y_train, 50, 0)
    history = fit_objective(
        objective, (digits.x_train[labeled], digits.y_train[labeled]), digits.x_train,
        (digits.x_valid, digits.y_valid), optimizer=make_optimizer("adam", 0.05),
        settings=FitSettings(epochs=4, seed=0, patience=None, verbose=0),
    )  # fmt: skip
    best = history.epochs[history.best_epoch]["val_accuracy"]
    assert best == max(epoch["val_accuracy"] for epoch in history.epochs)
    predicted = objective.classifier.predict(digits.x_valid, verbose=0).argmax(axis=1)
    assert np.mean(predicted == digits.y_valid) == pytest.approx(best)


def test_fit_objective_follows_runtime_jit(digits, monkeypatch):
    """XLA when ``runtime.jit`` says true; "auto" leaves it out (it slows these steps on CPU)."""
    asked: list[bool] = []

    def recording(*args):  # the steps run plain all the same: no XLA compile in this test
        asked.append(args[-1])
        return compiled_objective_steps(*args[:-1], False)

    monkeypatch.setattr(base, "compiled_objective_steps", recording)
    # 10,000 steps would put a fit under XLA; a learning rate of 0 stops it after two epochs
    objective = objective_for(config("entropy", "objective.steps_per_epoch=1"), digits)
    for jit in (True, "auto", False):
        fit_objective(
            objective, (digits.x_train[:64], digits.y_train[:64]), digits.x_train,
            (digits.x_valid, digits.y_valid), optimizer=make_optimizer("adam", 0.0),
            settings=FitSettings(epochs=10_000, seed=0, patience=1, verbose=0, jit=jit),
        )  # fmt: skip
    assert asked == [True, False, False]


@pytest.mark.parametrize("objective", ["joint_untied", "ladder_tied"])
def test_an_objective_can_start_from_pretrained_encoder_layers(objective, digits):
    """pretrain=autoencoder then an objective: the encoder's kernels are the starting point."""
    cfg = config(objective)
    trained = objective_for(cfg, digits)
    widths = [64, *cfg.model.sizes]
    pretrained = []
    for depth, (n_in, n_out) in enumerate(zip(widths, widths[1:], strict=False), start=1):
        dense = keras.layers.Dense(n_out, name=f"pretrained_{depth}")
        dense.build((None, n_in))
        dense.set_weights([np.full((n_in, n_out), 0.01 * depth), np.zeros(n_out)])
        pretrained.append(dense)
    trained.start_from(pretrained)
    kernels = [v.numpy() for v in trained.classifier.trainable_variables if len(v.shape) == 2]
    for depth, kernel in enumerate(kernels[: len(pretrained)], start=1):
        np.testing.assert_allclose(kernel, 0.01 * depth)
    assert not np.allclose(kernels[-1], 0.01 * len(kernels))  # the head keeps its own start


def test_without_early_stopping_an_objective_keeps_no_patience(digits, monkeypatch):
    """A fixed epoch budget (protocol=fixed, or budget with too few labels to validate) is not
    overridden by the objective's own patience, keeps the last epoch rather than a best one
    judged on the training labels; the objective's own epochs still count."""
    import tiedae.objectives as objectives

    seen = []

    def fit_objective(*args, settings, keep_best, **kwargs):
        seen.append((settings.epochs, settings.patience, keep_best))

    monkeypatch.setattr(objectives, "fit_objective", fit_objective)
    cfg = config("joint_tied", "objective.epochs=4", "objective.patience=1")
    settings = FitSettings(epochs=30, seed=0, patience=None, verbose=0)
    labeled = stratified_subset(digits.y_train, 50, 0)
    for early_stopping in (True, False):
        train_with_objective(
            cfg, digits, labeled, digits.x_train, settings, early_stopping=early_stopping
        )
    assert seen == [(4, 1, True), (4, None, False)]
