"""The unlabeled pool (issue 30): its size, its share of outside classes, whether the labeled
images sit in it, determinism, its place in the keys, and the one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_config
from mlflow.tracking import MlflowClient

from tiedae import pipeline
from tiedae.config import ConfigError, pretrain_settings, run_settings, settings_key
from tiedae.pool import PoolError, PoolSettings, draw

# ten classes of 300 training images each, in a shuffled order
Y = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 300))
SIX = [0, 1, 2, 3, 4, 6]


def test_a_pool_has_its_size_and_its_share_of_outside_classes():
    for mismatch in (0.0, 0.25, 0.5, 1.0):
        pool = draw(Y, SIX, PoolSettings(size=1000, mismatch=mismatch), seed=1)
        outside = np.isin(Y[pool], [5, 7, 8, 9])
        assert len(pool) == 1000 == len(set(pool))
        assert outside.sum() == round(1000 * mismatch)
        inside, counts = np.unique(Y[pool][~outside], return_counts=True)
        if len(inside):  # stratified: the six classes in equal shares, within one image
            assert set(inside) == set(SIX) and counts.max() - counts.min() <= 1


def test_the_outside_share_comes_from_the_classes_named():
    pool = draw(Y, SIX, PoolSettings(size=600, mismatch=0.5, outside_classes=(7,)), seed=1)
    assert set(Y[pool]) == {*SIX, 7} and np.sum(Y[pool] == 7) == 300


def test_size_null_is_the_task_s_images_and_a_fraction_is_a_share_of_them():
    assert len(draw(Y, SIX, PoolSettings(size=None, mismatch=0.5), seed=1)) == 1800
    assert len(draw(Y, None, PoolSettings(size=0.1), seed=1)) == 300


def test_the_labeled_images_sit_in_the_pool_only_when_asked_and_held_out_ones_never():
    labeled, held_out = np.flatnonzero(Y == 0)[:50], np.flatnonzero(Y == 1)[:50]
    every = PoolSettings(size=None)
    without = PoolSettings(size=None, include_labeled=False)
    kept = draw(Y, None, every, seed=3, labeled=labeled, held_out=held_out)
    assert set(labeled) <= set(kept) and not set(held_out) & set(kept)
    assert not set(labeled) & set(draw(Y, None, without, seed=3, labeled=labeled))


def test_the_same_seed_draws_the_same_pool_and_another_seed_another():
    settings = PoolSettings(size=500, mismatch=0.25)
    first, again = draw(Y, SIX, settings, seed=7), draw(Y, SIX, settings, seed=7)
    np.testing.assert_array_equal(first, again)
    assert set(first) != set(draw(Y, SIX, settings, seed=8))


def test_a_pool_larger_than_its_part_is_refused_with_the_fix():
    with pytest.raises(
        PoolError,
        match="1200 images from the outside classes asked for, but "
        "the training split has 1200|lower unlabeled.size",
    ):
        draw(Y, SIX, PoolSettings(size=1600, mismatch=0.8), seed=1)
    with pytest.raises(PoolError, match="5000 images from the labeled task's classes"):
        draw(Y, None, PoolSettings(size=5000), seed=1)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["unlabeled.size=0"], "unlabeled.size=0 must be null (all), a count >= 1"),
        (["unlabeled.size=1.5"], "unlabeled.size=1.5"),
        (["unlabeled.mismatch=0.5"], "there are none: set data.classes"),
        (["unlabeled.mismatch=2"], "unlabeled.mismatch=2 must be a share in [0, 1]"),
        (["data.classes=[0,1,2]", "unlabeled.outside_classes=[]"], "must list class ids"),
        (["data.classes=[0,1,2]", "unlabeled.outside_classes=[2,5]"], "overlaps the labeled"),
        (["unlabeled.size=100", "data.max_train=500"], "data.max_train=null"),
    ],
)
def test_bad_pool_values_stop_with_one_line_before_any_run(overrides, named, store):
    cfg = make_config("data=digits", "method=entropy_min", *overrides, *store)
    with pytest.raises(ConfigError) as error:
        pipeline.run_experiment(cfg)
    assert named in str(error.value) and "\n" not in str(error.value)
    assert not Path(store[0].split("sqlite:///", 1)[1]).exists()


def test_a_pool_too_large_for_the_data_stops_before_any_run(store):
    cfg = make_config("data=digits", "method=entropy_min", "unlabeled.size=5000", *store)
    with pytest.raises(PoolError, match="lower unlabeled.size") as error:
        pipeline.run_experiment(cfg)
    assert "\n" not in str(error.value)
    assert not Path(store[0].split("sqlite:///", 1)[1]).exists()  # no store opened, no run


def test_pool_settings_enter_the_keys_of_runs_that_read_a_pool_only():
    plain = make_config("method=entropy_min")
    pooled = make_config("method=entropy_min", "unlabeled.size=1000")
    assert settings_key(run_settings(plain)) != settings_key(run_settings(pooled))
    assert "unlabeled" not in run_settings(plain)  # earlier runs keep their keys
    scratch = make_config("method=scratch", "unlabeled.size=1000")
    assert settings_key(run_settings(scratch)) == settings_key(run_settings(
        make_config("method=scratch")))  # fmt: skip
    ae = make_config("method=tied_frozen", "unlabeled.size=1000", "unlabeled.include_labeled=false")
    assert pretrain_settings(ae)["unlabeled"]["size"] == 1000
    assert "unlabeled_labels" in pretrain_settings(ae)  # the pool depends on the labeled images


@pytest.mark.slow
def test_an_objective_run_trains_on_the_pool_and_logs_it(store):
    cfg = make_config(
        "data=digits", "method=entropy_min", "data.classes=[0,1,2,3,4,5]", "labels.count=60",
        "unlabeled.size=200", "unlabeled.mismatch=0.25", "objective.epochs=1",
        "objective.steps_per_epoch=2", "objective.unlabeled_batch_size=32",
        "objective.labeled_batch_size=16", "model.sizes=[32]", "runtime.verbose=0", *store,
    )  # fmt: skip
    pipeline.run_experiment(cfg)
    client = MlflowClient(store[0].split("=", 1)[1])
    [job] = client.search_runs([client.get_experiment_by_name("tiedae").experiment_id])
    params = job.data.params
    assert (params["unlabeled.n"], params["unlabeled.n_outside"]) == ("200", "50")
    assert params["objective.n_unlabeled"] == "200"
    inputs = {i.dataset.name: i for i in job.inputs.dataset_inputs}
    assert "digits-unlabeled-200" in inputs


@pytest.mark.slow
def test_an_autoencoder_pretrains_on_the_pool_less_its_held_out_images(store):
    cfg = make_config(
        "data=digits", "method=tied_frozen", "protocol=budget", "labels.count=60",
        "unlabeled.size=300", "pretrain.epochs=1", "classifier.epochs=1", "model.sizes=[16,8]",
        "probes.counts=[]", "runtime.verbose=0", *store,
    )  # fmt: skip
    pipeline.run_experiment(cfg)
    client = MlflowClient(store[0].split("=", 1)[1])
    runs = client.search_runs([client.get_experiment_by_name("tiedae").experiment_id])
    [pretraining] = [r for r in runs if r.data.tags.get("tiedae.role") == "pretrain"]
    assert pretraining.data.params["unlabeled.n"] == "300"
    assert pretraining.data.params["pretrain.n_images"] == "300"
