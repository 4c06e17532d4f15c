"""Bad input and bad disks: each a one-line error that says what to fix, raised before training.

In-process tests call ``run_experiment`` with training replaced by a tripwire, so an error that
came after training had started would fail them. One test runs the real command line to check
that the user sees one line and no traceback.
"""

from __future__ import annotations

import errno
import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from clirun import (
    compose_config,
    find_runs,
    free_port,
    run_cli,
    store_overrides,
    store_tracker,
    tracking_overrides,
)

from tiedae.config import ConfigError
from tiedae.data import FASHION_MNIST_FILES, DataError
from tiedae.tracking import ROLE, Tracker, TrackingError, TrackingSettings


@pytest.fixture
def no_training(monkeypatch):
    """Make any training attempt fail the test: errors must come before it."""
    from tiedae import pipeline

    def tripwire(*args, **kwargs):
        raise AssertionError("training started before the bad input was reported")

    monkeypatch.setattr(pipeline, "_train_and_log", tripwire)
    return pipeline.run_experiment


def write_idx(path: Path, array: np.ndarray, extra: bytes = b"", cut: int = 0) -> None:
    """An IDX file of unsigned bytes, gzipped; ``cut`` drops bytes from the end of its data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(header + data[: len(data) - cut] + extra))


def fake_fashion(folder: Path, n_train: int = 30, n_test: int = 10) -> Path:
    """A tiny, valid Fashion-MNIST folder: the same four files, random pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)),
        "train_labels": np.arange(n_train) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28)),
        "test_labels": np.arange(n_test) % 10,
    }
    for key, array in arrays.items():
        write_idx(folder / FASHION_MNIST_FILES[key], array)
    return folder


def fashion_config(folder: Path, root: Path, *more: str):
    return compose_config(
        ["data=fashion_mnist", f"data.dir={folder}", "data.valid_size=5", "labels.count=10",
         *store_overrides(root)[:2], *more]
    )  # fmt: skip


def one_line(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message, message
    return message


def test_fake_dataset_loads(tmp_path):
    """The baseline the corruptions below start from: the fake folder itself is fine."""
    from tiedae.data import load_dataset

    splits = load_dataset(fashion_config(fake_fashion(tmp_path / "data"), tmp_path).data)
    assert (len(splits.x_train), len(splits.x_valid), len(splits.x_test)) == (25, 5, 10)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("missing", "lacks t10k-labels-idx1-ubyte.gz"),
        ("truncated data", "truncated or corrupted"),
        ("truncated gzip", "not a readable gzip file"),
        ("not gzip", "not a readable gzip file"),
        ("wrong magic", "wrong magic number"),
        ("fewer labels", "holds 30 images but train-labels-idx1-ubyte.gz holds 29 labels"),
    ],
)
def test_damaged_dataset_fails_before_training(tmp_path, no_training, damage, expected):
    folder = fake_fashion(tmp_path / "data")
    labels = folder / FASHION_MNIST_FILES["test_labels"]
    images = folder / FASHION_MNIST_FILES["train_images"]
    if damage == "missing":
        labels.unlink()
    elif damage == "truncated data":
        write_idx(images, np.zeros((30, 28, 28)), cut=100)
    elif damage == "truncated gzip":
        images.write_bytes(images.read_bytes()[:200])
    elif damage == "not gzip":
        images.write_bytes(b"<html>404 Not Found</html>")
    elif damage == "wrong magic":
        images.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + bytes(64)))
    else:
        write_idx(folder / FASHION_MNIST_FILES["train_labels"], np.arange(29) % 10)
    with pytest.raises(DataError) as error:
        no_training(fashion_config(folder, tmp_path))
    assert expected in one_line(error.value)


def test_more_labels_than_training_images(tmp_path, no_training):
    cfg = compose_config(["data=digits", "labels.count=5000", *tracking_overrides(tmp_path)])
    with pytest.raises(ConfigError) as error:
        no_training(cfg)
    assert "labels.count=5000 is larger than the 1237 training images" in one_line(error.value)


@pytest.mark.parametrize("sizes", ["[]", "[100,0]", "[100,2.5]", "100", "[100,[30]]"])
def test_model_shape_a_tied_decoder_cannot_mirror(tmp_path, no_training, sizes):
    cfg = compose_config(["data=digits", f"model.sizes={sizes}", *tracking_overrides(tmp_path)])
    with pytest.raises(ConfigError) as error:
        no_training(cfg)
    assert "model.sizes=" in one_line(error.value)


def test_unreachable_tracking_server_fails_fast(tmp_path, no_training):
    port = free_port()  # nothing listens there
    cfg = compose_config(
        ["data=digits", "tracking=server", f"tracking.uri=http://127.0.0.1:{port}"]
    )
    start = time.monotonic()
    with pytest.raises(TrackingError) as error:
        no_training(cfg)
    assert time.monotonic() - start < 10
    assert f"tracking server http://127.0.0.1:{port} is unreachable" in one_line(error.value)


