"""One run, top to bottom: validate, load data, pretrain (or load from cache), classify, log."""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
from omegaconf import DictConfig, OmegaConf

from tiedae import config as C
from tiedae.baselines import run_baseline
from tiedae.classify import evaluate_on_test, train_classifier
from tiedae.data import Splits, labeled_count, load_dataset, stratified_subset
from tiedae.pretrain import (
    PRETRAINED_ARTIFACT,
    pretrain_autoencoder,
    pretrain_greedy,
    pretrained_layers,
)
from tiedae.report import reconstructions_figure
from tiedae.tracking import (
    PARENT,
    PRETRAIN_KEY,
    ROLE,
    RUN_KEY,
    SWEEP,
    RunLog,
    Tracker,
    TrackingError,
    TrackingSettings,
)
from tiedae.training import Checkpoint, FitSettings, configure_tensorflow
from tiedae.transfer import load_source, matching_layers, train_source_classifier

log = logging.getLogger("tiedae")


def fit_settings(
    cfg: DictConfig, stage: DictConfig, patience: int | None, checkpoint: Checkpoint | None = None
) -> FitSettings:
    runtime = cfg.runtime
    return FitSettings(
        epochs=stage.epochs,
        batch_size=stage.batch_size,
        seed=cfg.seed,
        patience=patience,
        steps_per_execution=runtime.steps_per_execution,
        validation_batch_size=runtime.validation_batch_size,
        verbose=runtime.verbose,
        checkpoint=checkpoint,
    )


def run_checkpoint(cfg: DictConfig, folder: Path, run: RunLog, name: str) -> Checkpoint:
    """Where ``run``'s training of stage ``name`` saves its state (in ``folder``) every
    ``runtime.checkpoint_every`` epochs (0: never); a resume is tagged on the run."""

    def resumed(part: str, epoch: int) -> None:
        log.info("run %s: %s resumed from epoch %d", run.run_id, part, epoch)
        run.set_tags({f"tiedae.resumed_from.{part}": epoch})

    return Checkpoint(
        folder / name,
        every=cfg.runtime.get("checkpoint_every", 0),
        name=name,
        resumed=resumed,
    )


def epoch_logger(run: RunLog, prefix: str):
    def on_epoch_end(epoch: int, logs: Mapping[str, float]) -> None:
        run.log_metrics({f"{prefix}/{name}": value for name, value in logs.items()}, step=epoch)

    return on_epoch_end


def check_labels_fit(cfg: DictConfig, splits: Splits) -> int:
    n_train = len(splits.x_train)
    count = cfg.labels.get("count")
    if cfg.labels.get("fraction") is None and C._is_int(count) and count > n_train:
        raise C.ConfigError(
            f"labels.count={count} is larger than the {n_train} training images of "
            f"{splits.name}; use at most {n_train} or labels.count=all"
        )
    return labeled_count(n_train, count, cfg.labels.get("fraction"))


def prepare(cfg: DictConfig) -> tuple[Splits, Tracker]:
    """Everything that can fail on bad input, done before any training starts."""
    C.validate(cfg)
    splits = load_dataset(cfg.data)
    check_labels_fit(cfg, splits)
    tracker = Tracker(TrackingSettings.from_config(cfg.tracking)).connect()
    check = PRETRAIN_CHECKS.get(cfg.pretrain.name)
    if check:
        check(cfg, splits, tracker)
    return splits, tracker


def run_experiment(cfg: DictConfig, job_log: Path | None = None) -> dict[str, float]:
    """Run one job; returns its test metrics (empty when skipped as already FINISHED).

    With ``job_log`` (a sweep's job), what the job prints (its per-epoch lines) goes to that
    file, logged to the job's run as an artifact, and to the terminal only when
    ``runtime.verbose`` is set to 1 or 2 (not ``auto``).
    """
    echo = cfg.runtime.verbose not in ("auto", 0, "0")
    with printed_to(job_log, echo):
        return _run_job(cfg, job_log)


