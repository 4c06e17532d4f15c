"""Training that resumes mid-run: from a checkpoint in ``fit`` and in ``fit_objective``, and
after SIGKILL end to end."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from clirun import runs_by_role, start_cli, stop_group, store_overrides, store_tracker, wait_for
from conftest import make_config, run_cli

from tiedae import pipeline
from tiedae.data import load_dataset, stratified_subset
from tiedae.loop import fit
from tiedae.models import build_classifier
from tiedae.objectives import train_with_objective
from tiedae.training import Checkpoint, FitSettings, make_optimizer


class Killed(Exception):
    pass


def killer(kill_after: int | None):
    """An ``on_epoch_end`` that raises after epoch ``kill_after`` (None: never)."""

    def on_epoch_end(epoch, logs):
        if kill_after is not None and epoch + 1 == kill_after:
            raise Killed  # after training that epoch, before its checkpoint

    return on_epoch_end


def train(splits, checkpoint=None, kill_after=None, epochs=8):
    """A small classifier on digits, with early stopping; ``kill_after``: stop there."""
    keras.utils.set_random_seed(0)
    model = build_classifier(splits.image_shape, [16], splits.n_classes, activation="selu")
    history = fit(
        model, splits.x_train[:300], splits.y_train[:300], (splits.x_valid, splits.y_valid),
        loss=keras.losses.sparse_categorical_crossentropy,
        optimizer=make_optimizer("nadam", 0.01),
        settings=FitSettings(epochs=epochs, seed=3, patience=3, verbose=0, checkpoint=checkpoint),
        on_epoch_end=killer(kill_after),
    )  # fmt: skip
    return model, history


def test_fit_resumed_from_a_checkpoint_ends_as_an_uninterrupted_fit(tmp_path):
    splits = load_dataset(make_config("data=digits").data)
    whole, whole_history = train(splits)
    resumed_at: list[tuple[str, int]] = []
    checkpoint = Checkpoint(tmp_path, every=2, name="clf", resumed=lambda *a: resumed_at.append(a))
    with pytest.raises(Killed):
        train(splits, checkpoint, kill_after=5)
    assert checkpoint.load()["epoch"] == 4 and resumed_at == []
    again, again_history = train(splits, checkpoint)

    assert resumed_at == [("clf", 4)]
    assert again_history.epochs == whole_history.epochs  # epochs 1-4 from the checkpoint
    assert again_history.best_epoch == whole_history.best_epoch
    for mine, theirs in zip(again.get_weights(), whole.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    # a finished fit leaves a final state: resuming it trains nothing and keeps its weights
    final, _ = train(splits, checkpoint)
    assert resumed_at[-1] == ("clf", len(whole_history.epochs))
    np.testing.assert_array_equal(final.get_weights()[0], whole.get_weights()[0])


OBJECTIVES = {
    "joint_tied": [],
    "ladder_tied": ["model.sizes=[32,16]", "objective.costs=[1.0,1.0,0.1,0.1]",
                    "objective.lr_decay_start=0.3"],
    "mean_teacher": ["objective.ramp_up_epochs=3"],
}  # fmt: skip


def train_objective(name, splits, checkpoint=None, kill_after=None):
    """Six epochs of five steps of an objective on 100 digits labels; ``kill_after``: stop."""
    cfg = make_config(
        "data=digits", "pretrain=none", "classifier=finetune", f"objective={name}",
        "objective.labeled_batch_size=32", "objective.unlabeled_batch_size=64",
        "objective.steps_per_epoch=5", "objective.monitor=val_loss", *OBJECTIVES[name],
    )  # fmt: skip
    labeled = stratified_subset(splits.y_train, 100, 0)
    settings = FitSettings(epochs=6, seed=1, patience=4, verbose=0, checkpoint=checkpoint)
    return train_with_objective(
        cfg, splits, labeled, splits.x_train, settings, on_epoch_end=killer(kill_after)
    )


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_an_objective_resumed_from_a_checkpoint_ends_as_an_uninterrupted_one(name, tmp_path):
    """Every variable of the objective (decoder, teacher, step count, noise seed), the
    optimizer's, the learning-rate decay and the shuffling continue where they stopped."""
    splits = load_dataset(make_config("data=digits").data)
    _, whole_history, whole = train_objective(name, splits)
    resumed_at: list[tuple[str, int]] = []
    checkpoint = Checkpoint(tmp_path, every=2, name="clf", resumed=lambda *a: resumed_at.append(a))
    with pytest.raises(Killed):
        train_objective(name, splits, checkpoint, kill_after=3)
    assert checkpoint.load()["epoch"] == 2 and resumed_at == []
    _, again_history, again = train_objective(name, splits, checkpoint)

    assert resumed_at == [("clf", 2)]
    assert again_history.epochs == whole_history.epochs
    assert again_history.best_epoch == whole_history.best_epoch
    for mine, theirs in zip(again.variables, whole.variables, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


OBJECTIVE_JOB = [
    "data=digits", "method=ladder_tied", "model.sizes=[32,16]",
    "objective.costs=[1.0,1.0,0.1,0.1]", "objective.steps_per_epoch=5", "labels.count=50",
    "objective.epochs=6", "objective.patience=6", "runtime.checkpoint_every=2",
    "runtime.verbose=0",
]  # fmt: skip


@pytest.mark.slow
def test_an_objective_job_that_failed_resumes_in_the_same_run(tmp_path, monkeypatch):
    """The classifier stage under an objective saves ``runtime.checkpoint_every`` epochs, as
    the plain classifier does: the rerun of a job that died continues its run from there."""
    reference, failed = tmp_path / "reference", tmp_path / "failed"
    reference.mkdir(), failed.mkdir()
    expected = pipeline.run_experiment(make_config(*OBJECTIVE_JOB, *store_overrides(reference)))
    logger = pipeline.epoch_logger

    def dying_logger(run, prefix):
        log = logger(run, prefix)

        def on_epoch_end(epoch, logs):
            log(epoch, logs)
            killer(5)(epoch, logs)

        return on_epoch_end

    cfg = make_config(*OBJECTIVE_JOB, *store_overrides(failed))
    monkeypatch.setattr(pipeline, "epoch_logger", dying_logger)
    with pytest.raises(Killed):
        pipeline.run_experiment(cfg)
    monkeypatch.setattr(pipeline, "epoch_logger", logger)
    results = pipeline.run_experiment(cfg)

    tracker = store_tracker(failed)
    (job,) = runs_by_role(tracker, "job")
    assert job.info.status == "FINISHED"
    assert job.data.tags["tiedae.resumed_from.clf"] == "4"
    assert results["test/accuracy"] == expected["test/accuracy"]
    steps = [m.step for m in tracker.client.get_metric_history(job.info.run_id, "clf/loss")]
    assert sorted(set(steps)) == list(range(6))
    assert not tracker.checkpoint_dir(job.info.run_id).exists()


RESUMABLE_JOB = [
    "data=digits", "method=tied_frozen", "labels.count=50", "seed=2", "pretrain.epochs=40",
    "classifier.epochs=120", "classifier.patience=1000", "runtime.checkpoint_every=3",
    "runtime.threads=1", "runtime.verbose=2",
    "tracking.epoch_flush_seconds=0",  # each epoch in the store at once: the kills watch them
]  # fmt: skip


def logged_epochs(tracker, role: str, metric: str) -> int:
    """Epochs of ``metric`` logged by the newest RUNNING run of ``role`` (0: none)."""
    runs = runs_by_role(tracker, role, "RUNNING")
    return len(tracker.client.get_metric_history(runs[0].info.run_id, metric)) if runs else 0


def kill_when(root, enough) -> None:
    """Start the job, SIGKILL its process group once ``enough(tracker)`` holds."""
    tracker = store_tracker(root)
    process = start_cli([*RESUMABLE_JOB, *store_overrides(root)], root / "log.txt")
    try:
        wait_for(lambda: enough(tracker) or process.poll() is not None, 300, "training")
        assert process.poll() is None, (root / "log.txt").read_text()[-3000:]
    finally:
        stop_group(process)


@pytest.mark.slow
def test_job_killed_mid_training_resumes_in_the_same_run(tmp_path):
    """SIGKILL in pretraining, then in the classifier: each rerun continues the same runs from
    their last checkpoint, and the job ends with the uninterrupted run's test accuracy."""
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    reference.mkdir(), killed.mkdir()
    run_cli(*RESUMABLE_JOB, *store_overrides(reference), timeout=300)
    (expected,) = runs_by_role(store_tracker(reference), "job", "FINISHED")

    kill_when(killed, lambda tracker: logged_epochs(tracker, "pretrain", "ae/loss") >= 8)
    tracker = store_tracker(killed)
    (job,) = runs_by_role(tracker, "job", "RUNNING")  # left RUNNING by the dead process
    (pretraining,) = runs_by_role(tracker, "pretrain", "RUNNING")
    kill_when(killed, lambda tracker: logged_epochs(tracker, "job", "clf/loss") >= 10)
    second = run_cli(*RESUMABLE_JOB, *store_overrides(killed), timeout=300)

    assert [run.info.run_id for run in runs_by_role(tracker, "job")] == [job.info.run_id]
    assert [run.info.run_id for run in runs_by_role(tracker, "pretrain")] == [
        pretraining.info.run_id
    ]
    job = tracker.client.get_run(job.info.run_id)
    assert job.info.status == "FINISHED"
    assert tracker.client.get_run(pretraining.info.run_id).info.status == "FINISHED"
    # it continued: from a checkpoint past epoch 3 in each stage, not from the start
    pretrain_tags = tracker.client.get_run(pretraining.info.run_id).data.tags
    assert int(pretrain_tags["tiedae.resumed_from.ae"]) >= 6
    assert int(job.data.tags["tiedae.resumed_from.clf"]) >= 9
    assert f"clf: resumed from epoch {job.data.tags['tiedae.resumed_from.clf']}" in second.stdout
    assert job.data.metrics["test/accuracy"] == expected.data.metrics["test/accuracy"]
    assert job.data.metrics["ae/loss"] == expected.data.metrics["ae/loss"]
    steps = [m.step for m in tracker.client.get_metric_history(job.info.run_id, "clf/loss")]
    assert sorted(set(steps)) == list(range(120))  # one curve, each epoch at its own step
    assert not tracker.checkpoint_dir(job.info.run_id).exists()
