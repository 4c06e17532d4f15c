"""Hydra callback that gives each sweep one MLflow parent run, and cleans up after kills."""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
import time
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("tiedae")


class SweepParentCallback(Callback):
    """At multirun start: mark runs of dead processes KILLED, open the sweep's parent run.

    At the end: close the parent FINISHED. Jobs find the parent by the sweep's name, so a rerun
    of the same sweep adds to the same parent and skips the jobs already FINISHED.

    While the sweep runs, SIGTERM stops it like Ctrl-C does. A sweep that stops early (a job's
    error, Ctrl-C, SIGTERM) never reaches the end, so at exit its parent is closed KILLED or
    FAILED, and the runs of workers the launcher killed on the way out are marked KILLED.
    Hydra only warns when a callback raises, so a store that cannot be reached ends the
    sweep here, with the one-line error, before any job starts.
    """

    def __init__(self) -> None:
        self.parent: str | None = None
        self.name: str | None = None
        self.tracker = None
        self._signals = contextlib.ExitStack()

    def __getstate__(self) -> dict:
        """Launchers ship callbacks to their workers, where this one has nothing to do."""
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        name = config.get("sweep", {}).get("name")
        if not name:
            return
        from tiedae.cli import exit_with_error
        from tiedae.tracking import (
            Tracker,
            TrackingError,
            TrackingSettings,
            sigterm_as_keyboard_interrupt,
        )

        try:
            self.tracker = Tracker(TrackingSettings.from_config(config.tracking)).connect()
        except TrackingError as error:
            exit_with_error(error)
        killed = self.tracker.mark_dead_runs_killed()
        if killed:
            log.info("marked %d runs of dead processes KILLED", len(killed))
        self.name, self.parent = name, self.tracker.sweep_parent(name)
        self.tracker.set_status(self.parent, "RUNNING")
        self._signals.enter_context(sigterm_as_keyboard_interrupt())
        atexit.register(self._close_stopped_sweep)
        log.info("sweep %s: parent run %s", name, self.parent)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent:
            atexit.unregister(self._close_stopped_sweep)
            self._signals.close()
            self.tracker.set_status(self.parent, "FINISHED")

    def _close_stopped_sweep(self, wait_s: float = 20.0) -> None:
        """At exit of a sweep that never reached its end: close its parent and dead jobs.

        Workers the launcher is stopping may take a moment to exit (or to mark their own runs
        KILLED): wait for them, up to ``wait_s``, so that none of their runs stays RUNNING.
        """
        killed, deadline = self.tracker.mark_dead_runs_killed(), time.monotonic() + wait_s
        while self.tracker.live_jobs(self.name) and time.monotonic() < deadline:
            time.sleep(0.5)
            killed += self.tracker.mark_dead_runs_killed()
        interrupted = isinstance(getattr(sys, "last_value", None), KeyboardInterrupt)
        status = "KILLED" if interrupted else "FAILED"
        self.tracker.set_status(self.parent, status, error="the sweep stopped before its end")
        log.info("sweep stopped early: parent %s, %d dead jobs marked KILLED", status, len(killed))