class _Tee:
    """A text stream writing to a file and, optionally, to another stream."""

    def __init__(self, file, echo):
        self.file, self.echo = file, echo

    def write(self, text: str) -> int:
        self.file.write(text)
        if self.echo:
            self.echo.write(text)
        return len(text)

    def flush(self) -> None:
        self.file.flush()
        if self.echo:
            self.echo.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def printed_to(path: Path | None, echo: bool) -> Iterator[None]:
    """Send what is printed to ``path`` (appending) and, if ``echo``, still to stdout; without
    ``echo`` the console shows only warnings (info lines stay in Hydra's job log file)."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    consoles = [
        handler for handler in logging.getLogger().handlers
        if type(handler) is logging.StreamHandler and not echo
    ]  # fmt: skip
    levels = [handler.level for handler in consoles]
    try:
        for handler in consoles:
            handler.setLevel(max(handler.level, logging.WARNING))
        with (
            open(path, "a", buffering=1) as file,
            contextlib.redirect_stdout(_Tee(file, sys.stdout if echo else None)),
        ):
            yield
    finally:
        for handler, level in zip(consoles, levels, strict=True):
            handler.setLevel(level)


def _run_job(cfg: DictConfig, job_log: Path | None) -> dict[str, float]:
    splits, tracker = prepare(cfg)
    configure_tensorflow(
        cfg.runtime.threads, cfg.runtime.deterministic, cfg.runtime.inter_op_threads
    )
    sweep = cfg.sweep.get("name")
    run_key = C.settings_key(C.run_settings(cfg))
    parent = tracker.sweep_parent(sweep) if sweep else None
    if sweep and not cfg.force:
        done = tracker.find_finished_job(sweep, run_key)
        if done:
            log.info(
                "skipping %s: run %s already FINISHED (force=true reruns)", C.run_name(cfg), done
            )
            tracker.note_skipped(parent, run_key)
            return {}
    tags = {
        ROLE: "job", RUN_KEY: run_key, "method": C.method_name(cfg), "dataset": splits.name,
        "tied": cfg.model.tied if C.has_decoder(cfg) else "n/a",
        "pretrained": C.is_pretrained(cfg), "labels": C.labels_label(cfg), "seed": cfg.seed,
    }  # fmt: skip
    if sweep:
        tags[SWEEP] = sweep
    resume = tracker.find_resumable({k: v for k, v in tags.items() if k in (ROLE, RUN_KEY, SWEEP)})
    if resume:
        log.info("%s: resuming run %s from its checkpoint", C.run_name(cfg), resume)
    with tracker.run(C.run_name(cfg), tags, parent_run_id=parent, resume=resume) as run:
        if not resume:  # a resumed run keeps its params (runtime options may differ now)
            run.log_params(C.flatten(cfg))
            run.log_text(OmegaConf.to_yaml(cfg), "config.yaml")
        results = _train_and_log(cfg, splits, tracker, run)
        log.info("%s: test accuracy %.4f", C.run_name(cfg), results["test/accuracy"])
        print(f"test accuracy: {results['test/accuracy']:.4f}  ({C.run_name(cfg)})", flush=True)
        if job_log is not None:
            run.log_artifact(job_log, "logs")
    shutil.rmtree(tracker.checkpoint_dir(run.run_id), ignore_errors=True)
    return results


def _train_and_log(cfg: DictConfig, splits: Splits, tracker: Tracker, run: RunLog) -> dict:
    """Draw the labeled subset, train the classifier (a network, or a scikit-learn baseline),
    and log its test metrics: the one place the two kinds part ways."""
    n_labeled = check_labels_fit(cfg, splits)
    labeled = stratified_subset(splits.y_train, n_labeled, cfg.seed)
    run.log_params({"labels.n": n_labeled})
    train = _train_baseline if C.is_sklearn(cfg) else _train_network
    results = train(cfg, splits, labeled, tracker, run)
    run.log_metrics(results)
    return results


def _train_network(
    cfg: DictConfig, splits: Splits, labeled: np.ndarray, tracker: Tracker, run: RunLog
) -> dict[str, float]:
    pretrained = None
    if C.is_pretrained(cfg):
        pretrained = PRETRAINERS[cfg.pretrain.name](cfg, splits, tracker, run)
    checkpoint = run_checkpoint(cfg, tracker.checkpoint_dir(run.run_id), run, "clf")
    classifier, history = train_classifier(
        splits, labeled, cfg.model, cfg.classifier,
        fit_settings(cfg, cfg.classifier, cfg.classifier.patience, checkpoint),
        pretrained=pretrained, reuse=C.reuse_layers(cfg),
        on_epoch_end=epoch_logger(run, "clf"),
    )  # fmt: skip
    test = evaluate_on_test(classifier, splits, cfg.runtime.validation_batch_size)
    results = {f"test/{name}": value for name, value in test.items()}
    results["clf/best_val_accuracy"] = history.epochs[history.best_epoch]["val_accuracy"]
    results["params/classifier"] = classifier.count_params()
    results["params/classifier_trainable"] = sum(
        int(v.numpy().size) for v in classifier.trainable_variables
    )
    results["time/classifier_seconds"] = history.seconds
    _log_model(run, classifier, "classifier.keras")
    return results


def _train_baseline(
    cfg: DictConfig, splits: Splits, labeled: np.ndarray, tracker: Tracker, run: RunLog
) -> dict[str, float]:
    baseline = run_baseline(splits, labeled, cfg.classifier, cfg.seed)
    results = {f"test/{name}": value for name, value in baseline.test.items()}
    results["clf/best_val_accuracy"] = baseline.val_accuracy
    results["clf/chosen_regularization"] = baseline.chosen
    results["params/classifier"] = baseline.n_parameters
    results["time/classifier_seconds"] = baseline.seconds
    return results


# --- pretraining, cached -----------------------------------------------------------------

TrainModel = Callable[[RunLog], keras.Model]


def cached_model(
    tracker: Tracker,
    job: RunLog,
    key: str,
    name: str,
    tags: Mapping[str, Any],
    train: TrainModel,
    enabled: bool = True,
) -> keras.Model:
    """The model stored under ``key`` by an earlier pretraining run, or ``train`` it now.

    ``train`` runs inside a new pretraining run nested under ``job``; the model is logged last,
    and only FINISHED runs are looked up, so a killed run never leaves a usable half entry.
    A machine-wide lock per key makes parallel jobs with the same key train it once.
    With ``enabled=False`` (``pretrain.cache=false``) it always trains, logged as on a miss.
    """
    job.set_tags({PRETRAIN_KEY: key})
    if not enabled:
        job.set_tags({"pretrain.cache": "off"})
        return _train_and_store(tracker, job, key, name, tags, train)
    with tracker.lock(f"pretrain-{key}"), tempfile.TemporaryDirectory() as folder:
        cached = _load_cached(tracker, key, Path(folder))
        if cached:
            cached_run, model = cached
            log.info("pretraining cache hit %s: loaded the model of run %s", key, cached_run)
            print(f"pretraining cache hit ({key}): loaded, not trained", flush=True)
            job.set_tags({"pretrain.cache": "hit", "pretrain.run_id": cached_run})
            return model
        job.set_tags({"pretrain.cache": "miss"})
        return _train_and_store(tracker, job, key, name, tags, train)


def _train_and_store(
    tracker: Tracker, job: RunLog, key: str, name: str, tags: Mapping[str, Any], train: TrainModel
) -> keras.Model:
    """Train in a new pretraining run under ``job``, or continue the one a killed attempt of
    this job left with a checkpoint (in the job's checkpoint folder, which makes the job
    resumable: ``pretrain_checkpoints``)."""
    tags = {**tags, ROLE: "pretrain", PRETRAIN_KEY: key}
    resume = tracker.find_resumable(
        {ROLE: "pretrain", PRETRAIN_KEY: key, PARENT: job.run_id},
        lambda run_id: pretrain_checkpoints(tracker, job, run_id),
    )
    with tracker.run(name, tags, job.run_id, resume=resume) as run:
        model = train(run)
        _log_model(run, model, Path(PRETRAINED_ARTIFACT).name)
    shutil.rmtree(pretrain_checkpoints(tracker, job, run.run_id), ignore_errors=True)
    job.set_tags({"pretrain.run_id": run.run_id})
    return model


def pretrain_checkpoints(tracker: Tracker, job: RunLog, run_id: str) -> Path:
    """The checkpoint folder of pretraining run ``run_id`` nested under ``job``."""
    return tracker.checkpoint_dir(job.run_id) / "pretrain" / run_id


def _load_cached(tracker: Tracker, key: str, folder: Path) -> tuple[str, keras.Model] | None:
    """The newest cache entry for ``key`` that loads; an unreadable one is skipped, with a
    warning, and the model is trained anew (its FINISHED run stays, for a person to inspect)."""
    cached = tracker.find_pretrained(key, PRETRAINED_ARTIFACT, folder)
    if cached is None:
        return None
    cached_run, local_path = cached
    try:
        return cached_run, keras.models.load_model(local_path)
    except Exception as error:
        log.warning(
            "pretraining cache entry of run %s is unreadable (%s: %s); training it anew",
            cached_run, type(error).__name__, str(error).splitlines()[0] if str(error) else "",
        )  # fmt: skip
        return None


PretrainFunction = Callable[..., tuple[keras.Model, Any]]


def autoencoder_layers(
    cfg: DictConfig, splits: Splits, tracker: Tracker, job: RunLog,
    pretrain: PretrainFunction = pretrain_autoencoder,
) -> list[keras.layers.Dense]:  # fmt: skip
    """Pretrain (or load) the autoencoder with ``pretrain``; its encoder's Dense layers."""
    every_class = cfg.pretrain.get("images", "selected") == "all" and bool(cfg.data.get("classes"))

    def train(run: RunLog) -> keras.Model:
        run.log_params(C.flatten(C.pretrain_settings(cfg)))
        images = load_classes(cfg.data, None) if every_class else splits
        run.log_params({"pretrain.n_images": len(images.x_train)})
        checkpoint = run_checkpoint(cfg, pretrain_checkpoints(tracker, job, run.run_id), run, "ae")
        autoencoder, history = pretrain(
            images, cfg.model, cfg.pretrain, fit_settings(cfg, cfg.pretrain, None, checkpoint),
            _fan_out(job, run, "ae"),
        )  # fmt: skip
        final = {f"ae/{k}": v for k, v in history.last.items()}
        run.log_metrics({**final, "time/pretrain_seconds": history.seconds})
        job.log_metrics({"time/pretrain_seconds": history.seconds})
        return autoencoder

    key = C.settings_key(C.pretrain_settings(cfg))
    tags = {"tied": cfg.model.tied, "dataset": splits.name}
    pool = " all classes" if every_class else ""
    name = f"pretrain {cfg.model.name}-{cfg.pretrain.name}{pool} seed={cfg.seed}"
    autoencoder = cached_model(
        tracker, job, key, name, tags, train, enabled=cfg.pretrain.get("cache", True)
    )
    job.log_metrics({"params/autoencoder": autoencoder.count_params()})
    _log_reconstructions(job, autoencoder, splits)
    return pretrained_layers(autoencoder)


