"""What the tiedae sweeper does with a batch of jobs before launching it: check every job's
config the way a single run checks its own, and order the jobs so that parallel workers do not
wait for the same pretraining.

A job that needs a pretrained encoder takes the pretraining cache's lock for its key; a second
job with the same key waits until the first has trained it (~10 s for the default autoencoder).
Hydra's grid order (seed, then method, then labeled count) puts such jobs side by side, so with
two workers one of them idles at every new key. ``pretraining_first`` runs one job per key
first (the first of the grid's order), all keys different, then the rest in the grid's order,
by which time their keys are cached.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections.abc import Hashable, Sequence
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from tiedae.config import (
    ConfigError,
    check_choices,
    is_pretrained,
    pretrain_settings,
    run_settings,
    settings_key,
    validate,
)

log = logging.getLogger("tiedae")
T = TypeVar("T")
WARM_MODULE = "tiedae.pipeline"  # what a job imports first: TensorFlow, Keras, MLflow
ORDERS = ("pretraining_first", "grid")


def check_job(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """The checks ``tiedae`` runs before a job trains (``cli.main``), here for a job of a
    sweep before any job trains; the error names the job's overrides. ``cfg``: the job's
    composed config, which becomes its task config (the ``hydra`` node removed) and is
    returned, checked."""
    choices = cfg.hydra.runtime.choices
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    try:
        check_choices(choices)
        validate(cfg)
    except ConfigError as error:
        raise ConfigError(f"sweep job {' '.join(overrides)}: {error}") from None
    return cfg


def pretraining_key(cfg: DictConfig) -> str | None:
    """The pretraining cache key a job (its task config) loads or trains (``None``: it
    pretrains nothing)."""
    return settings_key(pretrain_settings(cfg)) if is_pretrained(cfg) else None


def job_key(cfg: DictConfig) -> str:
    """What makes a job: the settings its result depends on, the data it reads and the store
    it writes to. Two jobs with the same key are the same job (a sweep over ``unlabeled.size``
    repeats ``method=scratch``, which reads no pool); jobs into two stores are two jobs."""
    where = {section: OmegaConf.to_container(cfg[section], resolve=True)
             for section in ("data", "tracking") if section in cfg}  # fmt: skip
    return settings_key({"run": run_settings(cfg), **where})


def first_of_each(keys: Sequence[Hashable]) -> list[int]:
    """The positions of each key's first occurrence, in order."""
    seen: set[Hashable] = set()
    kept = []
    for position, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            kept.append(position)
    return kept


def order_jobs(jobs: Sequence[T], keys: Sequence[Hashable | None], order: str) -> list[T]:
    """``jobs`` in the sweeper's ``order`` (:data:`ORDERS`); ``keys``: each job's pretraining."""
    if order == "grid":
        return list(jobs)
    if order == "pretraining_first":
        return pretraining_first(jobs, keys)
    raise ConfigError(f"hydra.sweeper.order={order!r} is not one of {', '.join(ORDERS)}")


def pretraining_first(jobs: Sequence[T], keys: Sequence[Hashable | None]) -> list[T]:
    """The first job of each distinct key (in ``jobs``' order), then every other job in
    ``jobs``' order; jobs with key ``None`` need no pretraining and stay among the rest."""
    seen: set[Hashable] = set()
    leaders: list[T] = []
    rest: list[T] = []
    for job, key in zip(jobs, keys, strict=True):
        if key is not None and key not in seen:
            seen.add(key)
            leaders.append(job)
        else:
            rest.append(job)
    return leaders + rest


def warm_joblib_workers(launcher: Any) -> threading.Thread | None:
    """Under Hydra's joblib launcher: start its worker processes now, each importing what a
    job imports first (~4-5 s), in a background thread; ``None`` under other launchers.

    loky keeps a pool of workers across ``Parallel`` calls made with the same settings, so the
    launcher's own call finds them started and warm. Join the thread before launching."""
    if type(launcher).__name__ != "JoblibLauncher":
        return None
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg
    from joblib import Parallel, delayed, effective_n_jobs

    settings = {**launcher.joblib, "backend": "loky"}  # as the launcher's launch() sets them
    process_joblib_cfg(settings)
    workers = effective_n_jobs(settings.get("n_jobs"))
    tasks = [delayed(_import)(WARM_MODULE) for _ in range(workers)]

    def warm() -> None:
        started = time.perf_counter()
        pids = sorted(set(Parallel(**settings)(tasks)))
        log.info(
            "joblib workers %s started and warm in %.1f s",
            ", ".join(map(str, pids)), time.perf_counter() - started,
        )  # fmt: skip

    thread = threading.Thread(target=warm, name="warm-workers")
    thread.start()
    return thread


def _import(module: str) -> int:
    importlib.import_module(module)
    return os.getpid()