def test_tracking_store_in_a_missing_folder(tmp_path, no_training):
    cfg = compose_config(["data=digits", f"tracking.uri=sqlite:///{tmp_path}/no/such/mlflow.db"])
    with pytest.raises(TrackingError) as error:
        no_training(cfg)
    assert "does not exist" in one_line(error.value)


def test_artifact_dir_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = TrackingSettings(f"sqlite:///{tmp_path}/mlflow.db", artifact_dir=str(blocker / "x"))
    with pytest.raises(TrackingError) as error:
        Tracker(settings).connect()
    assert "tracking.artifact_dir=" in one_line(error.value)


def test_artifact_dir_differs_from_the_experiments(tmp_path):
    """An existing experiment keeps its folder; a new artifact_dir must not be silently ignored."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    Tracker(TrackingSettings(uri, artifact_dir=str(tmp_path / "first"))).connect()
    with pytest.raises(TrackingError) as error:
        Tracker(TrackingSettings(uri, artifact_dir=str(tmp_path / "second"))).connect()
    assert "keeps its artifacts in" in one_line(error.value)


def test_artifacts_go_where_the_config_says(tmp_path):
    from tiedae.pipeline import run_experiment
    from tiedae.pretrain import PRETRAINED_ARTIFACT

    overrides = ["data=digits", "method=tied_frozen", "labels.count=50", "pretrain.epochs=1",
                 "classifier.epochs=1", "runtime.verbose=0"]  # fmt: skip
    results = run_experiment(compose_config([*overrides, *tracking_overrides(tmp_path)]))
    assert 0 <= results["test/accuracy"] <= 1
    stored = {path.name for path in (tmp_path / "artifacts").rglob("*") if path.is_file()}
    cache_entry = Path(PRETRAINED_ARTIFACT).name
    assert {"config.yaml", "classifier.keras", cache_entry} <= stored, stored
    runs = find_runs(store_tracker(tmp_path))
    assert len(runs) == 2  # the job and its pretraining
    assert all(run.info.artifact_uri.startswith((tmp_path / "artifacts").as_uri()) for run in runs)


def test_disk_full_while_storing_the_cache_entry(tmp_path, monkeypatch):
    """The disk fills up halfway through writing the pretrained model: an error, both runs
    FAILED, and no cache entry, whole or partial, that a later run could load."""
    import shutil

    from tiedae.pipeline import run_experiment
    from tiedae.pretrain import PRETRAINED_ARTIFACT

    cache_entry = Path(PRETRAINED_ARTIFACT).name
    copy = shutil.copyfileobj

    def disk_fills_up(source, target, length=0):
        if not getattr(source, "name", "").endswith(cache_entry):
            return copy(source, target, length)
        target.write(source.read(1000))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", disk_fills_up)
    cfg = compose_config(["data=digits", "method=tied_frozen", "pretrain.epochs=1",
                          "runtime.verbose=0", *tracking_overrides(tmp_path)])  # fmt: skip
    with pytest.raises(TrackingError) as error:
        run_experiment(cfg)
    assert f"could not store artifact {cache_entry}" in one_line(error.value)
    assert "No space left on device" in str(error.value)
    tracker = store_tracker(tmp_path)
    assert {run.data.tags[ROLE]: run.info.status for run in find_runs(tracker)} == {
        "job": "FAILED", "pretrain": "FAILED",
    }  # fmt: skip
    assert not list((tmp_path / "artifacts").rglob(f"*{cache_entry}*"))


def test_command_line_prints_one_line_and_no_traceback(tmp_path):
    """Through the real CLI: bad overrides (Hydra's own error) and bad values (ours)."""
    store = store_overrides(tmp_path)
    closed = f"http://127.0.0.1:{free_port()}"
    cases = {
        "unknown key": (["labels.cout=5"], 1, "Could not override 'labels.cout'."),
        "wrong type": (["seed=abc"], 2, "tiedae: error: seed='abc' must be a non-negative integer"),
        "bad sizes": (["model.sizes=[]"], 2, "tiedae: error: model.sizes=[] must be a non-empty"),
        "sweep, server down": (
            ["experiment=sweep_smoke", "tracking=server", f"tracking.uri={closed}"], 2,
            f"tiedae: error: tracking server {closed} is unreachable",
        ),
    }  # fmt: skip
    for case, (overrides, status, first_line) in cases.items():
        result = run_cli(["data=digits", *store, *overrides], timeout=120)
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == status, (case, result.stderr)
        assert errors[0].startswith(first_line), (case, result.stderr)
        assert "Traceback" not in result.stderr, (case, result.stderr)
    assert not find_runs(store_tracker(tmp_path))  # nothing ran
