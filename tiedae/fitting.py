"""How a run's training stage is set up and logged: its fit settings from the config, its
checkpoints, and its per-epoch metrics written to one run or two (a job and its pretraining)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig

from tiedae.tracking import (
    RunLog,
)
from tiedae.training import Checkpoint, FitSettings

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


def fan_out(first: RunLog, second: RunLog, prefix: str):
    def on_epoch_end(epoch: int, logs: Mapping[str, float]) -> None:
        for target in (first, second):
            epoch_logger(target, prefix)(epoch, logs)

    return on_epoch_end