def greedy_layers(
    cfg: DictConfig, splits: Splits, tracker: Tracker, job: RunLog
) -> list[keras.layers.Dense]:
    """Greedy layer-wise pretraining, cached like the whole-stack autoencoder."""
    return autoencoder_layers(cfg, splits, tracker, job, pretrain=pretrain_greedy)


def load_classes(data_cfg: DictConfig, classes: list[int] | None) -> Splits:
    """The configured dataset with other classes kept (None: every class)."""
    return load_dataset(OmegaConf.merge(data_cfg, {"classes": classes}))


# --- transfer from a related task --------------------------------------------------------


def transfer_layers(cfg: DictConfig, splits: Splits, tracker: Tracker, job: RunLog) -> list:
    """The lowest reused layers of the source network: builtin (trained once, cached) or given."""
    job.set_tags({"transfer.source": cfg.pretrain.source})
    if cfg.pretrain.source != C.BUILTIN_SOURCE:
        return given_source_layers(cfg, splits, tracker)
    model = builtin_source(cfg, tracker, job)
    return matching_layers(
        model, C.BUILTIN_SOURCE, splits.image_shape, cfg.model, C.reuse_layers(cfg)
    )


def builtin_source(cfg: DictConfig, tracker: Tracker, job: RunLog) -> keras.Model:
    """A classifier trained with every label of the source classes, cached by its settings."""
    classes = C.source_classes(cfg)

    def train(run: RunLog) -> keras.Model:
        run.log_params({**C.flatten(C.source_settings(cfg)), "source.classes": classes})
        source = load_classes(cfg.data, classes)
        folder = pretrain_checkpoints(tracker, job, run.run_id)
        model, history = train_source_classifier(
            source, cfg.model, cfg.pretrain,
            fit_settings(
                cfg, cfg.pretrain, cfg.pretrain.patience,
                run_checkpoint(cfg, folder, run, "source"),
            ),
            _fan_out(job, run, "source"),
        )  # fmt: skip
        test = evaluate_on_test(model, source, cfg.runtime.validation_batch_size)
        run.log_metrics({f"source/test_{k}": v for k, v in test.items()})
        run.log_metrics(
            {"time/pretrain_seconds": history.seconds, "source/n_images": len(source.x_train)}
        )
        job.log_metrics({"time/pretrain_seconds": history.seconds})
        return model

    key = C.settings_key(C.source_settings(cfg))
    tags = {"dataset": cfg.data.name, "source.classes": classes}
    name = f"pretrain transfer source classes={','.join(map(str, classes))} seed={cfg.seed}"
    return cached_model(
        tracker, job, key, name, tags, train, enabled=cfg.pretrain.get("cache", True)
    )


