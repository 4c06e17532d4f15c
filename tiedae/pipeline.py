"""One run, top to bottom: validate, load data, pretrain (or load from cache), classify, log."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
from omegaconf import DictConfig, OmegaConf

from tiedae import config as C
from tiedae import provenance as P
from tiedae.baselines import Codes, check_baseline_fits, run_baseline
from tiedae.checks import is_int
from tiedae.classify import evaluate_on_test, evaluate_on_validation, train_classifier
from tiedae.data import (
    Splits,
    data_identity,
    dataset_sources,
    labeled_count,
    labeled_shortfall,
    labels_per_class,
    load_dataset,
    stratified_subset,
)
from tiedae.models import model_family, transplant_encoder
from tiedae.objectives import check_objective, settle_for_labels, train_with_objective
from tiedae.pool import PoolSettings, draw
from tiedae.pretrain import (
    PRETRAINED_ARTIFACT,
    pretrain_autoencoder,
    pretrain_greedy,
    pretrained_layers,
)
from tiedae.probes import log_probes
from tiedae.protocols import (
    LabeledView,
    labeled_view,
    pretraining_holdout,
    pretraining_view,
    protocol_of,
)
from tiedae.report.figures import reconstructions_figure
from tiedae.timing import timed
from tiedae.tracking import (
    LAUNCH,
    LAUNCH_ENV,
    PARENT,
    PRETRAIN_KEY,
    ROLE,
    RUN_KEY,
    SWEEP,
    SWEEP_STARTED,
    DatasetSpec,
    RunLog,
    Tracker,
    TrackingError,
    TrackingSettings,
    load_keras_model,
)
from tiedae.training import (
    Checkpoint,
    FitSettings,
    History,
    configure_runtime,
    predict,
)
from tiedae.transfer import load_source, matching_layers, train_source_classifier

log = logging.getLogger("tiedae")
CLASSIFIER_MODEL = "classifier"  # the logged model of a job run
PRETRAINED_MODEL = "pretrained"  # the logged model of a pretraining run (a cache entry)
EXAMPLE_ROWS = 2  # validation images stored as each logged model's input example


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
        jit=runtime.get("jit", False),
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
        run.log_epoch({f"{prefix}/{name}": value for name, value in logs.items()}, step=epoch)

    return on_epoch_end


def check_labels_fit(cfg: DictConfig, splits: Splits) -> int:
    n_train = len(splits.x_train)
    count = cfg.labels.get("count")
    if cfg.labels.get("fraction") is None and is_int(count) and count > n_train:
        raise C.ConfigError(
            f"labels.count={count} is larger than the {n_train} training images of "
            f"{splits.name}; use at most {n_train} or labels.count=all"
        )
    return labeled_count(n_train, count, cfg.labels.get("fraction"))


ALLOW_FEW = "labels.allow_few_per_class"  # the setting (and the tag) that lets too few run


def labels_needed_per_class(cfg: DictConfig) -> int:
    """Labeled images a class needs: one to be learnt at all, two under budget (one validates)."""
    return protocol_of(cfg.get("protocol")).labels_per_class


def check_labels_per_class(cfg: DictConfig, splits: Splits) -> None:
    """Refuse a labeled subset that leaves some class with fewer images than it needs, unless
    ``labels.allow_few_per_class=true`` (then the run is tagged, ``few_labels_tags``)."""
    if cfg.labels.get("allow_few_per_class"):
        return
    needed = labels_needed_per_class(cfg)
    per_class = labels_per_class(splits, labeled_indices(cfg, splits))
    shortfall = labeled_shortfall(per_class, needed)
    if shortfall is None:
        return
    asked = (
        f"labels.fraction={cfg.labels.fraction}" if cfg.labels.get("fraction") is not None
        else f"labels.count={cfg.labels.count}"
    )  # fmt: skip
    if needed == 1:
        why = "a classifier cannot learn a class it never sees; label more images"
    else:
        why = (
            "protocol=budget needs 2 per class, one to train and one to validate; label more "
            "images, use protocol=fixed"
        )
    raise C.ConfigError(
        f"{asked} leaves {shortfall} in {splits.name}: {why}, or set {ALLOW_FEW}=true to run "
        "anyway (the run is tagged)"
    )


def few_labels_tags(cfg: DictConfig, splits: Splits) -> dict[str, Any]:
    """With ``labels.allow_few_per_class=true``: the setting and the fewest labeled images of a
    class, as tags; nothing otherwise."""
    if not cfg.labels.get("allow_few_per_class"):
        return {}
    per_class = labels_per_class(splits, labeled_indices(cfg, splits))
    return {ALLOW_FEW: True, "labels.min_per_class": int(per_class.min())}


def prepare(cfg: DictConfig) -> tuple[Splits, Tracker]:
    """Everything that can fail on bad input, done before any training starts."""
    C.validate(cfg)
    check_objective(cfg)
    with timed("load data"):
        splits = load_dataset(cfg.data)
        check_labels_per_class(cfg, splits)
    if C.draws_pool(cfg):  # the pool fits the data (a PoolError otherwise), before any run:
        # drawn as the run will, less pretraining's held-out images only where it pretrains
        pretrains = cfg.pretrain.name in C.AUTOENCODERS
        pool_indices(cfg, splits, pretraining_holdout(splits, cfg.protocol) if pretrains else None)
    if C.is_sklearn(cfg):
        check_baseline_fits(cfg.classifier, splits)
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
    cfg = settle_for_labels(cfg, check_labels_fit(cfg, splits))
    configure_runtime(cfg)
    sweep = cfg.sweep.get("name")
    settings = C.run_settings(cfg)
    run_key, parts = C.settings_key(settings), C.key_parts(settings)
    parent = tracker.sweep_parent(sweep) if sweep else None
    launch = os.environ.get(LAUNCH_ENV)  # the sweep process that launched this job, if any
    if sweep and not cfg.force:
        done = tracker.find_finished_job(sweep, run_key)
        if done:
            log.info(
                "skipping %s: run %s already FINISHED with the same key %s (%s); force=true "
                "reruns", C.run_name(cfg), done, run_key, _describe(parts),
            )  # fmt: skip
            tracker.note_skipped(parent, run_key, launch)
            return {}
        _explain_new_key(tracker, "job", C.run_name(cfg), sweep, parts)
    tags = {
        ROLE: "job", RUN_KEY: run_key, "method": C.method_name(cfg), "dataset": splits.name,
        "tied": cfg.model.tied if C.has_decoder(cfg) else "n/a",
        "pretrained": C.is_pretrained(cfg), "labels": C.labels_label(cfg), "seed": cfg.seed,
        **provenance_tags(cfg, parts), COMMAND: P.command_line(),
        "protocol": C.protocol_name(cfg), **few_labels_tags(cfg, splits),
    }  # fmt: skip
    if sweep:
        tags[SWEEP] = sweep
    if launch:
        tags[LAUNCH] = launch
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


COMMAND = "tiedae.command"
KEY_PART = "tiedae.key."  # + data | code | settings: the digests of a key's parts


def provenance_tags(cfg: DictConfig, parts: Mapping[str, str]) -> dict[str, str]:
    """What a run read and ran, for people and for explaining a changed key."""
    data, code, git = data_identity(cfg.data), P.code_identity(), P.git_state()
    return {
        **{f"{KEY_PART}{name}": digest for name, digest in parts.items()},
        "tiedae.data.name": data["name"], "tiedae.data.files": data["files"],
        "tiedae.data.digest": data["digest"], "tiedae.code.version": code["version"],
        "tiedae.code.source": code["source"], "tiedae.git.commit": git["commit"],
        "tiedae.git.dirty": git["dirty"],
    }  # fmt: skip


def _describe(parts: Mapping[str, str]) -> str:
    return ", ".join(f"{name} {digest}" for name, digest in parts.items())


def _explain_new_key(
    tracker: Tracker, role: str, name: str, sweep: str | None, parts: Mapping[str, str]
) -> str | None:
    """When an older FINISHED run of the same name has another key: log which part changed."""
    older = tracker.latest_finished(role, name, sweep)
    if older is None:
        return None
    old_parts = {p: older[1].get(f"{KEY_PART}{p}", "") for p in ("data", "code", "settings")}
    changed = C.changed_parts(old_parts, parts)
    if not any(old_parts.values()):
        reason = "it predates keys with provenance"
    elif changed:
        reason = " and ".join(changed) + " changed"
    else:
        return None
    log.info("%s: not reusing run %s of the same name: %s", name, older[0], reason)
    return reason


def _train_and_log(cfg: DictConfig, splits: Splits, tracker: Tracker, run: RunLog) -> dict:
    """Draw the labeled subset, train the classifier (a network, or a scikit-learn baseline),
    and log its test metrics: the one place the two kinds part ways."""
    labeled = labeled_indices(cfg, splits)
    view = labeled_view(splits, labeled, cfg.protocol, cfg.seed)
    run.log_params({"labels.n": len(labeled), "labels.n_valid": _n_valid(view)})
    run.set_tags({"protocol.validation": view.validation})
    run.log_datasets(dataset_inputs(cfg.data, view.splits, view.labeled))
    train = _train_baseline if C.is_sklearn(cfg) else _train_network
    results = train(cfg, splits, view, tracker, run)
    run.log_metrics(results)
    return results


def labeled_indices(cfg: DictConfig, splits: Splits) -> np.ndarray:
    """The run's labeled images (training and validating ones): a stratified subset of the
    training split, drawn from (seed, N) alone."""
    return stratified_subset(splits.y_train, check_labels_fit(cfg, splits), cfg.seed)


def pool_indices(
    cfg: DictConfig, splits: Splits, held_out: np.ndarray | None = None
) -> tuple[Splits, np.ndarray]:
    """The training split of every class and the indices in it of the unlabeled pool that
    ``unlabeled.*`` asks for (tiedae/pool.py); ``held_out`` (indices into ``splits``' training
    images: pretraining's validation) never enters it, nor do the labeled images unless
    ``unlabeled.include_labeled``. PoolError when the data has too few images for it."""
    task = list(cfg.data.classes) if cfg.data.get("classes") else None
    full = load_classes(cfg.data, None) if task else splits
    in_full = np.flatnonzero(np.isin(full.y_train, task)) if task else np.arange(len(full.y_train))
    settings = PoolSettings.from_config(cfg.get("unlabeled"))
    labeled = None if settings.include_labeled else in_full[labeled_indices(cfg, splits)]
    indices = draw(
        full.y_train, task, settings, cfg.seed, labeled=labeled,
        held_out=None if held_out is None else in_full[held_out], n_classes=full.n_classes,
    )  # fmt: skip
    return full, indices


def drawn_pool(
    cfg: DictConfig, splits: Splits, run: RunLog, held_out: np.ndarray | None = None
) -> np.ndarray:
    """The pool's images (``pool_indices``), logged as the run's dataset input ``unlabeled``
    with its size and how many of its images come from outside the labeled task."""
    full, indices = pool_indices(cfg, splits, held_out)
    task = list(cfg.data.classes) if cfg.data.get("classes") else range(full.n_classes)
    outside = int(np.count_nonzero(~np.isin(full.y_train[indices], task)))
    run.log_params({"unlabeled.n": len(indices), "unlabeled.n_outside": outside})
    source = dataset_sources(cfg.data)["train"]
    run.log_datasets([DatasetSpec(
        f"{full.name}-unlabeled-{len(indices)}", (full.x_train, full.y_train, indices), source,
        "unlabeled", {"num_rows": len(indices), "outside_classes": outside},
    )])  # fmt: skip
    return full.x_train[indices]


def _n_valid(view: LabeledView) -> int:
    """How many labeled images validate: 0 under a fixed epoch budget."""
    return 0 if view.validation == "fixed_epochs" else len(view.splits.y_valid)


def _train_network(
    cfg: DictConfig, splits: Splits, view: LabeledView, tracker: Tracker, run: RunLog
) -> dict[str, float]:
    pretrained = None
    if C.is_pretrained(cfg):
        pretrained = PRETRAINERS[cfg.pretrain.name](cfg, splits, tracker, run)
    checkpoint = run_checkpoint(cfg, tracker.checkpoint_dir(run.run_id), run, "clf")
    settings = fit_settings(cfg, cfg.classifier, cfg.classifier.patience, checkpoint)
    if view.fixed_epochs:  # too few labels to validate: a fixed budget, no early stopping
        settings = replace(settings, epochs=view.fixed_epochs, patience=None)
    with timed("train"):
        if C.uses_objective(cfg):
            classifier, history = _train_with_objective(
                cfg, splits, view, settings, pretrained, run
            )
        else:
            classifier, history = train_classifier(
                view.splits, view.labeled, cfg.model, cfg.classifier, settings,
                pretrained=pretrained, reuse=C.reuse_layers(cfg),
                on_epoch_end=epoch_logger(run, "clf"),
            )  # fmt: skip
    with timed("evaluate"):
        test = evaluate_on_test(classifier, splits, cfg.runtime.validation_batch_size)
    results = {f"test/{name}": value for name, value in test.items()}
    if history.best_epoch is not None:
        # The weights kept are those of the lowest validation loss; their validation metrics,
        # measured again, are the last points of the curves (clf/restored_val_*), so they are
        # not mistaken for the epochs that ran after the best one.
        with timed("evaluate"):
            restored = evaluate_on_validation(
                classifier, view.splits, cfg.runtime.validation_batch_size
            )
        best = history.best_epoch
        run.log_metrics({f"clf/restored_val_{k}": v for k, v in restored.items()}, step=best)
        results["clf/val_accuracy_at_best"] = restored["accuracy"]
        results["clf/best_epoch"] = best
    results["params/classifier"] = classifier.count_params()
    results["params/classifier_trainable"] = sum(
        int(v.numpy().size) for v in classifier.trainable_variables
    )
    results["time/classifier_seconds"] = history.seconds
    if cfg.tracking.get("job_models", "every") == "every":
        run.log_model(classifier, CLASSIFIER_MODEL, splits.x_train[:EXAMPLE_ROWS])
    return results


def _train_with_objective(
    cfg: DictConfig,
    splits: Splits,
    view: LabeledView,
    settings: FitSettings,
    pretrained: list | None,
    run: RunLog,
) -> tuple[keras.Model, History]:
    """The classifier stage under a semi-supervised objective (tiedae/objectives): the labeled
    subset, validated as the protocol says, and, unlabeled, every training image (every class's
    with ``pretrain.images=all``), plus a dataset's own unlabeled images (npz ``x_unlabeled``)."""
    every_class = cfg.pretrain.get("images", "selected") == "all" and bool(cfg.data.get("classes"))
    if C.draws_pool(cfg):
        pool = drawn_pool(cfg, splits, run)
    else:
        pool = (load_classes(cfg.data, None) if every_class else view.splits).pretrain_images
    run.log_params({"objective.n_unlabeled": len(pool)})
    classifier, history, objective = train_with_objective(
        cfg, view.splits, view.labeled, pool, settings,
        pretrained=pretrained, on_epoch_end=epoch_logger(run, "clf"),
        early_stopping=not view.fixed_epochs,
    )  # fmt: skip
    run.log_metrics({"params/objective_trainable": objective.count_parameters()})
    return classifier, history


def _train_baseline(
    cfg: DictConfig, splits: Splits, view: LabeledView, tracker: Tracker, run: RunLog
) -> dict[str, float]:
    codes = pretrained_codes(cfg, splits, tracker, run) if C.on_codes(cfg) else None
    with timed("train"):
        baseline = run_baseline(
            view.splits, view.labeled, cfg.classifier, cfg.seed, choose=view.fixed_epochs is None,
            codes=codes,
        )  # fmt: skip
    results = {f"test/{name}": value for name, value in baseline.test.items()}
    if baseline.val_accuracy is not None:
        results["clf/val_accuracy_at_best"] = baseline.val_accuracy
    results["clf/chosen_regularization"] = baseline.chosen
    results["params/classifier"] = baseline.n_parameters
    results["time/classifier_seconds"] = baseline.seconds
    return results


def pretrained_codes(cfg: DictConfig, splits: Splits, tracker: Tracker, run: RunLog) -> Codes:
    """``classifier.features=codes``: the pretrained encoder (from the cache, or pretrained now
    as for a network's classifier), its lowest ``classifier.reuse_layers`` layers frozen in
    the classifier's shape without the head: what the estimator reads instead of pixels."""
    layers = PRETRAINERS[cfg.pretrain.name](cfg, splits, tracker, run)
    reuse = C.reuse_layers(cfg)
    network = model_family(cfg.model).classifier(
        splits.image_shape, cfg.model, splits.n_classes, reuse
    )
    transplant_encoder(network, layers[:reuse], trainable=False)
    encoder = keras.Model(network.inputs, network.layers[-2].output)  # below the head
    batch = cfg.runtime.validation_batch_size
    return Codes(lambda images: predict(encoder, images, batch), encoder.count_params())


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
    example: np.ndarray | None = None,
    newer_than: int | None = None,
) -> keras.Model:
    """The model stored under ``key`` by an earlier pretraining run, or ``train`` it now.

    ``train`` runs inside a new pretraining run nested under ``job``; the model is logged last,
    and only FINISHED runs are looked up, so a killed run never leaves a usable half entry.
    A machine-wide lock per key makes parallel jobs with the same key train it once.
    With ``enabled=False`` (``pretrain.cache=false``) it always trains, logged as on a miss.
    The model is logged as the MLflow model ``pretrained``, ``example`` its input example.
    With ``newer_than`` (``force=true``) only entries started at or after it are loaded.
    """
    job.set_tags({PRETRAIN_KEY: key})
    if not enabled:
        job.set_tags({"pretrain.cache": "off"})
        return _train_and_store(tracker, job, key, name, tags, train, example)
    parts = {k[len(KEY_PART) :]: v for k, v in tags.items() if k.startswith(KEY_PART)}
    with tracker.lock(f"pretrain-{key}"), tempfile.TemporaryDirectory() as folder:
        cached = _load_cached(tracker, key, Path(folder), newer_than)
        if cached:
            cached_run, model = cached
            log.info(
                "pretraining cache hit: key %s (%s) matched run %s; loaded it",
                key, _describe(parts), cached_run,
            )  # fmt: skip
            print(f"pretraining cache hit ({key}): loaded, not trained", flush=True)
            job.set_tags({"pretrain.cache": "hit", "pretrain.run_id": cached_run})
            return model
        if newer_than:
            log.info("pretraining cache: force=true, so %s is trained anew (key %s)", name, key)
        else:
            _explain_new_key(tracker, "pretrain", name, None, parts)
        job.set_tags({"pretrain.cache": "forced" if newer_than else "miss"})
        return _train_and_store(tracker, job, key, name, tags, train, example)


