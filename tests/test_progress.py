"""The sweep's progress line (tiedae.sweep.Progress), fed by a fake store, and the job count."""

from __future__ import annotations

import io

from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from tiedae.config import CONFIG_DIR
from tiedae.sweep import Progress, sweep_size


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def counts(done=0, skipped=0, failed=0, running=0, hits=0, epochs=()) -> dict:
    return {"done": done, "skipped": skipped, "failed": failed, "running": running, "hits": hits,
            "epochs": list(epochs)}  # fmt: skip


def test_a_line_every_few_jobs_where_stdout_is_not_a_terminal():
    out = io.StringIO()
    progress = Progress("smoke", 20, lambda: counts(), out=out)  # a line every 2 jobs
    for ended in range(1, 6):
        progress.show(counts(done=ended, running=1, hits=ended // 2))
    progress.show(counts(done=5, failed=1, skipped=14), final=True)
    lines = out.getvalue().splitlines()
    assert [line.split(" jobs")[0] for line in lines] == [
        "sweep smoke: 2/20", "sweep smoke: 4/20", "sweep smoke: 20/20",
    ]  # fmt: skip
    assert lines[0].startswith("sweep smoke: 2/20 jobs (2 done, 0 skipped, 0 failed, 1 running)")
    assert "1 cache hits" in lines[0] and " left" in lines[0]
    assert "(5 done, 14 skipped, 1 failed, 0 running)" in lines[-1] and " left" not in lines[-1]


def test_running_jobs_show_their_epoch_and_a_long_job_still_prints_a_line():
    """In a log file a line comes every few jobs, and every ``heartbeat`` seconds while a job
    runs: a ladder's job trains for an hour, and its epoch is the news."""
    out = io.StringIO()
    progress = Progress("repro", 30, lambda: counts(), out=out, heartbeat=3600)
    progress.show(counts(running=1, epochs=[(17, 150)]))
    assert out.getvalue() == ""  # neither a job ended nor an hour passed
    progress.heartbeat = 0
    progress.show(counts(running=2, epochs=[(17, 150), (3, None)]))
    progress.show(counts(epochs=[]))  # nothing runs: no heartbeat
    [line] = out.getvalue().splitlines()
    assert "(0 done, 0 skipped, 0 failed, 2 running: epoch 17/150, epoch 3)" in line


def test_a_bar_redrawn_in_place_on_a_terminal():
    out = Terminal()
    progress = Progress("smoke", 4, lambda: counts(), out=out)
    progress.show(counts(done=1))
    progress.show(counts(done=2))
    progress.show(counts(done=4), final=True)
    text = out.getvalue()
    assert text.count("\r") == 3 and text.count("\n") == 1 and text.endswith("\n")
    assert "[##########..........] sweep smoke: 2/4 jobs" in text
    assert "[####################] sweep smoke: 4/4 jobs" in text


def test_sweep_size_counts_the_grid_with_command_line_overrides():
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", ["experiment=sweep_smoke"], return_hydra_config=True)

    def size(*overrides: str) -> int | None:  # as Hydra records the command line's overrides
        with open_dict(cfg):
            cfg.hydra.overrides.task = ["experiment=sweep_smoke", *overrides]
        return sweep_size(cfg)

    # conf/experiment/sweep_smoke.yaml: 2 seeds x 4 methods x 2 labeled counts
    assert size() == 16
    assert size("seed=1", "method=scratch,tied_frozen") == 4
    assert size("seed=range(3)", "labels.count=50") == 12


def test_two_processes_running_one_sweep_each_count_their_own_jobs(tmp_path):
    from tiedae.tracking import LAUNCH, ROLE, SWEEP, Tracker, TrackingSettings

    tracker = Tracker(TrackingSettings(f"sqlite:///{tmp_path}/mlflow.db")).connect()
    parent = tracker.sweep_parent("shared")
    for launch, jobs in (("first", 3), ("second", 1)):
        for job in range(jobs):
            tags = {ROLE: "job", SWEEP: "shared", LAUNCH: launch}
            with tracker.run(f"{launch}-{job}", tags, parent_run_id=parent):
                pass
    tracker.note_skipped(parent, "key-a", "first")
    tracker.note_skipped(parent, "key-b", "second")
    tracker.note_skipped(parent, "key-c", "second")

    def done_and_skipped(launch):
        counts = tracker.sweep_progress("shared", parent, since_ms=0, launch=launch)
        return counts["done"], counts["skipped"]

    assert done_and_skipped("first") == (3, 1)
    assert done_and_skipped("second") == (1, 2)
    assert done_and_skipped(None) == (4, 3)  # the whole sweep, whoever ran it


def test_a_running_jobs_epochs_come_from_its_logged_epochs_and_its_schedule(tmp_path):
    from tiedae.tracking import ROLE, SWEEP, Tracker, TrackingSettings

    tracker = Tracker(TrackingSettings(f"sqlite:///{tmp_path}/mlflow.db")).connect()
    parent = tracker.sweep_parent("long")
    tags = {ROLE: "job", SWEEP: "long"}
    with tracker.run("ladder", tags, parent_run_id=parent) as ladder:
        ladder.log_params({"objective.epochs": 150})
        for epoch in range(3):
            ladder.log_epoch({"clf/loss": 1.0 / (epoch + 1)}, step=epoch)
        ladder.flush()
        with tracker.run("scratch", tags, parent_run_id=parent) as scratch:
            scratch.log_params({"objective.epochs": None})
            found = tracker.sweep_progress("long", parent, since_ms=0)
    assert found["running"] == 2 and sorted(found["epochs"]) == [(0, None), (3, 150)]
    assert tracker.sweep_progress("long", parent, since_ms=0)["epochs"] == []


def test_a_job_two_processes_both_ran_or_skipped_counts_once(tmp_path):
    from tiedae.tracking import LAUNCH, ROLE, RUN_KEY, SWEEP, Tracker, TrackingSettings

    tracker = Tracker(TrackingSettings(f"sqlite:///{tmp_path}/mlflow.db")).connect()
    parent = tracker.sweep_parent("shared")

    def run(launch: str, key: str, status: str = "FINISHED") -> None:
        tags = {ROLE: "job", SWEEP: "shared", LAUNCH: launch, RUN_KEY: key}
        with tracker.run(f"{launch}-{key}", tags, parent_run_id=parent) as job:
            pass
        if status != "FINISHED":
            tracker.set_status(job.run_id, status)

    run("first", "both-ran")  # both processes started it before either had finished it
    run("second", "both-ran")
    run("first", "first-ran")  # ... the second then skipped it as FINISHED
    tracker.note_skipped(parent, "first-ran", "second")
    run("second", "failed-then-done", "FAILED")
    run("second", "failed-then-done")
    for launch in ("first", "second"):  # a job FINISHED before both started
        tracker.note_skipped(parent, "done-before", launch)

    def counts(launch):
        found = tracker.sweep_progress("shared", parent, since_ms=0, launch=launch)
        return {name: found[name] for name in ("done", "skipped", "failed", "running")}

    assert counts("first") == {"done": 2, "skipped": 1, "failed": 0, "running": 0}
    assert counts("second") == {"done": 2, "skipped": 2, "failed": 0, "running": 0}
    # the whole sweep: four jobs, each once
    assert counts(None) == {"done": 3, "skipped": 1, "failed": 0, "running": 0}
