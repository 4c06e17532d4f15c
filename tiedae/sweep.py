"""Hydra callback that gives each sweep one MLflow parent run, and cleans up after kills."""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("tiedae")


class SweepParentCallback(Callback):
    """At multirun start: mark runs of dead processes KILLED, open the sweep's parent run.

    At the end: close the parent FINISHED. Jobs find the parent by the sweep's name, so a rerun
    of the same sweep adds to the same parent and skips the jobs already FINISHED.
    """

    def __init__(self) -> None:
        self.parent: str | None = None
        self.tracker = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        name = config.get("sweep", {}).get("name")
        if not name:
            return
        from tiedae.tracking import Tracker, TrackingSettings

        self.tracker = Tracker(TrackingSettings.from_config(config.tracking)).connect()
        killed = self.tracker.mark_dead_runs_killed()
        if killed:
            log.info("marked %d runs of dead processes KILLED", len(killed))
        self.parent = self.tracker.sweep_parent(name)
        self.tracker.set_status(self.parent, "RUNNING")
        log.info("sweep %s: parent run %s", name, self.parent)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent:
            self.tracker.set_status(self.parent, "FINISHED")