def force_since(cfg: DictConfig, tracker: Tracker) -> int | None:
    """With ``force=true``: the time (ms) from which cache entries count — the start of this
    sweep (so its jobs share what it retrains), or now for a single run; None otherwise."""
    if not cfg.get("force"):
        return None
    sweep = cfg.sweep.get("name")
    parent = tracker.sweep_parent(sweep, create=False) if sweep else None
    started = tracker.run_tags(parent).get(SWEEP_STARTED) if parent else None
    return int(started) if started else int(time.time() * 1000)


def _train_and_store(
    tracker: Tracker, job: RunLog, key: str, name: str, tags: Mapping[str, Any],
    train: TrainModel, example: np.ndarray | None = None,
) -> keras.Model:  # fmt: skip
    """Train in a new pretraining run under ``job``, or continue the one a killed attempt of
    this job left with a checkpoint (in the job's checkpoint folder, which makes the job
    resumable: ``pretrain_checkpoints``). The model is logged as the MLflow model
    ``pretrained``, ``example`` its input example."""
    tags = {**tags, ROLE: "pretrain", PRETRAIN_KEY: key}
    resume = tracker.find_resumable(
        {ROLE: "pretrain", PRETRAIN_KEY: key, PARENT: job.run_id},
        lambda run_id: pretrain_checkpoints(tracker, job, run_id),
    )
    with tracker.run(name, tags, job.run_id, resume=resume) as run:
        with timed("pretrain", unless_in=("pretrain",)):
            model = train(run)
        if example is None:
            example = np.zeros((EXAMPLE_ROWS, *model.input_shape[1:]), dtype=np.float32)
        run.log_model(model, PRETRAINED_MODEL, example)
    shutil.rmtree(pretrain_checkpoints(tracker, job, run.run_id), ignore_errors=True)
    job.set_tags({"pretrain.run_id": run.run_id})
    return model


