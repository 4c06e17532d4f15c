"""End to end, in process: one run on digits into a throwaway sqlite store, then read it back."""

from dataclasses import replace
from pathlib import Path

import pytest
from conftest import QUICK, make_config
from mlflow.tracking import MlflowClient

from tiedae import pipeline, tracking
from tiedae.config import ConfigError
from tiedae.data import DEBIAN_FASHION_MNIST_DIR
from tiedae.tracking import TrackingError


def client_for(store: list[str]) -> MlflowClient:
    return MlflowClient(store[0].split("=", 1)[1])


def runs(client: MlflowClient, role: str) -> list:
    experiment = client.get_experiment_by_name("tiedae")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], f"tags.`tiedae.role` = '{role}'")


def artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    return {f.path for f in client.list_artifacts(run_id, path)}


def logged_models(client: MlflowClient, run) -> list[str]:
    """Names of the READY MLflow logged models the run produced, linked as its outputs."""
    linked = [output.model_id for output in run.outputs.model_outputs]
    models = [client.get_logged_model(model_id) for model_id in linked]
    return sorted(model.name for model in models if model.status == "READY")


@pytest.mark.slow
def test_a_run_logs_config_curves_figure_models_and_finishes(store):
    results = pipeline.run_experiment(make_config(*QUICK, *store))
    assert results["test/accuracy"] > 0.15  # chance is 0.1; a frozen head after 4 epochs: 0.22
    client = client_for(store)
    [job] = runs(client, "job")
    assert job.info.status == "FINISHED"
    assert job.data.params["model.sizes"] == "[100, 30]"
    assert job.data.params["labels.n"] == "100"
    assert job.data.params["pretrain.learning_rate"] == "1.5"
    tags = job.data.tags
    assert (tags["tied"], tags["pretrained"], tags["dataset"], tags["labels"]) == (
        "True",
        "True",
        "digits",
        "100",
    )
    assert tags["pretrain.cache"] == "miss"
    assert [m.step for m in client.get_metric_history(job.info.run_id, "ae/loss")] == [0, 1]
    assert len(client.get_metric_history(job.info.run_id, "ae/val_rounded_accuracy")) == 2
    curve = client.get_metric_history(job.info.run_id, "clf/val_accuracy")
    assert len(curve) >= 2
    [restored] = client.get_metric_history(job.info.run_id, "clf/restored_val_accuracy")
    best = int(results["clf/best_epoch"])
    assert restored.step == best and restored.value == pytest.approx(
        results["clf/val_accuracy_at_best"]
    )
    assert restored.value == pytest.approx([p.value for p in curve if p.step == best][0], abs=1e-6)
    assert job.data.metrics["test/accuracy"] == pytest.approx(results["test/accuracy"])
    assert job.data.metrics["params/autoencoder"] == 64 * 100 + 100 + 100 * 30 + 30 + 100 + 64
    assert "config.yaml" in artifacts(client, job.info.run_id)
    assert logged_models(client, job) == ["classifier"]
    [pretraining] = runs(client, "pretrain")
    assert pretraining.info.status == "FINISHED"
    # the reconstructions belong to the autoencoder: drawn once, on its pretraining run
    assert "reconstructions.png" in artifacts(client, pretraining.info.run_id)
    assert "reconstructions.png" not in artifacts(client, job.info.run_id)
    assert pretraining.data.tags["mlflow.parentRunId"] == job.info.run_id
    assert logged_models(client, pretraining) == ["pretrained"]


@pytest.mark.slow
def test_a_second_run_with_the_same_autoencoder_loads_it_from_the_cache(store):
    pipeline.run_experiment(make_config(*QUICK, *store))
    pipeline.run_experiment(make_config(*QUICK, *store, "labels.count=50", "classifier=finetune"))
    client = client_for(store)
    assert len(runs(client, "pretrain")) == 1
    newest = runs(client, "job")[0]
    assert newest.data.tags["pretrain.cache"] == "hit"
    assert newest.data.tags["pretrain.run_id"] == runs(client, "pretrain")[0].info.run_id
    # a cache hit draws no reconstruction figure again: the pretraining run has the one
    assert "reconstructions.png" not in artifacts(client, newest.info.run_id)


@pytest.mark.slow
def test_job_models_none_logs_no_classifier_and_keeps_the_cache(store):
    """tracking.job_models=none: the job logs no model; its pretraining run still logs the
    one the cache loads, and a second job loads it."""
    quiet = ["tracking.job_models=none", *QUICK, *store]
    pipeline.run_experiment(make_config(*quiet))
    pipeline.run_experiment(make_config(*quiet, "classifier=finetune"))
    client = client_for(store)
    jobs, [pretraining] = runs(client, "job"), runs(client, "pretrain")
    assert [logged_models(client, job) for job in jobs] == [[], []]
    assert logged_models(client, pretraining) == ["pretrained"]
    assert sorted(job.data.tags["pretrain.cache"] for job in jobs) == ["hit", "miss"]


