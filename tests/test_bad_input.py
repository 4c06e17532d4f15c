"""Bad input and bad disks: a one-line error that says what to fix, raised before training.

test_data.py and test_config.py check each rule where it lives; here the rules are reached the
way a user reaches them: through ``run_experiment``, with training replaced by a tripwire (an
error raised after training had started fails the test), and through the real command line.
"""

from __future__ import annotations

import errno
import gzip
import shutil

import numpy as np
import pytest
from clirun import find_runs, free_port, store_overrides, store_tracker
from conftest import make_config, run_cli
from test_data import write_fashion_dir, write_idx

from tiedae import pipeline
from tiedae.config import ConfigError
from tiedae.data import FASHION_MNIST_FILES, DataError
from tiedae.tracking import PRETRAIN_KEY, ROLE, Tracker, TrackingError, TrackingSettings

CACHE_ENTRY = "model.keras"  # the Keras file in a logged model (the pretrained one is first)


@pytest.fixture
def no_training(monkeypatch):
    """``run_experiment``, where any training attempt fails the test."""

    def tripwire(*args, **kwargs):
        raise AssertionError("training started before the bad input was reported")

    monkeypatch.setattr(pipeline, "_train_and_log", tripwire)
    return pipeline.run_experiment


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("a file missing", "lacks t10k-labels-idx1-ubyte.gz"),
        ("data cut short", "truncated or corrupted"),
        ("gzip stream cut short", "not a readable gzip file"),
        ("not gzip at all", "not a readable gzip file"),
        ("a label missing", "holds 12 images but train-labels-idx1-ubyte.gz holds 11 labels"),
    ],
)
def test_damaged_dataset_stops_the_run_early(tmp_path, store, no_training, damage, expected):
    folder = tmp_path / "data"
    folder.mkdir()
    write_fashion_dir(folder, n_labels=11 if damage == "a label missing" else None)
    images = folder / FASHION_MNIST_FILES["train_images"]
    if damage == "a file missing":
        (folder / FASHION_MNIST_FILES["test_labels"]).unlink()
    elif damage == "data cut short":
        write_idx(images, np.zeros((12, 28, 28)), cut=100)
    elif damage == "gzip stream cut short":
        images.write_bytes(images.read_bytes()[:200])
    elif damage == "not gzip at all":
        images.write_bytes(b"<html>404 Not Found</html>")
    cfg = make_config("data=fashion_mnist", f"data.dir={folder}", "data.valid_size=2", *store)
    with pytest.raises(DataError) as error:
        no_training(cfg)
    assert expected in one_line(error)


def write_npz(path, damage: str) -> None:
    """An .npz of 10 classes of 8x8 float images, damaged as a user might by mistake."""
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.random((200, 8, 8)).astype(np.float32), "y_train": np.arange(200) % 10,
        "x_test": rng.random((50, 8, 8)).astype(np.float32), "y_test": np.arange(50) % 10,
    }  # fmt: skip
    if damage == "NaN in x_train":
        arrays["x_train"][[3, 3, 17], [0, 1, 2], [4, 4, 4]] = np.nan
    elif damage == "inf in x_test":
        arrays["x_test"][5, 0, 0] = np.inf
    elif damage == "a gap in y_train":  # class 3 renamed 10 in training only
        arrays["y_train"] = np.where(arrays["y_train"] == 3, 10, arrays["y_train"])
    elif damage == "not a zip archive":
        path.write_text("x,y\n0.5,3\n")
        return
    np.savez(path, **arrays)


# what each damage must be called; the values shown for NaN lie in [0, 1], so a message about
# the range would mislead
NPZ_DAMAGES = {
    "NaN in x_train": "x_train has 3 non-finite pixels (3 NaN, 0 infinite) in 2 of its 200 images",
    "inf in x_test": "x_test has 1 non-finite pixel (0 NaN, 1 infinite) in 1 of its 50 images",
    "a gap in y_train": "y_train has no label of class 3 (its ids run 0..10): class ids must run "
    "0..k-1 without gaps; y_test has labels of class 3, which y_train never has; y_test has no "
    "label of class 10, which y_train has",
    "not a zip archive": "not an .npz archive (a zip of .npy arrays): it starts with b'x,y\\n'",
}