def given_source_layers(cfg: DictConfig, splits: Splits, tracker: Tracker) -> list:
    """Load the source a .keras path or an MLflow model URI names; its layers that fit."""
    source = cfg.pretrain.source
    with tempfile.TemporaryDirectory() as folder:
        if source.startswith(C.MODEL_URI_SCHEMES):
            try:
                local = tracker.download_model(source, Path(folder))
            except TrackingError as error:
                raise C.ConfigError(f"pretrain.source={source}: {error}") from None
        else:
            local = Path(source).expanduser()
        model = load_source(local, source)
    return matching_layers(model, source, splits.image_shape, cfg.model, C.reuse_layers(cfg))


def check_transfer_source(cfg: DictConfig, splits: Splits, tracker: Tracker) -> None:
    """A given source must load and fit the encoder before any run starts (builtin: by build)."""
    if cfg.pretrain.source != C.BUILTIN_SOURCE:
        given_source_layers(cfg, splits, tracker)


PretrainedLayers = Callable[[DictConfig, Splits, Tracker, RunLog], list]
# pretrain.name -> how it produces the encoder layers the classifier reuses
PRETRAINERS: dict[str, PretrainedLayers] = {
    "autoencoder": autoencoder_layers,
    "greedy": greedy_layers,
    "transfer": transfer_layers,
}
PretrainCheck = Callable[[DictConfig, Splits, Tracker], None]
# pretrain.name -> checks of its inputs that need the data or the store, run by prepare()
PRETRAIN_CHECKS: dict[str, PretrainCheck] = {"transfer": check_transfer_source}


def _fan_out(first: RunLog, second: RunLog, prefix: str):
    def on_epoch_end(epoch: int, logs: Mapping[str, float]) -> None:
        for target in (first, second):
            epoch_logger(target, prefix)(epoch, logs)

    return on_epoch_end


def _log_model(run: RunLog, model: keras.Model, filename: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / filename
        model.save(path)
        run.log_artifact(path, "models")


def _log_reconstructions(run: RunLog, autoencoder, splits: Splits) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reconstructions.png"
        reconstructions_figure(autoencoder, splits.x_valid[:10], path)
        run.log_artifact(path)
