"""One run, top to bottom: validate, load data, pretrain (or load from cache), classify, log.

The stages live beside it: what a run reads (``run_inputs``), how its training is set up and
logged (``fitting``), the pretrainings (``pretrainings``, their shared runs in ``pretrainers``)
and their cache (``pretrain_cache``), the tags of its key (``run_keys``)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import keras
from omegaconf import DictConfig, OmegaConf

from tiedae import config as C
from tiedae import provenance as P
from tiedae.baselines import Codes, check_baseline_fits, run_baseline
from tiedae.classify import evaluate_on_test, evaluate_on_validation, train_classifier
from tiedae.config.resolved import RunSpec, resolve
from tiedae.data import (
    Splits,
    load_dataset,
)
from tiedae.fitting import epoch_logger, fit_settings, run_checkpoint
from tiedae.models import model_family, transplant_encoder
from tiedae.objectives import check_objective, settle_for_labels, train_with_objective
from tiedae.pretrain_cache import EXAMPLE_ROWS
from tiedae.pretrainings import PRETRAININGS
from tiedae.protocols import (
    LabeledView,
    labeled_view,
    pretraining_holdout,
)
from tiedae.run_inputs import (
    check_labels_fit,
    check_labels_per_class,
    dataset_inputs,
    drawn_pool,
    few_labels_tags,
    labeled_indices,
    load_classes,
    pool_indices,
)
from tiedae.run_keys import COMMAND, describe, explain_new_key, provenance_tags
from tiedae.runtime import configure_runtime
from tiedae.timing import timed
from tiedae.tracking import (
    LAUNCH,
    LAUNCH_ENV,
    ROLE,
    RUN_KEY,
    SWEEP,
    RunLog,
    Tracker,
    TrackingSettings,
)
from tiedae.training import FitSettings, History, predict

log = logging.getLogger("tiedae")
CLASSIFIER_MODEL = "classifier"  # the logged model of a job run


def prepare(cfg: DictConfig) -> tuple[Splits, Tracker]:
    """Everything that can fail on bad input, done before any training starts."""
    C.validate(cfg)
    check_objective(cfg)
    with timed("load data"):
        splits = load_dataset(cfg.data)
        check_labels_per_class(cfg, splits)
    if C.draws_pool(cfg):  # the pool fits the data (a PoolError otherwise), before any run:
        # drawn as the run will, less pretraining's held-out images only where it pretrains
        pretrains = C.has_decoder(cfg)
        pool_indices(cfg, splits, pretraining_holdout(splits, cfg.protocol) if pretrains else None)
    if C.is_sklearn(cfg):
        check_baseline_fits(cfg.classifier, splits)
    tracker = Tracker(TrackingSettings.from_config(cfg.tracking)).connect()
    PRETRAININGS[cfg.pretrain.name].check_inputs(cfg, splits, tracker)
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


def job_spec(cfg: DictConfig, splits: Splits) -> RunSpec:
    """The job, resolved (names, keys and identities, derived once for every stage): ``cfg``
    with its objective's settings for its labeled count. ``tiedae.plan`` keys jobs with it."""
    return resolve(settle_for_labels(cfg, check_labels_fit(cfg, splits)))


def _run_job(cfg: DictConfig, job_log: Path | None) -> dict[str, float]:
    splits, tracker = prepare(cfg)
    spec = job_spec(cfg, splits)
    cfg = spec.cfg
    configure_runtime(cfg)
    sweep = cfg.sweep.get("name")
    run_key, parts = spec.job.key, spec.job.parts
    parent = tracker.sweep_parent(sweep) if sweep else None
    launch = os.environ.get(LAUNCH_ENV)  # the sweep process that launched this job, if any
    if sweep and not cfg.force:
        done = tracker.find_finished_job(sweep, run_key)
        if done:
            log.info(
                "skipping %s: run %s already FINISHED with the same key %s (%s); force=true "
                "reruns", spec.name, done, run_key, describe(parts),
            )  # fmt: skip
            tracker.note_skipped(parent, run_key, launch)
            return {}
        explain_new_key(tracker, "job", spec.name, sweep, parts)
    tags = {
        ROLE: "job", RUN_KEY: run_key, "method": spec.method, "dataset": splits.name,
        "tied": cfg.model.tied if spec.decoder else "n/a",
        "pretrained": spec.pretrained, "labels": spec.labels, "seed": spec.seed,
        **provenance_tags(cfg, parts), COMMAND: P.command_line(),
        "protocol": spec.protocol, **few_labels_tags(cfg, splits),
    }  # fmt: skip
    if sweep:
        tags[SWEEP] = sweep
    if launch:
        tags[LAUNCH] = launch
    resume = tracker.find_resumable({k: v for k, v in tags.items() if k in (ROLE, RUN_KEY, SWEEP)})
    if resume:
        log.info("%s: resuming run %s from its checkpoint", spec.name, resume)
    with tracker.run(spec.name, tags, parent_run_id=parent, resume=resume) as run:
        if not resume:  # a resumed run keeps its params (runtime options may differ now)
            run.log_params(C.flatten(cfg))
            run.log_text(OmegaConf.to_yaml(cfg), "config.yaml")
        results = _train_and_log(spec, splits, tracker, run)
        log.info("%s: test accuracy %.4f", spec.name, results["test/accuracy"])
        print(f"test accuracy: {results['test/accuracy']:.4f}  ({spec.name})", flush=True)
        if job_log is not None:
            run.log_artifact(job_log, "logs")
    shutil.rmtree(tracker.checkpoint_dir(run.run_id), ignore_errors=True)
    return results