def pretrain_checkpoints(tracker: Tracker, job: RunLog, run_id: str) -> Path:
    """The checkpoint folder of pretraining run ``run_id`` nested under ``job``."""
    return tracker.checkpoint_dir(job.run_id) / "pretrain" / run_id


def _load_cached(
    tracker: Tracker, key: str, folder: Path, newer_than: int | None = None
) -> tuple[str, keras.Model] | None:
    """The newest cache entry for ``key`` that loads; an unreadable one is skipped, with a
    warning, and the model is trained anew (its FINISHED run stays, for a person to inspect).
    Entries are logged models; runs from before models were logged hold a ``.keras`` file.
    An entry this process loaded before is not downloaded again (``_IN_MEMORY``): a FINISHED
    run's model never changes, and classifiers copy its weights, never train it."""
    with timed("load cache"):
        newest = tracker.pretrained_runs(key, newer_than)
    if newest and newest[0] in _IN_MEMORY:
        return newest[0], _IN_MEMORY[newest[0]]
    loaded = _download_cached(tracker, key, folder, newer_than)
    if loaded:
        _IN_MEMORY[loaded[0]] = loaded[1]
        while len(_IN_MEMORY) > IN_MEMORY_KEPT:
            _IN_MEMORY.pop(next(iter(_IN_MEMORY)))
    return loaded


