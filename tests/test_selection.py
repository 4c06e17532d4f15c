"""Model selection reads validation only, and keeps what it says it keeps: the test set is
poisoned until the final evaluation; early stopping and the gradual schedule restore the
best weights on validation; a baseline copes with fewer labels than classes."""

from __future__ import annotations

from dataclasses import replace

import keras
import numpy as np
import pytest
from conftest import QUICK, make_config
from mlflow.tracking import MlflowClient

from tiedae import baselines, classify, pipeline
from tiedae.data import load_digits_splits, stratified_subset
from tiedae.loop import fit
from tiedae.models import build_classifier
from tiedae.training import FitSettings, evaluate

LOSS = keras.losses.sparse_categorical_crossentropy
CHANCE = 0.1  # digits: 10 classes


@pytest.fixture(scope="module")
def digits():
    return load_digits_splits()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["tied_finetune", "logreg_pixels"])
def test_training_and_model_selection_never_read_the_test_set(method, store, monkeypatch):
    """x_test is NaN until the final evaluation, which alone gets the real images: any read
    before it (pretraining, training, early stopping, choosing C) would make NaN or fail."""
    real_load, real_test, real_score = (
        pipeline.load_dataset, pipeline.evaluate_on_test, baselines.score_test
    )  # fmt: skip
    final: list[str] = []

    def poisoned(data_cfg):
        splits = real_load(data_cfg)
        return replace(splits, x_test=np.full_like(splits.x_test, np.nan))

    def clean(splits):
        assert np.isnan(splits.x_test).all()  # nothing swapped the poisoned split out
        return real_load(cfg.data)

    def network_test(classifier, splits, batch_size=1000):
        final.append("network")
        return real_test(classifier, clean(splits), batch_size)

    def baseline_test(estimator, features, splits):
        final.append("baseline")
        return real_score(estimator, features, clean(splits))

    monkeypatch.setattr(pipeline, "load_dataset", poisoned)
    monkeypatch.setattr(pipeline, "evaluate_on_test", network_test)
    monkeypatch.setattr(baselines, "score_test", baseline_test)
    quick = [o for o in QUICK if method == "tied_finetune" or not o.startswith("classifier.")]
    # Probes (tiedae/probes.py) are a report on the frozen codes scored on the test set by
    # design, never used to choose anything; tests/test_protocol.py covers them.
    cfg = make_config(*quick, *store, f"method={method}", "probes.counts=[]")
    results = pipeline.run_experiment(cfg)

    assert len(final) == 1  # evaluated on test once, at the end
    assert results["test/accuracy"] > CHANCE + 0.2  # 100 labels, 4 epochs: 0.41 and 0.86
    assert np.isfinite(results["clf/val_accuracy_at_best"])
    if method == "tied_finetune":
        client = MlflowClient(store[0].split("=", 1)[1])
        [job] = client.search_runs(
            [client.get_experiment_by_name("tiedae").experiment_id], "tags.`tiedae.role`='job'"
        )
        curve = client.get_metric_history(job.info.run_id, "clf/val_loss")
        assert curve and all(np.isfinite(point.value) for point in curve)


def test_early_stopping_restores_the_weights_of_the_lowest_validation_loss(digits):
    keras.utils.set_random_seed(1)
    model = build_classifier(digits.image_shape, [16], 10)
    wrong = (digits.y_valid + 1) % 10  # validation worsens as the model learns the task
    history = fit(
        model, digits.x_train, digits.y_train, (digits.x_valid, wrong), loss=LOSS,
        optimizer=keras.optimizers.Nadam(0.01), metrics=classify.ACCURACY,
        settings=FitSettings(epochs=20, patience=2, seed=1, verbose=0),
    )  # fmt: skip
    best = history.best_epoch
    losses = [epoch["val_loss"] for epoch in history.epochs]
    assert best == int(np.argmin(losses)) and best < len(losses) - 1  # it stopped after best
    now = evaluate(model, digits.x_valid, wrong, LOSS, classify.ACCURACY)
    assert now["loss"] == pytest.approx(losses[best], rel=1e-5)
    assert now["loss"] < losses[-1]


def test_gradual_falls_back_to_the_frozen_phase_weights_when_unfreezing_does_not_help(
    digits, monkeypatch
):
    real_fit = classify._fit
    first: dict = {}

    def fit_or_spoil(classifier, splits, labeled, cfg, learning_rate, settings, on_epoch_end):
        if first:  # the unfrozen phase starts from wrecked weights: it cannot beat the first
            rng = np.random.default_rng(0)
            classifier.set_weights([rng.normal(0, 5, w.shape) for w in classifier.get_weights()])
        history = real_fit(classifier, splits, labeled, cfg, learning_rate, settings, on_epoch_end)
        if not first:
            first.update(weights=classifier.get_weights(), history=history)
        return history

    monkeypatch.setattr(classify, "_fit", fit_or_spoil)
    cfg = make_config("data=digits", "classifier=gradual", "classifier.frozen_epochs=3")
    from tiedae import pretrain

    autoencoder = pretrain.build_autoencoder(digits.image_shape, cfg.model, cfg.pretrain)
    labeled = stratified_subset(digits.y_train, 100, 1)
    classifier, history = classify.train_classifier(
        digits, labeled, cfg.model, cfg.classifier,
        FitSettings(epochs=2, patience=2, seed=1, verbose=0),
        pretrained=pretrain.pretrained_layers(autoencoder),
    )  # fmt: skip
    assert history.best_epoch == first["history"].best_epoch
    for kept, expected in zip(classifier.get_weights(), first["weights"], strict=True):
        np.testing.assert_array_equal(kept, expected)
    assert len(history.epochs) > len(first["history"].epochs)  # the second phase did run


def test_a_baseline_with_fewer_labels_than_classes_scores_every_class(digits):
    cfg = make_config("data=digits", "method=logreg_pixels")
    labeled = stratified_subset(digits.y_train, 6, 1)
    assert len(np.unique(digits.y_train[labeled])) < 10
    result = baselines.run_baseline(digits, labeled, cfg.classifier, seed=1)
    assert np.isfinite(result.test["loss"]) and result.test["loss"] > 0
    assert result.test["accuracy"] > CHANCE + 0.1  # 6 labeled digits: better than guessing
