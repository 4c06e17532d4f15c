"""Hydra callback that gives each sweep one MLflow parent run, and cleans up after kills."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("tiedae")


LAUNCHER_LOGGERS = (  # they list every job of a sweep at INFO: 125 lines for `make sweep`
    "hydra._internal.core_plugins.basic_launcher",
    "hydra_plugins.hydra_joblib_launcher._core",
    "hydra_plugins.hydra_ray_launcher._core",
)


class JobListing(logging.Filter):
    """Drops the launchers' job-by-job listing (``\t#12 : seed=1 method=...``) and joblib's
    settings line from the terminal: the progress line counts the jobs, and each job's
    overrides are in its folder (``.hydra/overrides.yaml``) and on its run. ``hydra.verbose``
    (``hydra.verbose=true`` on the command line) keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (message.startswith("\t#") or message.startswith("Joblib.Parallel("))


def quiet_launchers(verbose: Any) -> None:
    """Attach :class:`JobListing` to the launchers' loggers unless Hydra is verbose."""
    if verbose:
        return
    for name in LAUNCHER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, JobListing) for f in logger.filters):
            logger.addFilter(JobListing())


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
        self.progress: Progress | None = None
        self.tracker = None
        self._signals = contextlib.ExitStack()

    def __getstate__(self) -> dict:
        """Launchers ship callbacks to their workers, where this one has nothing to do."""
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        quiet_launchers(config.hydra.get("verbose"))
        name = config.get("sweep", {}).get("name")
        if not name:
            return
        from tiedae.cli import exit_with_error
        from tiedae.tracking import (
            LAUNCH_ENV,
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
        self.tracker.record_sweep_start(self.parent, " ".join(["tiedae", *sys.argv[1:]]))
        self._signals.enter_context(sigterm_as_keyboard_interrupt())
        atexit.register(self._close_stopped_sweep)
        log.info("sweep %s: parent run %s", name, self.parent)
        tracker, parent, since = self.tracker, self.parent, int(time.time() * 1000)
        # The jobs this process launches (its launcher's workers inherit the variable) carry
        # its id, so that its line counts them only, whatever else runs the same sweep.
        launch = os.environ[LAUNCH_ENV] = f"{socket.gethostname()}:{os.getpid()}:{since}"
        self.progress = Progress(
            name, sweep_size(config), lambda: tracker.sweep_progress(name, parent, since, launch)
        )
        self.progress.start()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent:
            atexit.unregister(self._close_stopped_sweep)
            self._signals.close()
            self.progress.stop()
            self._write_summary()
            self.tracker.set_status(self.parent, "FINISHED")

    def _write_summary(self) -> None:
        """The parent run's description: its jobs' test accuracy by method and labeled count,
        rounded as the paper table (``python -m tiedae.report`` replaces it with its table)."""
        from tiedae.report.write import sweep_summary
        from tiedae.tracking import NOTE, RunLog

        try:
            note = sweep_summary(self.tracker.jobs_frame(self.name), self.name)
            if note:
                RunLog(self.tracker.client, self.parent).set_tags({NOTE: note})
        except Exception as error:  # the jobs are stored; a summary is not worth failing for
            log.warning("sweep %s: no summary on its parent run: %s", self.name, error)

    def _close_stopped_sweep(self, wait_s: float = 20.0) -> None:
        """At exit of a sweep that never reached its end: close its parent and dead jobs.

        Workers the launcher is stopping may take a moment to exit (or to mark their own runs
        KILLED): wait for them, up to ``wait_s``, so that none of their runs stays RUNNING.
        """
        if self.progress:
            self.progress.stop()  # no more reads of the store while runs are being closed
        killed, deadline = self.tracker.mark_dead_runs_killed(), time.monotonic() + wait_s
        while self.tracker.live_jobs(self.name) and time.monotonic() < deadline:
            time.sleep(0.5)
            killed += self.tracker.mark_dead_runs_killed()
        # Workers still alive now (a busy machine, or one that took a job as the sweep stopped)
        # would outlive this process with their runs RUNNING: stop them, so that they close
        # their own runs KILLED, and mark the runs of those that die first.
        workers = child_processes()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while any(pid in child_processes() for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.5)
        killed += self.tracker.mark_dead_runs_killed()
        interrupted = isinstance(getattr(sys, "last_value", None), KeyboardInterrupt)
        status = "KILLED" if interrupted else "FAILED"
        self.tracker.set_status(self.parent, status, error="the sweep stopped before its end")
        log.info("sweep stopped early: parent %s, %d dead jobs marked KILLED", status, len(killed))


def child_processes() -> list[int]:
    """The live (not zombie) child processes of this one, e.g. a launcher's workers; from
    /proc, so none where there is no /proc."""
    me, children = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rpartition(")")[2].split()[:2]
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(parent) == me and state != "Z":
            children.append(int(stat.parent.name))
    return children


_LINES: list[Progress] = []  # the progress line of this process's sweep, while it runs


def note_repeated_jobs(count: int) -> None:
    """The sweeper launches ``count`` jobs of the grid fewer (they repeat another job's
    settings): say so, and count the sweep's jobs without them."""
    if count <= 0:
        return
    log.info(
        "%d of the grid's jobs repeat another job's settings (a setting they do not read "
        "varies): each runs once", count
    )  # fmt: skip
    for line in _LINES:
        if line.total is not None:
            line.total -= count


def sweep_size(config: DictConfig) -> int | None:
    """How many jobs Hydra's basic sweeper makes: the product of the swept values' counts,
    the sweeper's ``params`` overridden by the command line's. None if it cannot tell."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parser = OverridesParser.create()
        params = config.hydra.sweeper.get("params") or {}
        by_key = {key: f"{key}={value}" for key, value in params.items()}
        for text in config.hydra.overrides.task:
            by_key[parser.parse_override(text).key_or_group] = text
        total = 1
        for override in parser.parse_overrides(list(by_key.values())):
            if override.is_sweep_override():
                total *= len(list(override.sweep_string_iterator()))
        return total
    except Exception:  # another sweeper's syntax: show counts without a total
        return None


class Progress:
    """One line for a sweep: jobs done / skipped / failed of the total, cache hits, elapsed
    time and an estimate of what is left, read from the store by a background thread.

    On a terminal the line is redrawn in place as a progress bar; elsewhere (a log file, CI)
    a line is printed every ``every`` jobs (about a tenth of the sweep), every ``heartbeat``
    seconds while jobs run (a ladder's job trains for an hour), and at the end. Running jobs
    show their epoch: ``1 running: epoch 17/150``.
    """

    def __init__(
        self,
        name: str,
        total: int | None,
        poll: Callable[[], Mapping[str, Any]],
        out: TextIO | None = None,
        interval: float = 5.0,
        heartbeat: float = 600.0,
    ) -> None:
        self.name, self.total, self.poll, self.interval = name, total, poll, interval
        self.heartbeat = heartbeat
        self.out = out or sys.stdout
        self.live = self.out.isatty()
        self.every = max(1, (total or 10) // 10)
        self.started = time.monotonic()
        self.printed = 0  # jobs ended when the last line was printed
        self.printed_at = self.started  # ... and when
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweep-progress", daemon=True)

    def start(self) -> None:
        _LINES.append(self)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and print the final line."""
        self._stop.set()
        self._thread.join(timeout=30)
        if self in _LINES:
            _LINES.remove(self)
        self.show(self.read(), final=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            counts = self.read()
            if counts is not None:
                self.show(counts)

    def read(self) -> Mapping[str, Any] | None:
        try:
            return self.poll()
        except Exception as error:  # a busy store: try again at the next tick
            log.debug("sweep progress: %s", error)
            return None

    def show(self, counts: Mapping[str, Any] | None, final: bool = False) -> None:
        if counts is None:
            return
        ended = counts["done"] + counts["skipped"] + counts["failed"]
        now = time.monotonic()
        beat = counts["running"] and now - self.printed_at >= self.heartbeat
        if not (self.live or final or beat or ended >= self.printed + self.every):
            return
        self.printed, self.printed_at = ended, now
        line = self.line(counts, now - self.started)
        if self.live:
            end = "\n" if final else ""
            self.out.write(f"\r\033[K{line}{end}")
        else:
            self.out.write(f"{line}\n")
        self.out.flush()

    def line(self, counts: Mapping[str, Any], elapsed: float) -> str:
        done, skipped, failed = counts["done"], counts["skipped"], counts["failed"]
        ended = done + skipped + failed
        total = self.total if self.total is not None else "?"
        text = (
            f"sweep {self.name}: {ended}/{total} jobs ({done} done, {skipped} skipped, "
            f"{failed} failed, {counts['running']} running{_epochs(counts.get('epochs'))}), "
            f"{counts['hits']} cache hits, {_clock(elapsed)} elapsed"
        )
        trained = done + failed
        if self.total and trained and ended < self.total:
            text += f", ~{_clock(elapsed / trained * (self.total - ended))} left"
        if self.live and self.total:
            filled = round(20 * min(ended, self.total) / self.total)
            text = f"[{'#' * filled}{'.' * (20 - filled)}] {text}"
        return text


def _epochs(epochs: Sequence[tuple[int, int | None]] | None) -> str:
    """``: epoch 17/150, epoch 3`` for the running jobs' (done, planned) epochs."""
    if not epochs:
        return ""
    shown = [f"epoch {done}/{planned}" if planned else f"epoch {done}" for done, planned in epochs]
    return ": " + ", ".join(shown)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
