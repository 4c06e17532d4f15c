"""Issue 10's propagation row: scikit-learn's LabelSpreading on a pretrained encoder's codes
(``classifier.features=codes``, ``method=tied_propagation``), on digits in seconds."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_config
from omegaconf import OmegaConf
from test_bad_input import no_training, one_line  # noqa: F401  (no_training: a fixture, by name)
from test_pipeline import client_for, runs

from tiedae import config as C
from tiedae import pipeline
from tiedae.baselines import Codes, flat, run_baseline
from tiedae.data import load_digits_splits, stratified_subset

ROW = "tied[500,200]-greedy+dropout0.3-label_spreading"
FAST = ["data=digits", "method=tied_propagation", "++pretrain.epochs=1", "runtime.verbose=0",
        "probes.counts=[]"]  # fmt: skip
ENCODER_WEIGHTS = 64 * 500 + 500 + 500 * 200 + 200  # digits' 8x8 pixels -> 500 -> 200


def test_the_row_pretrains_what_tied_greedy_gradual_does_and_is_named_apart():
    propagation = make_config(*FAST)
    gradual = make_config("data=digits", "method=tied_greedy_gradual", "pretrain.epochs=1")
    C.validate(propagation)
    assert C.method_name(propagation) == ROW
    assert C.on_codes(propagation) and not C.on_codes(gradual)
    same = C.settings_key(C.pretrain_settings(propagation))
    assert same == C.settings_key(C.pretrain_settings(gradual))  # one cache entry a seed
    assert C.settings_key(C.run_settings(propagation)) != C.settings_key(C.run_settings(gradual))
    wider = make_config(*FAST, "model.sizes=[300,200]")
    assert C.settings_key(C.run_settings(wider)) != C.settings_key(C.run_settings(propagation))


def test_label_spreading_on_codes_encodes_every_image_once_and_predicts_test_codes():
    digits = load_digits_splits()
    projection = np.random.default_rng(0).normal(size=(64, 12)).astype(np.float32)
    encoded: list[int] = []

    def encode(images: np.ndarray) -> np.ndarray:
        encoded.append(len(images))
        return flat(images) @ projection

    cfg = make_config(*FAST, "classifier.alpha=[0.2,0.8]").classifier
    labeled = stratified_subset(digits.y_train, 50, 1)
    result = run_baseline(digits, labeled, cfg, seed=1, codes=Codes(encode, 123))

    assert encoded == [len(digits.x_train), len(digits.x_valid), len(digits.x_test)]
    assert len(result.estimator.transduction_) == len(digits.x_train)  # labeled and not
    assert result.chosen in (0.2, 0.8) and result.val_accuracy is not None
    predicted = result.estimator.predict(flat(digits.x_test) @ projection)
    assert result.test["accuracy"] == pytest.approx(np.mean(predicted == digits.y_test))
    assert result.test["accuracy"] > 0.7  # chance is 0.1
    assert result.n_parameters == 123  # the encoder's; LabelSpreading learns none


@pytest.mark.slow
def test_the_row_runs_end_to_end_logs_test_accuracy_and_reuses_the_cache(store):
    first = pipeline.run_experiment(
        make_config(*FAST, *store, "labels.count=100", "classifier.alpha=[0.2,0.8]")
    )
    client = client_for(store)
    [job] = runs(client, "job")
    [pretraining] = runs(client, "pretrain")
    assert job.info.status == pretraining.info.status == "FINISHED"
    tags = job.data.tags
    assert (tags["method"], tags["pretrained"], tags["tied"]) == (ROW, "True", "True")
    assert tags["pretrain.cache"] == "miss"
    assert pretraining.data.tags["mlflow.parentRunId"] == job.info.run_id
    assert first["test/accuracy"] > 0.5  # chance is 0.1; one epoch a stage
    assert job.data.metrics["test/accuracy"] == pytest.approx(first["test/accuracy"])
    assert job.data.metrics["clf/val_accuracy_at_best"] > 0.8  # chance is 0.1
    assert job.data.metrics["clf/chosen_regularization"] in (0.2, 0.8)
    assert job.data.metrics["params/classifier"] == ENCODER_WEIGHTS
    assert job.data.params["classifier.features"] == "codes"

    second = pipeline.run_experiment(make_config(*FAST, *store, "labels.count=50"))
    assert second["test/accuracy"] > 0.8  # chance is 0.1
    assert len(runs(client, "pretrain")) == 1
    newest = runs(client, "job")[0]
    assert newest.data.tags["pretrain.cache"] == "hit"
    assert newest.data.tags["pretrain.run_id"] == pretraining.info.run_id


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["classifier.alpha=1.0"], "classifier.alpha=1.0 must be a number in (0, 1)"),
        (["classifier.alpha=[0.5,0]"], "classifier.alpha=[0.5, 0] must be a number in (0, 1)"),
        (["classifier.n_neighbors=0"], "classifier.n_neighbors=0 must be a positive integer"),
        (["classifier.n_neighbors=100000"],
         "classifier.n_neighbors=100000 is larger than the 1237 training images of digits"),
        (["classifier.max_iter=-1"], "classifier.max_iter=-1 must be a positive integer"),
        (["classifier.reuse_layers=3"], "classifier.reuse_layers=3 must be null (all) or 1..2"),
        (["pretrain=none"], "classifier.features=codes reads a pretrained encoder's codes but "
                            "pretrain=none"),
        (["classifier=label_spreading"], "set pretrain=none (the method bundles do), or "
                                         "classifier.features=codes"),
    ],
)  # fmt: skip
@pytest.mark.usefixtures("no_training")  # any training fails the test
def test_a_bad_value_stops_with_one_line_before_training(store, overrides, expected):
    with pytest.raises(C.ConfigError) as error:
        pipeline.run_experiment(make_config(*FAST, *store, *overrides))
    assert expected in one_line(error)


def test_codes_need_the_encoder():
    cfg = OmegaConf.create({"features": "codes"})
    with pytest.raises(ValueError, match="needs the pretrained encoder's codes"):
        run_baseline(load_digits_splits(), np.arange(10), cfg, seed=1)
