"""MLflow as its users know it: logged Keras models that reload in a fresh process, dataset
inputs that can be searched, and old runs' ``.keras`` artifacts that still load."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import make_config

from tiedae import config as C
from tiedae.models import Autoencoder
from tiedae.pipeline import run_experiment
from tiedae.pretrain import PRETRAINED_ARTIFACT
from tiedae.tracking import PRETRAIN_KEY, ROLE, Tracker, TrackingSettings, load_keras_model
from tiedae.transfer import load_source

TINY = ["data=digits", "labels.count=50", "seed=1", "runtime.verbose=0", "classifier.epochs=1"]


def store_cfg(root: Path, *overrides: str):
    return make_config(
        *TINY, f"tracking.uri=sqlite:///{root}/mlflow.db",
        f"tracking.artifact_dir={root}/artifacts", *overrides,
    )  # fmt: skip


def connect(root: Path) -> Tracker:
    return Tracker(TrackingSettings.from_config(store_cfg(root).tracking)).connect()


def jobs(tracker: Tracker, where: str = "") -> list:
    role = f"tags.`{ROLE}` = 'job'"
    return tracker.client.search_runs(
        [tracker.experiment_id], f"{role} and {where}" if where else role
    )


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A store with a scratch job's classifier and a tied autoencoder, both logged models."""
    root = tmp_path_factory.mktemp("logged")
    run_experiment(store_cfg(root, "method=scratch"))
    tracker = connect(root)
    (job,) = jobs(tracker)
    autoencoder = Autoencoder((8, 8), [16, 4], tied=True)
    with tracker.run("an autoencoder", {ROLE: "pretrain"}) as run:
        run.log_model(autoencoder, "pretrained", np.zeros((2, 8, 8), np.float32))
    return root, tracker, job, run.run_id, autoencoder


FRESH_PROCESS = """
import json, sys
import numpy as np
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
x = np.load(sys.argv[2])
out = {}
for name, uri in json.loads(sys.argv[3]).items():
    out[name + " pyfunc"] = np.asarray(mlflow.pyfunc.load_model(uri).predict(x)).tolist()
    out[name + " tiedae imported by pyfunc"] = "tiedae.models" in sys.modules
    if name == "autoencoder":
        import tiedae.models  # registers tiedae's layers for plain Keras loading
    out[name + " keras"] = np.asarray(mlflow.keras.load_model(uri)(x)).tolist()
print(json.dumps(out))
"""