@pytest.mark.slow
def test_scratch_trains_no_autoencoder_and_all_layers(store):
    results = pipeline.run_experiment(make_config(*QUICK, *store, "method=scratch"))
    assert results["params/classifier_trainable"] == results["params/classifier"]
    assert runs(client_for(store), "pretrain") == []


@pytest.mark.slow
def test_frozen_classifier_trains_only_its_head(store):
    results = pipeline.run_experiment(make_config(*QUICK, *store, "method=untied_frozen"))
    assert results["params/classifier_trainable"] == 30 * 10 + 10


def test_a_failing_run_ends_failed_with_its_error(store, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipeline, "train_classifier", broken)
    with pytest.raises(RuntimeError):
        pipeline.run_experiment(make_config(*QUICK, *store, "method=scratch"))
    [job] = runs(client_for(store), "job")
    assert job.info.status == "FAILED"
    assert job.data.tags["tiedae.error"] == "RuntimeError: disk on fire"


def test_a_failing_run_keeps_the_epochs_it_logged(store, monkeypatch):
    """Epoch curves are written in batches (``RunLog.log_epoch``); a run that fails still
    writes the epochs it held before it ends FAILED."""

    def fails_after_two_epochs(*args, on_epoch_end, **kwargs):
        for epoch in range(2):
            on_epoch_end(epoch, {"loss": 1.0 - epoch / 10, "val_loss": 1.0})
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipeline, "train_classifier", fails_after_two_epochs)
    with pytest.raises(RuntimeError):
        pipeline.run_experiment(make_config(*QUICK, *store, "method=scratch"))
    [job] = runs(client_for(store), "job")
    assert job.info.status == "FAILED"
    curve = client_for(store).get_metric_history(job.info.run_id, "clf/loss")
    assert [(m.step, m.value) for m in curve] == [(0, 1.0), (1, 0.9)]