@pytest.mark.parametrize("damage", NPZ_DAMAGES)
def test_bad_npz_is_named_and_nothing_runs(tmp_path, store, no_training, damage):
    path = tmp_path / "mine.npz"
    write_npz(path, damage)
    with pytest.raises(DataError) as error:
        no_training(make_config("data=npz", f"data.path={path}", *store))
    message = one_line(error)
    assert message.startswith(f"data.path={path}: {NPZ_DAMAGES[damage]}"), message
    assert "pickle" not in message and "must lie in [0, 1]" not in message
    assert not find_runs(store_tracker(tmp_path))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["protocol=budget", "labels.count=5"],
         "labels.count=5 leaves 10 of the 10 classes with fewer than 2 labeled images (0, 1, 2, "
         "3, 4, 5, ...; 5 with none) in digits: protocol=budget needs 2 per class"),
        (["labels.count=5"],
         "labels.count=5 leaves 5 of the 10 classes without a labeled image (0, 2, 4, 6, 9) in "
         "digits: a classifier cannot learn a class it never sees"),
        (["protocol=fixed", "labels.fraction=0.004", "labels.count=null"],
         "labels.fraction=0.004 leaves 5 of the 10 classes without a labeled image"),
        (["protocol=budget", "labels.count=15"],
         "labels.count=15 leaves 5 of the 10 classes with fewer than 2 labeled images"),
    ],
)  # fmt: skip
def test_too_few_labels_per_class_are_refused(tmp_path, store, no_training, overrides, expected):
    with pytest.raises(ConfigError) as error:
        no_training(make_config("data=digits", *overrides, *store))
    message = one_line(error)
    assert message.startswith(expected), message
    assert message.endswith(
        "or set labels.allow_few_per_class=true to run anyway (the run is tagged)"
    )
    assert not find_runs(store_tracker(tmp_path))


def test_too_few_labels_run_only_when_allowed_and_the_run_says_so(tmp_path, store, no_training):
    cfg = make_config("data=digits", "protocol=budget", "labels.count=5",
                      "labels.allow_few_per_class=true", *store)  # fmt: skip
    with pytest.raises(AssertionError, match="training started"):
        no_training(cfg)  # past every check: this run would train
    [job] = find_runs(store_tracker(tmp_path))
    assert job.data.tags["labels.allow_few_per_class"] == "True"
    assert job.data.tags["labels.min_per_class"] == "0"
    with pytest.raises(ConfigError, match="labels.allow_few_per_class='yes' must be true or false"):
        no_training(make_config("data=digits", "labels.allow_few_per_class=yes", *store))


@pytest.mark.parametrize("sizes", ["[100,2.5]", "100", "[100,[30]]", "[100,-30]"])
def test_model_shape_a_tied_decoder_cannot_mirror(store, no_training, sizes):
    with pytest.raises(ConfigError) as error:
        no_training(make_config("data=digits", f"model.sizes={sizes}", *store))
    assert one_line(error).startswith("model.sizes=")


@pytest.mark.parametrize("seconds", ["-1", "soon", "true"])
def test_a_bad_epoch_flush_interval_stops_before_training(store, no_training, seconds):
    with pytest.raises(ConfigError) as error:
        no_training(make_config("data=digits", f"tracking.epoch_flush_seconds={seconds}", *store))
    assert one_line(error).startswith("tracking.epoch_flush_seconds=")


@pytest.mark.parametrize("value", ["best", "all", "jobs"])
def test_a_bad_job_models_setting_stops_before_training(store, no_training, value):
    with pytest.raises(ConfigError) as error:
        no_training(make_config("data=digits", f"tracking.job_models={value}", *store))
    assert one_line(error) == f"tracking.job_models='{value}' is unknown; allowed: every, none"


def test_tracking_store_in_a_missing_folder(tmp_path, no_training):
    cfg = make_config("data=digits", f"tracking.uri=sqlite:///{tmp_path}/no/such/mlflow.db")
    with pytest.raises(TrackingError) as error:
        no_training(cfg)
    assert "does not exist" in one_line(error)


def test_artifact_dir_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = TrackingSettings(f"sqlite:///{tmp_path}/mlflow.db", artifact_dir=str(blocker / "x"))
    with pytest.raises(TrackingError) as error:
        Tracker(settings).connect()
    assert "tracking.artifact_dir=" in one_line(error)


