"""Keys with provenance: the pretraining-cache and skip keys change with every setting the
model depends on, with the data read and with the code; runs say which key matched."""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

import pytest
from conftest import QUICK, make_config
from mlflow.tracking import MlflowClient

from tiedae import pipeline
from tiedae import provenance as P
from tiedae.config import key_parts, pretrain_settings, run_settings, settings_key
from tiedae.data import FASHION_MNIST_FILES


def pretrain_key(*overrides: str) -> str:
    return settings_key(pretrain_settings(make_config("data=digits", *overrides)))


@pytest.mark.parametrize(
    "override",
    ["data.classes=[1,2,3]", "data.max_train=500", "pretrain.images=all",
     "pretrain.input_noise=dropout", "model.tied=false"],
)  # fmt: skip
def test_the_cache_key_changes_with_each_setting_the_autoencoder_depends_on(override):
    assert pretrain_key(override) != pretrain_key()


def fake_fashion_mnist(folder: Path, byte: int) -> Path:
    """Four tiny files with Fashion-MNIST's names (content differs by ``byte``)."""
    folder.mkdir()
    for name in FASHION_MNIST_FILES.values():
        with gzip.open(folder / name, "wb") as stream:
            stream.write(bytes([0, 0, 8, 1, 0, 0, 0, 1, byte]))
    return folder


def test_the_cache_key_follows_the_files_data_dir_reads(tmp_path):
    first = fake_fashion_mnist(tmp_path / "a", 1)
    other = fake_fashion_mnist(tmp_path / "b", 2)
    copy = shutil.copytree(first, tmp_path / "copy")

    def key(folder: Path) -> str:
        return settings_key(pretrain_settings(make_config(f"data.dir={folder}")))

    assert key(first) != key(other)  # another dataset through data.dir: another key
    assert key(first) == key(copy)  # the same files elsewhere: the same autoencoder


def test_the_keys_change_with_the_code(monkeypatch):
    cfg = make_config("data=digits")
    before = settings_key(pretrain_settings(cfg)), settings_key(run_settings(cfg))
    parts_before = key_parts(pretrain_settings(cfg))
    monkeypatch.setattr(P, "code_identity", lambda: {"version": "0.1.0", "source": "edited"})
    after = settings_key(pretrain_settings(cfg)), settings_key(run_settings(cfg))
    assert before[0] != after[0] and before[1] != after[1]
    parts_after = key_parts(pretrain_settings(cfg))
    assert [p for p in parts_after if parts_after[p] != parts_before[p]] == ["code"]


def test_the_source_digest_counts_uncommitted_edits(tmp_path):
    package = shutil.copytree(
        P.PACKAGE_DIR, tmp_path / "tiedae", ignore=shutil.ignore_patterns("__pycache__")
    )
    before = P.source_digest(package)
    (package / "pipeline.py").write_text((package / "pipeline.py").read_text() + "\n# edited\n")
    assert P.source_digest(package) != before


@pytest.mark.slow
def test_reruns_skip_on_the_same_key_and_say_what_changed_otherwise(store, monkeypatch, caplog):
    sweep = [*QUICK, *store, "method=scratch", "sweep.name=s", "classifier.epochs=1"]
    first = pipeline.run_experiment(make_config(*sweep))
    assert first
    caplog.set_level(logging.INFO, logger="tiedae")
    assert pipeline.run_experiment(make_config(*sweep)) == {}
    assert "already FINISHED with the same key" in caplog.text
    monkeypatch.setattr(P, "code_identity", lambda: {"version": "0.1.0", "source": "edited"})
    caplog.clear()
    assert pipeline.run_experiment(make_config(*sweep))  # the code changed: not skipped
    assert "code changed" in caplog.text
    client = MlflowClient(store[0].split("=", 1)[1])
    experiment = client.get_experiment_by_name("tiedae").experiment_id
    jobs = client.search_runs([experiment], "tags.`tiedae.role` = 'job'")
    assert {job.data.tags["tiedae.code.source"] for job in jobs} == {P.source_digest(), "edited"}
    for job in jobs:
        tags = job.data.tags
        assert tags["tiedae.data.name"] == "digits" and tags["tiedae.git.commit"]
        assert tags["tiedae.command"] and tags["tiedae.key.settings"]


@pytest.mark.slow
def test_force_retrains_the_cached_autoencoder(store):
    quick = [*QUICK, *store, "pretrain.epochs=1", "classifier.epochs=1"]
    pipeline.run_experiment(make_config(*quick))
    pipeline.run_experiment(make_config(*quick, "force=true"))
    client = MlflowClient(store[0].split("=", 1)[1])
    experiment = client.get_experiment_by_name("tiedae").experiment_id
    pretrainings = client.search_runs([experiment], "tags.`tiedae.role` = 'pretrain'")
    assert len(pretrainings) == 2
    newest = client.search_runs(
        [experiment], "tags.`tiedae.role` = 'job'", order_by=["attributes.start_time DESC"]
    )[0]
    assert newest.data.tags["pretrain.cache"] == "forced"
