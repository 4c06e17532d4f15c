"""Issue 11's protocol: under budget, validation comes from the N labels themselves and the
dataset's validation split is never read; the probes of each pretraining run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import make_config
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from tiedae import pipeline
from tiedae.data import load_digits_splits, stratified_subset
from tiedae.protocols import labeled_view, pretraining_view
from tiedae.protocols.budget import budget_split

BUDGET = OmegaConf.create(
    {"name": "budget", "valid_fraction": 0.2, "fixed_epochs": 3, "pretrain_holdout": 0.05}
)
FIXED = OmegaConf.create({"name": "fixed", "fixed_epochs": 4, "pretrain_holdout": 0.05})
FAST = ["data=digits", "runtime.verbose=0", "++pretrain.epochs=1", "++classifier.epochs=3",
        "++classifier.patience=2", "probes.counts=[50]"]  # fmt: skip


class Untouchable:
    """Stands for the dataset's validation split: any read of it fails the run."""

    def _refuse(self, *args, **kwargs):
        raise AssertionError("the dataset's validation split was read under protocol=budget")

    __getitem__ = __len__ = __iter__ = __array__ = _refuse

    def __getattr__(self, name):
        self._refuse()


@pytest.fixture(scope="module")
def digits():
    return load_digits_splits()


def test_budget_split_is_stratified_disjoint_and_keeps_a_label_per_class(digits):
    labeled = stratified_subset(digits.y_train, 100, seed=3)
    view = labeled_view(digits, labeled, BUDGET, seed=3)
    assert view.validation == "budget"
    assert not set(view.labeled) & set(view.valid_indices)
    assert sorted([*view.labeled, *view.valid_indices]) == sorted(labeled)
    np.testing.assert_array_equal(view.splits.y_valid, digits.y_train[view.valid_indices])
    np.testing.assert_array_equal(view.splits.x_valid, digits.x_train[view.valid_indices])
    per_class = np.bincount(digits.y_train[labeled], minlength=10)
    in_valid = np.bincount(view.splits.y_valid, minlength=10)
    np.testing.assert_array_equal(in_valid, np.clip(np.round(0.2 * per_class), 1, per_class - 1))
    assert set(digits.y_train[view.labeled]) == set(range(10))
    again = labeled_view(digits, stratified_subset(digits.y_train, 100, seed=3), BUDGET, 3)
    np.testing.assert_array_equal(again.valid_indices, view.valid_indices)
    other_seed = budget_split(digits.y_train[labeled], 0.2, seed=4)[1]
    assert not np.array_equal(labeled[other_seed], view.valid_indices)


def test_too_few_labels_to_split_fall_back_to_a_fixed_epoch_budget(digits):
    labeled = stratified_subset(digits.y_train, 15, seed=1)  # some classes hold one label
    view = labeled_view(digits, labeled, BUDGET, seed=1)
    assert (view.validation, view.fixed_epochs) == ("fixed_epochs", 3)
    np.testing.assert_array_equal(view.labeled, labeled)
    with pytest.raises(ValueError, match="labeled example"):
        budget_split(digits.y_train[labeled], 0.2, seed=1)


def test_fixed_trains_on_every_label_for_a_fixed_number_of_epochs_and_reads_no_validation(digits):
    poisoned = replace(digits, x_valid=Untouchable(), y_valid=Untouchable())
    labeled = stratified_subset(digits.y_train, 100, seed=3)  # enough to split under budget
    view = labeled_view(poisoned, labeled, FIXED, seed=3)
    assert (view.validation, view.fixed_epochs, view.valid_indices) == ("fixed_epochs", 4, None)
    np.testing.assert_array_equal(view.labeled, labeled)
    assert labeled_view(digits, labeled, BUDGET, seed=3).validation == "budget"
    assert len(pretraining_view(poisoned, FIXED).x_valid) == round(0.05 * len(digits.x_train))


def test_pretraining_under_budget_holds_out_training_images_not_the_validation_split(digits):
    poisoned = replace(digits, x_valid=Untouchable(), y_valid=Untouchable())
    view = pretraining_view(poisoned, BUDGET)
    assert len(view.x_train) + len(view.x_valid) == len(digits.x_train)
    assert len(view.x_valid) == round(0.05 * len(digits.x_train))
    assert set(view.y_valid) == set(range(10))


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory) -> list[str]:
    """One store for the end-to-end tests below: creating a sqlite store takes seconds."""
    folder = tmp_path_factory.mktemp("store")
    return [f"tracking.uri=sqlite:///{folder}/mlflow.db", f"tracking.artifact_dir={folder}/art"]


def poison(monkeypatch) -> None:
    real = pipeline.load_dataset

    def load_dataset(data_cfg):
        return replace(real(data_cfg), x_valid=Untouchable(), y_valid=Untouchable())

    monkeypatch.setattr(pipeline, "load_dataset", load_dataset)


def finite_metrics(client: MlflowClient, run_id: str) -> dict[str, float]:
    metrics = client.get_run(run_id).data.metrics
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    return metrics


