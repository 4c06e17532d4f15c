"""Killed jobs, resumed sweeps, unreadable cache entries and determinism, on digits.

The kill test drives the real command line: it waits until an autoencoder is training, then
sends the signal, and reads the outcome from the tracking store.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from clirun import (
    FAST,
    find_runs,
    runs_by_role,
    start_cli,
    stop_group,
    store_overrides,
    store_tracker,
    wait_for,
)
from conftest import make_config, run_cli

from tiedae.tracking import PID, RUN_KEY, Tracker, sigterm_as_keyboard_interrupt, sigterm_held

LONG_PRETRAINING = "pretrain.epochs=60"  # a few seconds: time to kill it mid-training
KILL_SWEEP = [
    "experiment=sweep_smoke", "sweep.name=killed", "seed=1", "method=scratch,tied_frozen",
    "labels.count=50", LONG_PRETRAINING, "classifier.epochs=3", "runtime.threads=1",
    "runtime.checkpoint_every=0",  # no resume from checkpoints here: tests/test_resume.py
    "tracking.epoch_flush_seconds=0",  # each epoch in the store at once: the kills watch them
]  # fmt: skip


def pretraining_underway(tracker: Tracker, known: set[str]):
    """A new RUNNING pretraining run that has logged a few epochs, or None."""
    for run in runs_by_role(tracker, "pretrain", "RUNNING"):
        history = tracker.client.get_metric_history(run.info.run_id, "ae/loss")
        if run.info.run_id not in known and len(history) >= 3:
            return run
    return None


def statuses(tracker: Tracker) -> dict[str, list[str]]:
    """Run statuses by role, e.g. {"job": ["FINISHED", "KILLED"], ...}, each list sorted."""
    found: dict[str, list[str]] = {}
    for run in find_runs(tracker):
        found.setdefault(run.data.tags["tiedae.role"], []).append(run.info.status)
    return {role: sorted(values) for role, values in found.items()}


def errors(tracker: Tracker) -> dict[str, str]:
    """Each closed run's role, status and error tag: what a failed assertion should show."""
    return {
        f"{run.data.tags['tiedae.role']} {run.info.run_id[:8]} {run.info.status}":
            run.data.tags.get("tiedae.error", "")
        for run in find_runs(tracker)
    }  # fmt: skip


def tied_job_of(tracker: Tracker, pretrain_run) -> str:
    """The status of the job a pretraining run was nested under."""
    return tracker.client.get_run(pretrain_run.data.tags["mlflow.parentRunId"]).info.status


def interrupt_sweep(root: Path, launcher: list[str], kill, known: set[str]):
    """Start the sweep, ``kill`` it once an autoencoder trains; the training run, exit code."""
    tracker = store_tracker(root)
    process = start_cli([*KILL_SWEEP, *store_overrides(root), *launcher], root / "log.txt")
    try:
        run = wait_for(
            lambda: pretraining_underway(tracker, known) or process.poll() is not None,
            300, "pretraining",
        )  # fmt: skip
        assert process.poll() is None, (root / "log.txt").read_text()[-3000:]
        kill(process, run)
        code = process.wait(timeout=120)
        if code != -signal.SIGKILL:  # its workers may still be closing their runs
            try:
                wait_for(lambda: settled(tracker), 60, "every run closed")
            except AssertionError as error:  # say which run stayed open, for the next reader
                raise AssertionError(f"{error}; runs by role: {statuses(tracker)}") from None
    finally:
        stop_group(process)
    known.add(run.info.run_id)
    return tracker.client.get_run(run.info.run_id), code


def settled(tracker: Tracker) -> bool:
    """No run RUNNING and the sweep's parent closed: the stopped sweep has been cleaned up."""
    return "RUNNING" not in str(statuses(tracker))


def test_a_sigterm_while_a_run_closes_waits_for_the_closing_writes():
    written = []
    with pytest.raises(KeyboardInterrupt), sigterm_as_keyboard_interrupt():
        with sigterm_held():
            os.kill(os.getpid(), signal.SIGTERM)
            written.append("status")  # not cut short by the signal
        written.append("after")  # the held signal stops the process here
    assert written == ["status"]


