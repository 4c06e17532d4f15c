"""The scikit-learn estimator registry: each ``classifier.name`` of ``classifier.kind=sklearn``
is one module of ``tiedae/estimators/`` that validation, the baselines' fit and the pipeline
all read; nothing else lists the estimators."""

import subprocess
import sys
from typing import Any

import pytest
from conftest import make_config
from omegaconf import DictConfig

from tiedae import pipeline
from tiedae.baselines import check_baseline_fits, run_baseline
from tiedae.config import CONFIG_DIR, SKLEARN_ESTIMATORS, ConfigError, method_name, validate
from tiedae.data import load_digits_splits, stratified_subset
from tiedae.estimators import ESTIMATORS, Estimator


def test_every_sklearn_classifier_yaml_names_a_registered_estimator_and_back():
    names = set()
    for path in (CONFIG_DIR / "classifier").glob("*.yaml"):
        cfg = make_config(f"classifier={path.stem}")
        if cfg.classifier.get("kind") == "sklearn":
            names.add(cfg.classifier.name)
    assert set(ESTIMATORS) == names == {"logreg", "label_spreading"}
    assert ESTIMATORS.names() == SKLEARN_ESTIMATORS


def test_the_registry_imports_without_scikit_learn_or_tensorflow():
    probe = (
        "import sys, tiedae.estimators; "
        "print(sorted(m for m in ('sklearn', 'tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_unknown_estimator_lists_the_registered_ones_in_one_line():
    with pytest.raises(ConfigError) as error:
        validate(make_config("classifier=logreg", "pretrain=none", "classifier.name=svm"))
    assert "classifier.name='svm' is unknown; allowed: label_spreading, logreg" in str(error.value)
    assert "\n" not in str(error.value)


def test_the_estimator_refuses_what_the_data_cannot_give_before_training():
    cfg = make_config("classifier=label_spreading", "pretrain=none", "classifier.n_neighbors=5000")
    validate(cfg)  # a positive integer: only the data says it is too many
    with pytest.raises(ConfigError, match=r"n_neighbors=5000 is larger than the \d+ training"):
        check_baseline_fits(cfg.classifier, load_digits_splits())


class NaiveBayes(Estimator):
    """An estimator defined only here: Gaussian naive Bayes, its variance smoothing chosen
    on validation like the others' regularisation."""

    regularization = "var_smoothing"
    made: list[float] = []  # the candidate values it was built with

    @classmethod
    def check(cls, problems: list[str], classifier: DictConfig) -> None:
        super().check(problems, classifier)
        if classifier.get("features") == "codes":
            problems.append("classifier.features=codes: naive_bayes is for pixels and pca only")

    @classmethod
    def make(cls, classifier: DictConfig, value: float, seed: int) -> Any:
        from sklearn.naive_bayes import GaussianNB

        cls.made.append(value)
        return GaussianNB(var_smoothing=value)

    @classmethod
    def n_parameters(cls, estimator: Any) -> int:
        return int(estimator.theta_.size + estimator.var_.size)


NAIVE_BAYES = [
    "classifier=pca_logreg",
    "pretrain=none",
    "classifier.name=naive_bayes",
    "classifier.components=16",
    "~classifier.C",
    "+classifier.var_smoothing=[1e-9,0.1,10.0]",
]


def test_a_new_estimator_is_its_class_alone(monkeypatch, store):
    """Registered (as its module's decorator would), it is validated with its own checks,
    named, chosen on validation and run by the pipeline, with no other file edited."""
    monkeypatch.setitem(ESTIMATORS._entries, "naive_bayes", NaiveBayes)
    monkeypatch.setattr(NaiveBayes, "made", [])
    with pytest.raises(ConfigError, match=r"classifier.var_smoothing=\[-1\] must be a number > 0"):
        validate(make_config(*NAIVE_BAYES, "classifier.var_smoothing=[-1]"))
    with pytest.raises(ConfigError, match="naive_bayes is for pixels and pca only"):
        validate(make_config(*NAIVE_BAYES, "classifier.features=codes", "pretrain=greedy"))

    cfg = make_config(*NAIVE_BAYES, *store, "data=digits", "labels.count=100", "runtime.verbose=0")
    validate(cfg)
    assert method_name(cfg) == "naive_bayes-pca16"
    result = pipeline.run_experiment(cfg)
    assert NaiveBayes.made == [1e-9, 0.1, 10.0]  # each candidate fitted once, on validation
    assert result["clf/chosen_regularization"] in NaiveBayes.made
    assert result["test/accuracy"] > 0.75  # chance is 0.1; 80 of 100 labels train (budget)
    # PCA's 16 components and mean, plus per class a mean and a variance per component
    assert result["params/classifier"] == 16 * 64 + 64 + 2 * 10 * 16


def test_label_spreading_sees_every_image_logreg_the_labeled_only():
    splits = load_digits_splits()
    labeled = stratified_subset(splits.y_train, 50, 1)
    spread = make_config("classifier=label_spreading", "pretrain=none", "classifier.components=16")
    logreg = make_config("classifier=pca_logreg", "pretrain=none", "classifier.components=16")
    spreading = run_baseline(splits, labeled, spread.classifier, seed=1).estimator
    regression = run_baseline(splits, labeled, logreg.classifier, seed=1).estimator
    assert len(spreading.transduction_) == len(splits.x_train)
    assert regression.n_features_in_ == 16
    assert ESTIMATORS["label_spreading"].transductive and not ESTIMATORS["logreg"].transductive