# method, overrides, the validation the run must report
CASES = [
    ("tied_frozen", ["labels.count=60", "probes.counts=[20,100]"], "budget"),
    ("logreg_pixels", ["labels.count=60"], "budget"),
    ("tied_greedy_gradual", ["labels.count=15", "classifier.frozen_epochs=2",
                             "protocol.fixed_epochs=2", "labels.allow_few_per_class=true"],
     "fixed_epochs"),
    ("transfer_frozen", ["labels.count=30", "data.classes=[5,6,7,8,9]"], "budget"),
    ("tied_propagation", ["labels.count=60"], "budget"),  # tied_greedy_gradual's cached encoder
]  # fmt: skip


@pytest.mark.slow
def test_budget_never_reads_the_validation_split_and_pairs_methods(monkeypatch, shared_store):
    """The dataset's validation split is poisoned: any read fails the run. Every pretraining
    kind, the fixed-epoch fallback with the gradual schedule, a scikit-learn baseline and label
    spreading on pretrained codes run to the end; methods at one (seed, N) see the same labeled
    images and budget validation; the pretraining run logs its probes and codes picture."""
    poison(monkeypatch)
    seen = {}
    real_view = pipeline.labeled_view

    def spy(splits, labeled, protocol_cfg, seed):
        view = real_view(splits, labeled, protocol_cfg, seed)
        seen[(splits.name, len(splits.class_names), len(labeled))] = seen.get(
            (splits.name, len(splits.class_names), len(labeled)), []
        ) + [(view.labeled, view.valid_indices)]
        return view

    monkeypatch.setattr(pipeline, "labeled_view", spy)
    client = MlflowClient(shared_store[0].split("=", 1)[1])
    for method, extra, validation in CASES:
        cfg = make_config(*FAST, *shared_store, f"method={method}", "protocol=budget", *extra)
        results = pipeline.run_experiment(cfg)
        if pipeline.C.is_sklearn(cfg):  # fitted to the end (the networks: 3 epochs, ~chance)
            assert results["test/accuracy"] > 0.7  # chance is 0.1
        [job] = client.search_runs(
            [client.get_experiment_by_name("tiedae").experiment_id],
            f"tags.`tiedae.role` = 'job' and tags.method = '{pipeline.C.method_name(cfg)}'",
        )
        assert job.info.status == "FINISHED"
        assert job.data.metrics["test/accuracy"] == pytest.approx(results["test/accuracy"])
        assert job.data.tags["protocol"] == "budget"
        assert job.data.tags["protocol.validation"] == validation
        allowed = job.data.tags.get("labels.allow_few_per_class")  # the fallback is opted into
        assert (allowed, job.data.tags.get("labels.min_per_class")) == (
            ("True", "1") if validation == "fixed_epochs" else (None, None)
        )
        assert job.data.params["protocol.name"] == "budget"
        metrics = finite_metrics(client, job.info.run_id)
        assert ("clf/val_accuracy_at_best" in metrics) == (validation == "budget")
    [(labeled, valid), *others] = seen[("digits", 10, 60)]
    assert len(others) == 2 and len(valid) >= 10  # a network, scikit-learn on pixels, on codes
    for other_labeled, other_valid in others:
        np.testing.assert_array_equal(other_labeled, labeled)
        np.testing.assert_array_equal(other_valid, valid)
    check_probes(client, "pretrain tied-autoencoder seed=42", counts=(20, 100))
    check_probes(client, "pretrain transfer source classes=0,1,2,3,4 seed=42", counts=(50,))


def check_probes(client: MlflowClient, name: str, counts: tuple[int, ...]) -> None:
    [pretraining] = client.search_runs(
        [client.get_experiment_by_name("tiedae").experiment_id],
        f"tags.`tiedae.role` = 'pretrain' and tags.`mlflow.runName` = '{name}'",
    )
    assert pretraining.data.tags["protocol"] == "budget"
    metrics = finite_metrics(client, pretraining.info.run_id)
    for kind in ("knn", "logreg"):
        for count in counts:
            assert 0.25 < metrics[f"probe/{kind}_accuracy_n{count}"] <= 1.0  # chance: 0.1-0.2
        steps = client.get_metric_history(pretraining.info.run_id, f"probe/{kind}_accuracy")
        assert sorted(m.step for m in steps) == list(counts)
    artifacts = {f.path for f in client.list_artifacts(pretraining.info.run_id)}
    assert "codes_pca.png" in artifacts


