"""The pretraining cache: a model stored under its key by a FINISHED pretraining run, loaded by
every later job (once per process), or trained now in a new pretraining run nested under the
job, resumable from its checkpoints."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
from omegaconf import DictConfig

from tiedae.pretrain import (
    PRETRAINED_ARTIFACT,
)
from tiedae.run_keys import KEY_PART, describe, explain_new_key
from tiedae.timing import timed
from tiedae.tracking import (
    PARENT,
    PRETRAIN_KEY,
    ROLE,
    SWEEP_STARTED,
    RunLog,
    Tracker,
    load_keras_model,
)

log = logging.getLogger("tiedae")


PRETRAINED_MODEL = "pretrained"  # the logged model of a pretraining run (a cache entry)
EXAMPLE_ROWS = 2  # validation images stored as each logged model's input example

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
                key, describe(parts), cached_run,
            )  # fmt: skip
            print(f"pretraining cache hit ({key}): loaded, not trained", flush=True)
            job.set_tags({"pretrain.cache": "hit", "pretrain.run_id": cached_run})
            return model
        if newer_than:
            log.info("pretraining cache: force=true, so %s is trained anew (key %s)", name, key)
        else:
            explain_new_key(tracker, "pretrain", name, None, parts)
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