def test_artifact_dir_differs_from_the_experiments(tmp_path):
    """An existing experiment keeps its folder; a new artifact_dir must not be silently ignored."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    Tracker(TrackingSettings(uri, artifact_dir=str(tmp_path / "first"))).connect()
    with pytest.raises(TrackingError) as error:
        Tracker(TrackingSettings(uri, artifact_dir=str(tmp_path / "second"))).connect()
    assert "keeps its artifacts in" in one_line(error)


def test_artifacts_go_where_the_config_says(tmp_path, store):
    overrides = ["data=digits", "method=tied_frozen", "labels.count=50", "pretrain.epochs=1",
                 "classifier.epochs=1", "runtime.verbose=0"]  # fmt: skip
    pipeline.run_experiment(make_config(*overrides, *store))
    stored = {path.name for path in (tmp_path / "artifacts").rglob("*") if path.is_file()}
    assert {"config.yaml", "MLmodel", CACHE_ENTRY} <= stored, stored
    runs = find_runs(store_tracker(tmp_path))
    assert len(runs) == 2  # the job and its pretraining
    assert all(run.info.artifact_uri.startswith((tmp_path / "artifacts").as_uri()) for run in runs)


def test_disk_full_while_storing_the_cache_entry(tmp_path, store, monkeypatch):
    """The disk fills up halfway through writing the pretrained model: an error, both runs
    FAILED, and no cache entry, whole or partial, that a later run could load."""
    copy = shutil.copy2

    def disk_fills_up(source, target, **kwargs):
        if not str(source).endswith(CACHE_ENTRY):
            return copy(source, target, **kwargs)
        with open(source, "rb") as whole, open(target, "wb") as part:
            part.write(whole.read(1000))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copy2", disk_fills_up)
    cfg = make_config("data=digits", "method=tied_frozen", "pretrain.epochs=1",
                      "runtime.verbose=0", *store)  # fmt: skip
    with pytest.raises(TrackingError) as error:
        pipeline.run_experiment(cfg)
    assert "could not store model pretrained" in one_line(error)
    assert "No space left on device" in str(error.value)
    tracker = store_tracker(tmp_path)
    runs = find_runs(tracker)
    assert {run.data.tags[ROLE]: run.info.status for run in runs} == {
        "job": "FAILED", "pretrain": "FAILED",
    }  # fmt: skip
    assert list((tmp_path / "artifacts").rglob(CACHE_ENTRY))  # the half-written file is there,
    models = tracker.client.search_logged_models([tracker.experiment_id])
    assert [model.status for model in models] == ["FAILED"]  # in a model marked FAILED
    key = runs[0].data.tags[PRETRAIN_KEY]
    assert tracker.find_pretrained(key, "pretrained", "models/pretrained.keras", tmp_path) is None


@pytest.mark.slow
def test_command_line_prints_one_line_and_no_traceback(tmp_path):
    """Through the real CLI: bad overrides (Hydra's own error) and bad values (ours)."""
    closed = f"http://127.0.0.1:{free_port()}"
    data = tmp_path / "data"
    data.mkdir()
    write_fashion_dir(data)
    (data / FASHION_MNIST_FILES["test_images"]).write_bytes(gzip.compress(b"\x00\x00\x08"))
    cases = {
        "unknown key": (  # Hydra's own multi-line report, caught before Hydra prints it
            ["labels.cout=5"], 2,
            "tiedae: error: Could not override 'labels.cout': Key 'cout' is not a setting there",
        ),
        "wrong type": (["seed=abc"], 2, "tiedae: error: seed='abc' must be an integer >= 0"),
        "typo'd method": (  # an optional group's missing option would run the defaults
            ["method=ladder_tide"], 2,
            "tiedae: error: method=ladder_tide is not an option of method (options: conv_scratch",
        ),
        "sweep, server down": (
            ["experiment=sweep_smoke", "tracking=server", f"tracking.uri={closed}"], 2,
            f"tiedae: error: tracking server {closed} is unreachable",
        ),
        "damaged file": (
            ["data=fashion_mnist", f"data.dir={data}"], 2,
            f"tiedae: error: {data / FASHION_MNIST_FILES['test_images']}: only 3 bytes",
        ),
    }  # fmt: skip
    for case, (overrides, status, first_line) in cases.items():
        result = run_cli("data=digits", *store_overrides(tmp_path), *overrides, check=False)
        errors = [line for line in result.stderr.splitlines() if line.startswith(first_line[:6])]
        assert result.returncode == status, (case, result.stderr)
        assert len(errors) == 1 and errors[0].startswith(first_line), (case, result.stderr)
        assert "Traceback" not in result.stderr, (case, result.stderr)
        if case == "unknown key":
            assert result.stderr.strip().count("\n") == 0, result.stderr
    assert not find_runs(store_tracker(tmp_path))  # nothing ran


@pytest.mark.slow
def test_command_line_names_bad_data_and_too_few_labels(tmp_path):
    """Through the real CLI: NaN pixels and a budget with too few labels per class end in one
    line and exit status 2, with no run in the store."""
    nan = tmp_path / "nan.npz"
    write_npz(nan, "NaN in x_train")
    cases = {
        "NaN pixels": (["data=npz", f"data.path={nan}"],
                       f"tiedae: error: data.path={nan}: {NPZ_DAMAGES['NaN in x_train']}"),
        "too few labels": (["data=digits", "protocol=budget", "labels.count=5"],
                           "tiedae: error: labels.count=5 leaves 10 of the 10 classes with fewer "
                           "than 2 labeled images"),
    }  # fmt: skip
    for case, (overrides, first_line) in cases.items():
        result = run_cli(*store_overrides(tmp_path), *overrides, check=False)
        errors = [line for line in result.stderr.splitlines() if line.startswith("tiedae: ")]
        assert result.returncode == 2, (case, result.stderr)
        assert len(errors) == 1 and errors[0].startswith(first_line), (case, result.stderr)
        assert "Traceback" not in result.stderr, (case, result.stderr)
        if case == "unknown key":
            assert result.stderr.strip().count("\n") == 0, result.stderr
    assert not find_runs(store_tracker(tmp_path))  # nothing ran, nothing RUNNING