def _train_and_log(spec: RunSpec, splits: Splits, tracker: Tracker, run: RunLog) -> dict:
    """Draw the labeled subset, train the classifier (a network, or a scikit-learn baseline),
    and log its test metrics: the one place the two kinds part ways."""
    cfg = spec.cfg
    labeled = labeled_indices(cfg, splits)
    view = labeled_view(splits, labeled, cfg.protocol, cfg.seed)
    run.log_params({"labels.n": len(labeled), "labels.n_valid": _n_valid(view)})
    run.set_tags({"protocol.validation": view.validation})
    run.log_datasets(dataset_inputs(cfg.data, view.splits, view.labeled))
    train = _train_baseline if spec.sklearn else _train_network
    results = train(spec, splits, view, tracker, run)
    run.log_metrics(results)
    return results


def _n_valid(view: LabeledView) -> int:
    """How many labeled images validate: 0 under a fixed epoch budget."""
    return 0 if view.validation == "fixed_epochs" else len(view.splits.y_valid)


def _train_network(
    spec: RunSpec, splits: Splits, view: LabeledView, tracker: Tracker, run: RunLog
) -> dict[str, float]:
    cfg, pretrained = spec.cfg, None
    if spec.pretrained:
        pretrained = PRETRAININGS[spec.pretraining].layers(spec, splits, tracker, run)
    checkpoint = run_checkpoint(cfg, tracker.checkpoint_dir(run.run_id), run, "clf")
    settings = fit_settings(cfg, cfg.classifier, cfg.classifier.patience, checkpoint)
    if view.fixed_epochs:  # too few labels to validate: a fixed budget, no early stopping
        settings = replace(settings, epochs=view.fixed_epochs, patience=None)
    with timed("train"):
        if spec.objective:
            classifier, history = _train_with_objective(
                spec, splits, view, settings, pretrained, run
            )
        else:
            classifier, history = train_classifier(
                view.splits, view.labeled, cfg.model, cfg.classifier, settings,
                pretrained=pretrained, reuse=spec.reuse,
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
    spec: RunSpec,
    splits: Splits,
    view: LabeledView,
    settings: FitSettings,
    pretrained: list | None,
    run: RunLog,
) -> tuple[keras.Model, History]:
    """The classifier stage under a semi-supervised objective (tiedae/objectives): the labeled
    subset, validated as the protocol says, and, unlabeled, every training image (every class's
    with ``pretrain.images=all``), plus a dataset's own unlabeled images (npz ``x_unlabeled``)."""
    cfg = spec.cfg
    every_class = cfg.pretrain.get("images", "selected") == "all" and bool(cfg.data.get("classes"))
    if spec.draws_pool:
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
    spec: RunSpec, splits: Splits, view: LabeledView, tracker: Tracker, run: RunLog
) -> dict[str, float]:
    cfg = spec.cfg
    codes = pretrained_codes(spec, splits, tracker, run) if spec.on_codes else None
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


def pretrained_codes(spec: RunSpec, splits: Splits, tracker: Tracker, run: RunLog) -> Codes:
    """``classifier.features=codes``: the pretrained encoder (from the cache, or pretrained now
    as for a network's classifier), its lowest ``classifier.reuse_layers`` layers frozen in
    the classifier's shape without the head: what the estimator reads instead of pixels."""
    cfg, reuse = spec.cfg, spec.reuse
    layers = PRETRAININGS[spec.pretraining].layers(spec, splits, tracker, run)
    network = model_family(cfg.model).classifier(
        splits.image_shape, cfg.model, splits.n_classes, reuse
    )
    transplant_encoder(network, layers[:reuse], trainable=False)
    encoder = keras.Model(network.inputs, network.layers[-2].output)  # below the head
    batch = cfg.runtime.validation_batch_size
    return Codes(lambda images: predict(encoder, images, batch), encoder.count_params())