# pretraining run id -> its model, as loaded from the store by this process (sweep workers
# load each autoencoder once, not once per job)
_IN_MEMORY: dict[str, keras.Model] = {}
IN_MEMORY_KEPT = 16


def _download_cached(
    tracker: Tracker, key: str, folder: Path, newer_than: int | None = None
) -> tuple[str, keras.Model] | None:
    with timed("load cache"):
        cached = tracker.find_pretrained(
            key, PRETRAINED_MODEL, PRETRAINED_ARTIFACT, folder, newer_than
        )
    if cached is None:
        return None
    cached_run, local_path = cached
    try:
        with timed("load cache"):
            return cached_run, load_keras_model(local_path)
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
    own = pretraining_view(splits, cfg.protocol)  # the selected classes' images it may read

    def train(run: RunLog) -> keras.Model:
        run.log_params(C.flatten(C.pretrain_settings(cfg)))
        run.set_tags({"protocol": C.protocol_name(cfg)})
        images = own
        if C.draws_pool(cfg):  # the pool less pretraining's held-out validation images
            held_out = pretraining_holdout(splits, cfg.protocol)
            images = replace(own, x_train=drawn_pool(cfg, splits, run, held_out), x_unlabeled=None)
        elif every_class:
            images = pretraining_view(load_classes(cfg.data, None), cfg.protocol)
        run.log_params({"pretrain.n_images": len(images.pretrain_images)})
        run.log_datasets(dataset_inputs(cfg.data, images, contexts=("training",)))
        checkpoint = run_checkpoint(cfg, pretrain_checkpoints(tracker, job, run.run_id), run, "ae")
        autoencoder, history = pretrain(
            images, cfg.model, cfg.pretrain, fit_settings(cfg, cfg.pretrain, None, checkpoint),
            _fan_out(job, run, "ae"),
        )  # fmt: skip
        final = {f"ae/{k}": v for k, v in history.last.items()}
        run.log_metrics({**final, "time/pretrain_seconds": history.seconds})
        job.log_metrics({"time/pretrain_seconds": history.seconds})
        log_probes(run, autoencoder.encoder, splits, own.x_valid, own.y_valid, cfg)
        _log_reconstructions(run, autoencoder, own)  # the pretraining run's, drawn once
        return autoencoder

    settings = C.pretrain_settings(cfg)
    key = C.settings_key(settings)
    tags = {"tied": cfg.model.tied, "dataset": splits.name, COMMAND: P.command_line(),
            **provenance_tags(cfg, C.key_parts(settings))}  # fmt: skip
    pool = " all classes" if every_class else ""
    name = f"pretrain {cfg.model.name}-{cfg.pretrain.name}{pool} seed={cfg.seed}"
    autoencoder = cached_model(
        tracker, job, key, name, tags, train, enabled=cfg.pretrain.get("cache", True),
        example=splits.x_train[:EXAMPLE_ROWS],
        newer_than=force_since(cfg, tracker),
    )  # fmt: skip
    job.log_metrics({"params/autoencoder": autoencoder.count_params()})
    return pretrained_layers(autoencoder)


