"""The smoke sweep against a real MLflow tracking server, with two parallel workers.

The server runs as its own process with a database backend and artifact serving, as a team
would run it (README, Team setup), on a free port of 127.0.0.1 with a temporary store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request

import pytest
from clirun import FAST, free_port, wait_for
from conftest import images_right, make_config, run_cli

from tiedae.tracking import PRETRAIN_KEY, ROLE, SWEEP, Tracker, TrackingSettings

# 4 jobs, 2 distinct autoencoders (tied, untied): each trained once, loaded once
GRID = ["seed=1", "method=tied_frozen,tied_finetune,untied_frozen,untied_finetune",
        "labels.count=50"]  # fmt: skip


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def tracking_server(tmp_path):
    """``mlflow server`` on a sqlite database and a served artifact folder; its URL."""
    port, log = free_port(), tmp_path / "server.log"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
        "--artifacts-destination", str(tmp_path / "served"), "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    environment = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "wb") as out:
        server = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=environment,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(url) or server.poll() is not None, 240, "the tracking server")
        assert server.poll() is None, log.read_text()[-3000:]
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.integration
def test_smoke_sweep_against_a_tracking_server(tracking_server, tmp_path):
    overrides = [
        "experiment=sweep_smoke", "sweep.name=served", *GRID, *FAST,
        "tracking=server", f"tracking.uri={tracking_server}",
        "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path}/multirun",
    ]  # fmt: skip
    run_cli(*overrides, timeout=400)

    tracker = Tracker(TrackingSettings(tracking_server)).connect()
    runs = tracker.client.search_runs([tracker.experiment_id], max_results=1000)
    jobs = [run for run in runs if run.data.tags[ROLE] == "job"]
    pretrainings = [run for run in runs if run.data.tags[ROLE] == "pretrain"]
    (parent,) = [run for run in runs if run.data.tags[ROLE] == "sweep"]

    assert len(jobs) == 4 and {run.info.status for run in runs} == {"FINISHED"}
    assert {run.data.tags["mlflow.parentRunId"] for run in jobs} == {parent.info.run_id}
    assert {run.data.tags[SWEEP] for run in jobs} == {"served"}
    for job in jobs:
        assert 0 < images_right(job.data.metrics["test/accuracy"]) < 360  # near chance
        stored = artifact_names(tracker, job.info.run_id)
        assert "config.yaml" in stored and "reconstructions.png" not in stored
        assert tracker.logged_model_id(job.info.run_id, "classifier")
    # the cache, shared through the server: one autoencoder per (model, pretraining, seed)
    keys = {run.data.tags[PRETRAIN_KEY] for run in jobs}
    assert len(keys) == 2 and len(pretrainings) == 2
    assert {run.data.tags[PRETRAIN_KEY] for run in pretrainings} == keys
    assert sorted(run.data.tags["pretrain.cache"] for run in jobs) == ["hit", "hit", "miss", "miss"]
    for run in pretrainings:
        assert tracker.logged_model_id(run.info.run_id, "pretrained")
        assert "reconstructions.png" in artifact_names(tracker, run.info.run_id)
    # artifacts went through the server into its own folder, not to the client's disk
    served = {path.name for path in (tmp_path / "served").rglob("*") if path.is_file()}
    assert {"model.keras", "MLmodel", "config.yaml"} <= served


def artifact_names(tracker: Tracker, run_id: str, folder: str | None = None) -> set[str]:
    """Every artifact file of a run, as paths relative to its artifact root."""
    names: set[str] = set()
    for item in tracker.client.list_artifacts(run_id, folder):
        if item.is_dir:
            names |= artifact_names(tracker, run_id, item.path)
        else:
            names.add(item.path)
    return names


def test_server_config_reads_the_environment(monkeypatch):
    """``tracking=server`` takes MLFLOW_TRACKING_URI, so a team sets the address once."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    cfg = make_config("tracking=server")
    assert cfg.tracking.uri == "http://tracking.example:5000"
    assert cfg.tracking.artifact_dir is None  # the server stores the artifacts
