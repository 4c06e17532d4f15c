"""The pretraining runs the builtin pretrainings share (``tiedae/pretrainings/`` declares each
and calls these from its ``layers``): the autoencoder (whole stack or greedy, layer by layer)
and transfer from a related task, each cached by its settings (``tiedae/pretrain_cache.py``)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
from omegaconf import DictConfig

from tiedae import config as C
from tiedae import provenance as P
from tiedae.classify import evaluate_on_test
from tiedae.config.resolved import RunSpec
from tiedae.data import (
    Splits,
    load_dataset,
)
from tiedae.fitting import fan_out, fit_settings, run_checkpoint
from tiedae.pretrain import (
    pretrain_autoencoder,
    pretrained_layers,
)
from tiedae.pretrain_cache import EXAMPLE_ROWS, cached_model, force_since, pretrain_checkpoints
from tiedae.probes import log_probes
from tiedae.protocols import pretraining_holdout, pretraining_view
from tiedae.report.figures import reconstructions_figure
from tiedae.run_inputs import dataset_inputs, drawn_pool, load_classes
from tiedae.run_keys import COMMAND, provenance_tags
from tiedae.timing import timed
from tiedae.tracking import (
    RunLog,
    Tracker,
    TrackingError,
)
from tiedae.transfer import load_source, matching_layers, train_source_classifier

log = logging.getLogger("tiedae")


PretrainFunction = Callable[..., tuple[keras.Model, Any]]


def autoencoder_layers(
    spec: RunSpec, splits: Splits, tracker: Tracker, job: RunLog,
    pretrain: PretrainFunction = pretrain_autoencoder,
) -> list[keras.layers.Dense]:  # fmt: skip
    """Pretrain (or load) the autoencoder with ``pretrain``; its encoder's Dense layers."""
    cfg = spec.cfg
    every_class = cfg.pretrain.get("images", "selected") == "all" and bool(cfg.data.get("classes"))
    own = pretraining_view(splits, cfg.protocol)  # the selected classes' images it may read

    def train(run: RunLog) -> keras.Model:
        run.log_params(C.flatten(spec.pretrain.settings))
        run.set_tags({"protocol": spec.protocol})
        images = own
        if spec.draws_pool:  # the pool less pretraining's held-out validation images
            held_out = pretraining_holdout(splits, cfg.protocol)
            images = replace(own, x_train=drawn_pool(cfg, splits, run, held_out), x_unlabeled=None)
        elif every_class:
            images = pretraining_view(load_classes(cfg.data, None), cfg.protocol)
        run.log_params({"pretrain.n_images": len(images.pretrain_images)})
        run.log_datasets(dataset_inputs(cfg.data, images, contexts=("training",)))
        checkpoint = run_checkpoint(cfg, pretrain_checkpoints(tracker, job, run.run_id), run, "ae")
        autoencoder, history = pretrain(
            images, cfg.model, cfg.pretrain, fit_settings(cfg, cfg.pretrain, None, checkpoint),
            fan_out(job, run, "ae"),
        )  # fmt: skip
        final = {f"ae/{k}": v for k, v in history.last.items()}
        run.log_metrics({**final, "time/pretrain_seconds": history.seconds})
        job.log_metrics({"time/pretrain_seconds": history.seconds})
        log_probes(run, autoencoder.encoder, splits, own.x_valid, own.y_valid, cfg)
        _log_reconstructions(run, autoencoder, own)  # the pretraining run's, drawn once
        return autoencoder

    key = spec.pretrain.key
    tags = {"tied": cfg.model.tied, "dataset": splits.name, COMMAND: P.command_line(),
            **provenance_tags(cfg, spec.pretrain.parts)}  # fmt: skip
    pool = " all classes" if every_class else ""
    name = f"pretrain {cfg.model.name}-{cfg.pretrain.name}{pool} seed={cfg.seed}"
    autoencoder = cached_model(
        tracker, job, key, name, tags, train, enabled=cfg.pretrain.get("cache", True),
        example=splits.x_train[:EXAMPLE_ROWS],
        newer_than=force_since(cfg, tracker),
    )  # fmt: skip
    job.log_metrics({"params/autoencoder": autoencoder.count_params()})
    return pretrained_layers(autoencoder)


# --- transfer from a related task --------------------------------------------------------


def transfer_layers(spec: RunSpec, splits: Splits, tracker: Tracker, job: RunLog) -> list:
    """The lowest reused layers of the source network: builtin (trained once, cached) or given."""
    cfg = spec.cfg
    job.set_tags({"transfer.source": cfg.pretrain.source})
    if cfg.pretrain.source != C.BUILTIN_SOURCE:
        return given_source_layers(cfg, splits, tracker)
    model = builtin_source(cfg, tracker, job, splits.x_train[:EXAMPLE_ROWS])
    return matching_layers(model, C.BUILTIN_SOURCE, splits.image_shape, cfg.model, spec.reuse)


def builtin_source(
    cfg: DictConfig, tracker: Tracker, job: RunLog, example: np.ndarray | None = None
) -> keras.Model:
    """A classifier trained with every label of the source classes, cached by its settings;
    ``example`` (a few images) is its logged model's input example."""
    classes = C.source_classes(cfg)
    settings = C.source_settings(cfg)  # the source's key and its logged params

    def train(run: RunLog) -> keras.Model:
        run.log_params({**C.flatten(settings), "source.classes": classes})
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
            fan_out(job, run, "source"),
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


def _log_reconstructions(run: RunLog, autoencoder, splits: Splits) -> None:
    with timed("log figures"), tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reconstructions.png"
        reconstructions_figure(autoencoder, splits.x_valid[:10], path)
        run.log_artifact(path)