def greedy_layers(
    cfg: DictConfig, splits: Splits, tracker: Tracker, job: RunLog
) -> list[keras.layers.Dense]:
    """Greedy layer-wise pretraining, cached like the whole-stack autoencoder."""
    return autoencoder_layers(cfg, splits, tracker, job, pretrain=pretrain_greedy)


def load_classes(data_cfg: DictConfig, classes: list[int] | None) -> Splits:
    """The configured dataset with other classes kept (None: every class)."""
    with timed("load data"):
        return load_dataset(OmegaConf.merge(data_cfg, {"classes": classes}))


# --- transfer from a related task --------------------------------------------------------


def transfer_layers(cfg: DictConfig, splits: Splits, tracker: Tracker, job: RunLog) -> list:
    """The lowest reused layers of the source network: builtin (trained once, cached) or given."""
    job.set_tags({"transfer.source": cfg.pretrain.source})
    if cfg.pretrain.source != C.BUILTIN_SOURCE:
        return given_source_layers(cfg, splits, tracker)
    model = builtin_source(cfg, tracker, job, splits.x_train[:EXAMPLE_ROWS])
    return matching_layers(
        model, C.BUILTIN_SOURCE, splits.image_shape, cfg.model, C.reuse_layers(cfg)
    )


def builtin_source(
    cfg: DictConfig, tracker: Tracker, job: RunLog, example: np.ndarray | None = None
) -> keras.Model:
    """A classifier trained with every label of the source classes, cached by its settings;
    ``example`` (a few images) is its logged model's input example."""
    classes = C.source_classes(cfg)

    def train(run: RunLog) -> keras.Model:
        run.log_params({**C.flatten(C.source_settings(cfg)), "source.classes": classes})
        run.set_tags({"protocol": C.protocol_name(cfg)})
        source = pretraining_view(load_classes(cfg.data, classes), cfg.protocol)
        run.log_datasets(dataset_inputs(cfg.data, source, contexts=("training",)))
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
        target = load_dataset(cfg.data)  # the probes ask how well its codes serve the target
        held_out = pretraining_view(target, cfg.protocol)
        codes = keras.Model(model.inputs, model.layers[-2].output)  # below the output head
        log_probes(run, codes, target, held_out.x_valid, held_out.y_valid, cfg)
        return model

    settings = C.source_settings(cfg)
    key = C.settings_key(settings)
    tags = {"dataset": cfg.data.name, "source.classes": classes, COMMAND: P.command_line(),
            **provenance_tags(cfg, C.key_parts(settings))}  # fmt: skip
    name = f"pretrain transfer source classes={','.join(map(str, classes))} seed={cfg.seed}"
    return cached_model(
        tracker, job, key, name, tags, train, enabled=cfg.pretrain.get("cache", True),
        example=example,
        newer_than=force_since(cfg, tracker),
    )  # fmt: skip


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