def test_logged_models_reload_in_a_fresh_process_and_predict_the_same(logged, tmp_path):
    root, tracker, job, pretrain_run, autoencoder = logged
    classifier_id = tracker.logged_model_id(job.info.run_id, "classifier")
    autoencoder_id = tracker.logged_model_id(pretrain_run, "pretrained")
    assert classifier_id and autoencoder_id
    # the job's classifier, as the run left it (the cache loader reads the same folder)
    folder = tracker.download_model(f"runs:/{job.info.run_id}/classifier", tmp_path / "clf")
    classifier = load_keras_model(folder)
    x = np.random.default_rng(0).random((5, 8, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    uris = {"classifier": f"models:/{classifier_id}", "autoencoder": f"models:/{autoencoder_id}"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FRESH_PROCESS), tracker.settings.uri,
         str(tmp_path / "x.npy"), json.dumps(uris)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["classifier tiedae imported by pyfunc"] is False  # plain Keras: loads anywhere
    assert out["autoencoder tiedae imported by pyfunc"] is True  # tiedae's pyfunc loader
    expected = {"classifier": classifier(x), "autoencoder": autoencoder(x)}
    for name, before in expected.items():
        for way in ("pyfunc", "keras"):
            np.testing.assert_allclose(out[f"{name} {way}"], np.asarray(before), atol=1e-6)
    probabilities = np.asarray(out["classifier keras"])
    assert probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_registered_versions_and_aliases_name_the_logged_model(logged, tmp_path):
    root, tracker, job, _, _ = logged
    version = tracker.register_model("clf", f"runs:/{job.info.run_id}/classifier", alias="best")
    (registered,) = tracker.client.search_model_versions("name = 'clf'")
    assert str(registered.version) == version and registered.run_id == job.info.run_id
    model_id = tracker.logged_model_id(job.info.run_id, "classifier")
    assert registered.source == f"models:/{model_id}"
    by_alias = load_source(tracker.download_model("models:/clf@best", tmp_path / "a"), "alias")
    by_version = load_source(
        tracker.download_model(f"models:/clf/{version}", tmp_path / "v"), "version"
    )
    for one, other in zip(by_alias.weights, by_version.weights, strict=True):
        np.testing.assert_array_equal(one.numpy(), other.numpy())


def test_a_runs_datasets_are_searchable(logged):
    root, tracker, job, _, _ = logged
    found = jobs(tracker, "dataset.name = 'digits-labeled-50' and dataset.context = 'labeled'")
    assert [run.info.run_id for run in found] == [job.info.run_id]
    assert jobs(tracker, "dataset.name = 'digits-labeled-100'") == []
    inputs = {i.tags[0].value: i.dataset for i in job.inputs.dataset_inputs}
    assert set(inputs) == {"training", "labeled", "validation", "test"}
    labeled = json.loads(inputs["labeled"].profile)
    assert labeled["labeled"] == labeled["num_rows"] == 50
    assert json.loads(inputs["training"].profile)["num_rows"] == 1797 - 200 - 360
    assert "digits.csv.gz" in json.loads(inputs["test"].source)["uri"]
    assert len({d.digest for d in inputs.values()}) == 4  # different arrays, different digests


def test_an_old_runs_keras_artifact_is_still_a_cache_entry(tmp_path):
    """Runs logged before models were MLflow models stored ``models/pretrained.keras``."""
    cfg = store_cfg(tmp_path, "method=tied_frozen", "model.sizes=[16,4]")
    tracker = connect(tmp_path)
    old = Autoencoder((8, 8), [16, 4], tied=True)
    key = C.settings_key(C.pretrain_settings(cfg))
    with tracker.run("an old pretraining run", {ROLE: "pretrain", PRETRAIN_KEY: key}) as run:
        path = tmp_path / Path(PRETRAINED_ARTIFACT).name
        old.save(path)
        run.log_artifact(path, str(Path(PRETRAINED_ARTIFACT).parent))
    assert tracker.logged_model_id(run.run_id, "pretrained") is None
    run_experiment(cfg)
    (job,) = jobs(tracker)
    assert job.data.tags["pretrain.cache"] == "hit"
    assert job.data.tags["pretrain.run_id"] == run.run_id
    # and as a transfer source, by its artifact path
    local = tracker.download_model(f"runs:/{run.run_id}/{PRETRAINED_ARTIFACT}", tmp_path / "d")
    reloaded = load_source(local, "old")
    assert isinstance(reloaded, keras.Model)
    np.testing.assert_array_equal(reloaded.encoder.layers[1].kernel, old.encoder.layers[1].kernel)


def test_a_dataset_two_workers_insert_at_once_is_linked_on_retry(tmp_path, monkeypatch):
    """Two sweep workers logging the same new dataset race on the store's unique key (seen in
    a joblib sweep: ``UNIQUE constraint failed: datasets...``); the loser retries and links it.
    Any other error is raised at once."""
    from mlflow.exceptions import MlflowException

    from tiedae.data import load_digits_splits
    from tiedae.pipeline import dataset_inputs

    tracker = connect(tmp_path)
    specs = dataset_inputs(store_cfg(tmp_path).data, load_digits_splits(), np.arange(50))
    real, calls = tracker.client.log_inputs, []

    def lose_the_race_once(run_id, datasets):
        calls.append(run_id)
        if len(calls) == 1:
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets")
        return real(run_id, datasets=datasets)

    monkeypatch.setattr(tracker.client, "log_inputs", lose_the_race_once)
    with tracker.run("a job", {ROLE: "job"}) as run:
        run.log_datasets(specs)
    assert len(calls) == 2
    logged = tracker.client.get_run(run.run_id).inputs.dataset_inputs
    assert sorted(i.dataset.name for i in logged) == sorted(spec.name for spec in specs)

    def broken(run_id, datasets):
        calls.append(run_id)
        raise MlflowException("the store is read-only")

    monkeypatch.setattr(tracker.client, "log_inputs", broken)
    with pytest.raises(MlflowException, match="read-only"), tracker.run("b", {ROLE: "job"}) as run:
        run.log_datasets(specs)
    assert len(calls) == 3