class _Clock:
    """A stand-in for the ``time`` module RunLog reads (in tiedae.tracking.runlog): monotonic()
    is set by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_800_000_000.0 + self.now


class _Store:
    def __init__(self) -> None:
        self.batches: list[list] = []  # the metrics of each log_batch call
        self.writes: list[tuple[list, list, list]] = []  # (metrics, params, tags) of each

    def log_batch(self, run_id, metrics=(), params=(), tags=()) -> None:
        self.batches.append(list(metrics))
        self.writes.append(([m.key for m in metrics], [p.key for p in params],
                            [t.key for t in tags]))  # fmt: skip


def test_epoch_metrics_are_written_every_few_seconds_not_every_epoch(monkeypatch):
    clock, store = _Clock(), _Store()
    monkeypatch.setattr(tracking.runlog, "time", clock)
    at_once = tracking.RunLog(store, "run", epoch_flush_seconds=0)
    at_once.log_epoch({"clf/loss": 1.0}, step=0)
    assert [[m.step for m in batch] for batch in store.batches] == [[0]]
    store.batches.clear()
    log = tracking.RunLog(store, "run")
    for epoch in range(40):  # 40 epochs of 10 ms: held
        clock.now += 0.01
        log.log_epoch({"clf/loss": 1.0, "clf/val_loss": 2.0}, step=epoch)
    assert store.batches == []
    clock.now += log.epoch_flush_seconds
    log.log_epoch({"clf/loss": 0.5, "clf/val_loss": 1.5}, step=40)
    [written] = store.batches  # all 41 epochs in one write (of at most 100 metrics)
    assert len(written) == 82 and [m.step for m in written[::2]] == list(range(41))
    log.log_epoch({"clf/loss": 0.4, "clf/val_loss": 1.4}, step=41)
    log.log_metrics({"test/accuracy": 0.9})  # not deferred: writes the held epoch, then itself
    assert [[m.key for m in batch] for batch in store.batches[-1:]] == [
        ["clf/loss", "clf/val_loss", "test/accuracy"]
    ]


def test_a_runs_params_tags_and_metrics_are_written_together_in_few_batches(monkeypatch):
    """A deferred run (as Tracker.run opens them) holds params, tags and metrics and writes
    them in one log_batch at its end, in order; one not deferred writes each call at once."""
    clock, store = _Clock(), _Store()
    monkeypatch.setattr(tracking.runlog, "time", clock)
    log = tracking.RunLog(store, "run", deferred=True)
    log.log_params({f"p{i}": i for i in range(150)})  # more than one batch's 100 params
    log.set_tags({"method": "scratch"})
    log.log_epoch({"clf/loss": 1.0}, step=0)
    log.log_metrics({"test/accuracy": 0.9})
    log.set_tags({"pretrain.cache": "hit"})
    assert store.writes == []
    log.flush()
    assert store.writes == [
        (["clf/loss", "test/accuracy"], [f"p{i}" for i in range(100)],
         ["method", "pretrain.cache"]),
        ([], [f"p{i}" for i in range(100, 150)], []),
    ]  # fmt: skip
    clock.now += log.epoch_flush_seconds  # a long run: written as often as its curves
    log.set_tags({"late": 1})
    assert store.writes[-1] == ([], [], ["late"])
    now = tracking.RunLog(store, "run")
    now.set_tags({"a": 1})
    now.log_params({"b": 2})
    assert store.writes[-2:] == [([], [], ["a"]), ([], ["b"], [])]


def test_a_failing_run_writes_what_it_held_and_its_error(store):
    tracker = tracking.Tracker(
        tracking.TrackingSettings(store[0].split("=", 1)[1], artifact_dir=store[1].split("=")[1])
    ).connect()
    with pytest.raises(RuntimeError), tracker.run("broken", {"tiedae.role": "job"}) as run:
        run.log_params({"labels.n": 7})
        run.set_tags({"pretrain.cache": "hit"})
        raise RuntimeError("boom")
    stored = tracker.client.get_run(run.run_id)
    assert stored.info.status == "FAILED"
    assert stored.data.params["labels.n"] == "7"
    assert stored.data.tags["pretrain.cache"] == "hit"
    assert stored.data.tags["tiedae.error"] == "RuntimeError: boom"


def test_too_many_labels_is_refused_before_any_run(store):
    with pytest.raises(
        ConfigError, match="labels.count=5000 is larger than the 1237 training images"
    ):
        pipeline.run_experiment(make_config(*QUICK, *store, "labels.count=5000"))
    assert not Path(store[0].split("///", 1)[1]).exists()  # not even a store was created


def test_unreachable_tracking_server_fails_fast():
    cfg = make_config(*QUICK, "tracking=server", "tracking.uri=http://127.0.0.1:9")
    with pytest.raises(TrackingError, match="tracking server http://127.0.0.1:9 is unreachable"):
        pipeline.prepare(cfg)


@pytest.mark.slow
@pytest.mark.fashion
@pytest.mark.skipif(not DEBIAN_FASHION_MNIST_DIR.exists(), reason="Fashion-MNIST not installed")
def test_fashion_mnist_slice_end_to_end(store):
    overrides = [
        "data.max_train=3000",
        "pretrain.epochs=2",
        "classifier.epochs=10",
        "labels.count=200",
    ]
    cfg = make_config(*store, *overrides, "method=tied_finetune", "runtime.verbose=0")
    results = pipeline.run_experiment(cfg)
    [job] = runs(client_for(store), "job")
    assert job.info.status == "FINISHED" and job.data.tags["dataset"] == "fashion_mnist"
    assert job.data.metrics["params/autoencoder"] == 82_414
    assert results["test/accuracy"] > 0.5  # 10 classes: far above chance (0.1)


def test_a_kept_classifier_trains_as_a_fresh_one_and_is_traced_once(monkeypatch):
    """A worker's second job of the same shape trains the kept classifier (its compiled epoch
    traced once), to the same numbers as a fresh one in a fresh process would."""
    from tiedae import classify, training
    from tiedae.data import load_dataset, stratified_subset

    cfg = make_config(*QUICK, "method=scratch")
    splits = load_dataset(cfg.data)
    settings = training.FitSettings(epochs=3, batch_size=32, seed=1, patience=None, verbose=0)
    built = []
    original = training.EpochRunner.__init__

    def counted(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(training.EpochRunner, "__init__", counted)

    def train(seed: int, labels: int = 100):
        labeled = stratified_subset(splits.y_train, labels, seed)
        model, history = classify.train_classifier(
            splits, labeled, cfg.model, cfg.classifier, replace(settings, seed=seed)
        )
        return model, [epoch["val_loss"] for epoch in history.epochs]

    monkeypatch.setattr(classify, "_KEPT", {})
    first, _ = train(1)
    second, curve = train(2)
    assert second is first and len(built) == 1  # kept: traced once for both
    other, _ = train(2, labels=200)  # other data shapes: another runner
    assert len(built) == 2
    monkeypatch.setattr(classify, "_KEPT", {})  # as a fresh process
    fresh, fresh_curve = train(2)
    assert fresh is not first and curve == fresh_curve  # the same numbers, to the last bit