@pytest.mark.slow
def test_fixed_runs_every_epoch_keeps_the_last_and_never_reads_the_validation_split(
    monkeypatch, shared_store
):
    """A network and an objective row under protocol=fixed: the dataset's validation split is
    poisoned, each runs its whole budget (protocol.fixed_epochs; the objective its own
    epochs) with no best epoch chosen, and the runs say which protocol they ran."""
    poison(monkeypatch)
    client = MlflowClient(shared_store[0].split("=", 1)[1])
    rows = [
        (["method=scratch", "protocol.fixed_epochs=3"], 3),
        (["method=joint_tied", "model.sizes=[32,16]", "objective.epochs=2",
          "objective.labeled_batch_size=32", "objective.unlabeled_batch_size=64"], 2),
    ]  # fmt: skip
    for overrides, epochs in rows:
        cfg = make_config(*FAST, *shared_store, "protocol=fixed", "labels.count=100", *overrides)
        pipeline.run_experiment(cfg)
        [job] = client.search_runs(
            [client.get_experiment_by_name("tiedae").experiment_id],
            f"tags.`tiedae.role` = 'job' and tags.method = '{pipeline.C.method_name(cfg)}'"
            " and tags.protocol = 'fixed'",
        )
        assert job.info.status == "FINISHED"
        assert job.data.tags["protocol.validation"] == "fixed_epochs"
        assert job.data.params["labels.n_valid"] == "0"
        metrics = finite_metrics(client, job.info.run_id)
        assert "clf/best_epoch" not in metrics and "clf/val_accuracy_at_best" not in metrics
        losses = client.get_metric_history(job.info.run_id, "clf/loss")
        assert sorted(m.step for m in losses) == list(range(epochs))


def test_oracle_reads_the_validation_split_so_the_poison_above_bites(monkeypatch, shared_store):
    poison(monkeypatch)
    cfg = make_config(*FAST, *shared_store, "method=logreg_pixels", "labels.count=60")
    assert cfg.protocol.name == "oracle"  # the default: today's behaviour
    with pytest.raises(AssertionError, match="validation split was read"):
        pipeline.run_experiment(cfg)


def test_protocol_is_validated_and_part_of_the_keys_that_it_changes():
    from tiedae.config import ConfigError, pretrain_settings, run_settings, settings_key, validate

    with pytest.raises(ConfigError, match=r"protocol.valid_fraction=1.5 must be a number in \(0"):
        validate(make_config("protocol=budget", "protocol.valid_fraction=1.5"))
    with pytest.raises(
        ConfigError, match="protocol='nope' is unknown; allowed: budget, fixed, oracle"
    ):
        validate(make_config("protocol.name=nope"))
    with pytest.raises(ConfigError, match=r"protocol.pretrain_holdout=0 must be a number in \(0"):
        validate(make_config("protocol=fixed", "protocol.pretrain_holdout=0"))
    with pytest.raises(ConfigError, match="protocol.fixed_epochs"):
        validate(make_config("protocol=fixed", "protocol.fixed_epochs=0"))
    validate(make_config("protocol=fixed"))
    oracle, budget = make_config(), make_config("protocol=budget")
    wider = make_config("protocol=budget", "protocol.valid_fraction=0.3")
    key = lambda settings, cfg: settings_key(settings(cfg))  # noqa: E731
    assert "protocol" not in run_settings(oracle)  # oracle keeps the keys of earlier runs
    assert key(pretrain_settings, budget) != key(pretrain_settings, oracle)  # holds images out
    assert key(pretrain_settings, budget) == key(pretrain_settings, wider)  # same autoencoder
    assert key(run_settings, budget) != key(run_settings, wider)


# --- the registry: one module + one yaml a protocol ----------------------------------------


def test_every_protocol_yaml_has_its_registered_module_and_back():
    from tiedae.config import CONFIG_DIR
    from tiedae.protocols import PROTOCOLS

    yamls = {path.stem for path in (CONFIG_DIR / "protocol").glob("*.yaml")}
    assert set(PROTOCOLS) == yamls == {"oracle", "budget", "fixed"}


@pytest.mark.parametrize("name", ["oracle", "budget", "fixed"])
def test_each_shipped_protocol_yaml_is_valid_and_builds_its_typed_settings(name):
    from tiedae.protocols import PROTOCOLS, check, protocol_of

    section = make_config(f"protocol={name}").protocol
    assert check(section) == []
    protocol = protocol_of(section)
    assert type(protocol) is PROTOCOLS[name]
    for key, value in section.items():
        if key != "name":
            assert getattr(protocol, key) == value  # every yaml value is a typed field


@pytest.mark.parametrize(
    ("section", "problems"),
    [
        ({"name": "budget", "valid_fraction": 1.5, "fixed_epochs": 3, "pretrain_holdout": 0.05},
         ["protocol.valid_fraction=1.5 must be a number in (0, 1)"]),
        ({"name": "fixed", "fixed_epochs": 0, "pretrain_holdout": 0},
         ["protocol.pretrain_holdout=0 must be a number in (0, 1)",
          "protocol.fixed_epochs=0 must be a positive integer"]),
        ({"name": "holdout"}, ["protocol='holdout' is unknown; allowed: budget, fixed, oracle"]),
    ],
)  # fmt: skip
def test_a_protocols_bad_values_are_each_one_line(section, problems):
    from tiedae.protocols import check

    assert check(OmegaConf.create(section)) == problems


def test_a_name_registers_once():
    from tiedae.protocols import PROTOCOLS

    with pytest.raises(ValueError, match="registered twice"):
        PROTOCOLS.register("budget")(object)