@pytest.mark.slow
def test_killed_sweep_leaves_no_running_run_and_resumes_what_is_missing(tmp_path):
    known: set[str] = set()
    tracker = store_tracker(tmp_path)
    joblib = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]

    # 1. SIGTERM to the loky worker that trains: its runs end KILLED, the sweep stops, and
    #    the other worker (killed by joblib on the way out) is marked KILLED at exit.
    def sigterm_worker(process, run):
        os.kill(int(run.data.tags[PID]), signal.SIGTERM)

    run, code = interrupt_sweep(tmp_path, joblib, sigterm_worker, known)
    assert code != 0
    assert (run.info.status, tied_job_of(tracker, run)) == ("KILLED", "KILLED"), errors(tracker)
    # Closed by the worker's own handler, or — when the worker dies first (a busy machine; the
    # stopped sweep stops its workers after a wait) — by the sweep, which marks dead runs:
    # KILLED either way, with the reason, and never left RUNNING.
    assert run.data.tags["tiedae.error"].startswith(("interrupted (KeyboardInterrupt)",
                                                      "process died"))  # fmt: skip
    assert statuses(tracker)["sweep"] == ["KILLED"]
    assert "RUNNING" not in str(statuses(tracker))

    # 2. SIGTERM to a sweep whose job runs in the same process (Hydra's basic launcher).
    def sigterm_sweep(process, run):
        process.send_signal(signal.SIGTERM)

    run, code = interrupt_sweep(tmp_path, [], sigterm_sweep, known)
    assert code != 0
    assert run.info.status == "KILLED" and tied_job_of(tracker, run) == "KILLED"
    assert "RUNNING" not in str(statuses(tracker))

    # 3. SIGKILL: nobody can close the runs, so they stay RUNNING until the next sweep starts.
    def sigkill_sweep(process, run):
        os.killpg(process.pid, signal.SIGKILL)

    killed, code = interrupt_sweep(tmp_path, [], sigkill_sweep, known)
    assert code == -signal.SIGKILL
    assert killed.info.status == "RUNNING" and tied_job_of(tracker, killed) == "RUNNING"

    # 4. Rerun to the end: the dead runs are marked KILLED, only the missing jobs run, and the
    #    autoencoder is trained anew since no killed run left a cache entry.
    finished_before = {run.data.tags[RUN_KEY] for run in runs_by_role(tracker, "job", "FINISHED")}
    jobs_before = len(runs_by_role(tracker, "job"))
    run_cli(*KILL_SWEEP, *store_overrides(tmp_path), timeout=300)

    killed = tracker.client.get_run(killed.info.run_id)
    assert killed.info.status == "KILLED" and tied_job_of(tracker, killed) == "KILLED"
    assert "process died" in killed.data.tags["tiedae.error"]
    assert statuses(tracker)["pretrain"] == ["FINISHED", "KILLED", "KILLED", "KILLED"]
    assert statuses(tracker)["sweep"] == ["FINISHED"]
    assert "RUNNING" not in str(statuses(tracker))
    finished = runs_by_role(tracker, "job", "FINISHED")
    assert sorted(run.data.tags["method"] for run in finished) == [
        "scratch", "tied-autoencoder-frozen",
    ]  # fmt: skip
    assert len(runs_by_role(tracker, "job")) - jobs_before == 2 - len(finished_before)
    (tied,) = [run for run in finished if run.data.tags["method"] != "scratch"]
    assert tied.data.tags["pretrain.cache"] == "miss"


@pytest.mark.slow
def test_same_config_and_seed_give_the_same_accuracy(tmp_path):
    """Two fresh trainings in two processes, and a cache hit, agree to the last digit."""
    common = ["data=digits", "method=tied_finetune", "labels.count=100", "seed=3",
              "pretrain.epochs=3", "classifier.epochs=5", "runtime.threads=1",
              f"tracking.artifact_dir={tmp_path}/artifacts", f"hydra.run.dir={tmp_path}/out",
              f"hydra.sweep.dir={tmp_path}/multirun"]  # fmt: skip
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
    run_cli(*common, f"tracking.uri=sqlite:///{first}/mlflow.db", timeout=300)
    # one more process: the first store again (a cache hit), then a fresh store (a miss)
    stores = f"sqlite:///{first}/mlflow.db,sqlite:///{second}/mlflow.db"
    run_cli("--multirun", *common, f"tracking.uri={stores}", timeout=300)

    jobs = []
    for folder in (first, second):
        jobs += runs_by_role(store_tracker(tmp_path, folder), "job", "FINISHED")
    caches = sorted(run.data.tags["pretrain.cache"] for run in jobs)
    assert caches == ["hit", "miss", "miss"]
    accuracies = {run.data.metrics["test/accuracy"] for run in jobs}
    assert len(accuracies) == 1, accuracies
    losses = {run.data.metrics["ae/loss"] for run in jobs if "ae/loss" in run.data.metrics}
    assert len(losses) == 1, losses  # the two autoencoders trained alike, epoch for epoch


def test_unreadable_cache_entry_is_trained_anew(tmp_path, store):
    """A FINISHED pretraining run whose stored model is damaged is not loaded: retrained."""
    from tiedae.pipeline import run_experiment

    cfg = make_config("data=digits", "method=tied_frozen", "labels.count=50", *FAST, *store)
    first = run_experiment(cfg)
    tracker = store_tracker(tmp_path)
    (pretraining,) = runs_by_role(tracker, "pretrain")
    model_id = tracker.logged_model_id(pretraining.info.run_id, "pretrained")
    (entry,) = (tmp_path / "artifacts" / "models" / model_id).rglob("model.keras")
    entry.write_bytes(entry.read_bytes()[:100])  # e.g. a disk error after it was stored
    second = run_experiment(cfg)

    jobs = sorted(runs_by_role(tracker, "job", "FINISHED"), key=lambda run: run.info.start_time)
    assert [run.data.tags["pretrain.cache"] for run in jobs] == ["miss", "miss"]
    assert len(runs_by_role(tracker, "pretrain", "FINISHED")) == 2
    assert second["test/accuracy"] == first["test/accuracy"]


def test_a_stopped_sweep_finds_its_live_workers_and_not_the_exited_ones():
    """What the stopped sweep's clean-up stops at exit: live children only (a zombie is done)."""
    from tiedae.sweep import child_processes

    live = subprocess.Popen(["sleep", "30"])
    done = subprocess.Popen(["true"])
    wait_for(lambda: Path(f"/proc/{done.pid}/stat").read_text().split()[2] == "Z", 10, "exit")
    try:
        found = child_processes()
        assert live.pid in found and done.pid not in found
    finally:
        live.kill()
        live.wait()
        done.wait()
    assert live.pid not in child_processes()