def dataset_inputs(
    data_cfg: DictConfig,
    splits: Splits,
    labeled: np.ndarray | None = None,
    contexts: tuple[str, ...] = ("training", "labeled", "validation", "test"),
) -> list[DatasetSpec]:
    """What a run read, as MLflow dataset inputs: every training image, the labeled subset (its
    count in the name), validation and test, each with its digest and source files."""
    sources = dataset_sources(data_cfg)
    chosen = data_cfg.get("classes")
    base = f"{splits.name}[{','.join(map(str, chosen))}]" if chosen else splits.name
    profile = {"classes": splits.n_classes}
    specs = {
        "training": DatasetSpec(f"{base}-train", (splits.x_train, splits.y_train),
                                sources["train"], "training", profile),
        "validation": DatasetSpec(f"{base}-validation", (splits.x_valid, splits.y_valid),
                                  sources["train"], "validation", profile),
        "test": DatasetSpec(f"{base}-test", (splits.x_test, splits.y_test), sources["test"],
                            "test", profile),
    }  # fmt: skip
    if labeled is not None:
        count = len(labeled)
        specs["labeled"] = DatasetSpec(
            f"{base}-labeled-{count}", (splits.x_train, splits.y_train, labeled),
            sources["train"], "labeled", {**profile, "num_rows": count, "labeled": count},
        )  # fmt: skip
    return [specs[context] for context in contexts if context in specs]


def _log_reconstructions(run: RunLog, autoencoder, splits: Splits) -> None:
    with timed("log figures"), tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reconstructions.png"
        reconstructions_figure(autoencoder, splits.x_valid[:10], path)
        run.log_artifact(path)
