"""``TrackerBase``: the connection to the store (checked, the experiment made or found), the
locks that serialise its racing steps, the run context every run is written in, and a run's
status. The ``Tracker``'s other parts (look-ups, models, sweeps, views) build on it."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import mlflow
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from tiedae.tracking.keys import ERROR, EXPERIMENT_TAGS, HOST, LAUNCH, PARENT, PID
from tiedae.tracking.locks import file_lock
from tiedae.tracking.runlog import RunLog, flush_quietly
from tiedae.tracking.settings import (
    TrackingSettings,
    artifact_location,
    check_same_location,
    check_uri,
)
from tiedae.tracking.signals import SignalSafe, sigterm_as_keyboard_interrupt, sigterm_held

_T = TypeVar("_T", bound="TrackerBase")


class TrackerBase:
    """The store's connection and one run's life; ``Tracker`` (``tiedae.tracking.tracker``)
    adds the look-ups, models, sweeps and views."""

    def __init__(self, settings: TrackingSettings):
        self.settings = settings
        self.client: MlflowClient | None = None
        self.experiment_id: str | None = None

    # --- connecting ----------------------------------------------------------------------

    def connect(self: _T) -> _T:
        """Check the store answers and get the experiment; fails fast, before any training."""
        check_uri(self.settings)
        mlflow.set_tracking_uri(self.settings.uri)
        location = artifact_location(self.settings)
        with self._store_lock():
            self.client = SignalSafe(MlflowClient(self.settings.uri))
            experiment = self.client.get_experiment_by_name(self.settings.experiment)
            if experiment is None:
                self.experiment_id = self.client.create_experiment(
                    self.settings.experiment, artifact_location=location, tags=EXPERIMENT_TAGS
                )
            else:
                check_same_location(experiment, location, self.settings.artifact_dir)
                self.experiment_id = experiment.experiment_id
                for key, value in EXPERIMENT_TAGS.items():
                    if key not in experiment.tags:  # a description a person edited stays
                        self.client.set_experiment_tag(self.experiment_id, key, value)
        return self

    @contextlib.contextmanager
    def _store_lock(self) -> Iterator[None]:
        if self.settings.sqlite_path is None:
            yield
        else:
            with file_lock(self.settings.lock_dir / "store.lock"):
                yield

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """A machine-wide lock named ``name`` (e.g. one pretraining cache key).

        Only processes on this machine wait for each other. Jobs on two machines sharing a
        tracking server may both train the same cache entry at once: each stores a whole
        entry, and later look-ups take the newest, so the cost is time, not correctness.
        """
        return file_lock(self.settings.lock_dir / f"{name}.lock")

    # --- runs ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def run(
        self,
        name: str,
        tags: Mapping[str, Any],
        parent_run_id: str | None = None,
        resume: str | None = None,
    ) -> Iterator[RunLog]:
        """A run that ends FINISHED, or FAILED with the error, or KILLED on SIGTERM/Ctrl-C.

        ``resume``: the id of a stopped run to reopen (RUNNING again, owned by this process)
        instead of creating one; its metrics, params and tags stay.
        """
        log = self._reopen(resume, tags) if resume else self._create(name, tags, parent_run_id)
        with sigterm_as_keyboard_interrupt():
            try:
                yield log
            except (KeyboardInterrupt, SystemExit) as stop:
                self._close(log, RunStatus.KILLED, f"interrupted ({type(stop).__name__})")
                raise
            except BaseException as error:
                self._close(log, RunStatus.FAILED, f"{type(error).__name__}: {error}"[:5000])
                raise
            with sigterm_held():
                log.flush()
                self.client.set_terminated(log.run_id, RunStatus.to_string(RunStatus.FINISHED))

    def _reopen(self, run_id: str, tags: Mapping[str, Any]) -> RunLog:
        if ERROR in self.client.get_run(run_id).data.tags:
            self.client.delete_tag(run_id, ERROR)
        self.set_status(run_id, "RUNNING")
        log = RunLog(
            self.client, run_id, self.experiment_id, self.settings.epoch_flush_seconds,
            deferred=True,
        )  # fmt: skip
        if LAUNCH in tags:  # the sweep process that resumed it counts it now
            log.set_tags({LAUNCH: tags[LAUNCH]})
        return log

    def _create(self, name: str, tags: Mapping[str, Any], parent_run_id: str | None) -> RunLog:
        all_tags = {**tags, HOST: socket.gethostname(), PID: os.getpid()}
        if parent_run_id:
            all_tags[PARENT] = parent_run_id
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={k: str(v) for k, v in all_tags.items()}
        )
        return RunLog(
            self.client, run.info.run_id, self.experiment_id,
            self.settings.epoch_flush_seconds, deferred=True,
        )  # fmt: skip

    def _close(self, log: RunLog, status: int, error: str) -> None:
        """End a run that stops on ``error``: what it held, the error, then its status."""
        with sigterm_held():  # a second SIGTERM must not cut the closing writes
            flush_quietly(log)
            log.set_tags({ERROR: error})
            log.flush()
            self.client.set_terminated(log.run_id, RunStatus.to_string(status))

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        """Set a run's status; RUNNING also records this process as its owner (host, pid)."""
        if error:
            self.client.set_tag(run_id, ERROR, error)
        if status == "RUNNING":
            RunLog(self.client, run_id).set_tags({HOST: socket.gethostname(), PID: os.getpid()})
            self.client.update_run(run_id, status="RUNNING")
        else:
            self.client.set_terminated(run_id, status)

    # --- queries the other parts share ---------------------------------------------------

    def _search(self, filter_string: str, max_results: int = 1000) -> list:
        return self.client.search_runs(
            [self.experiment_id], filter_string, max_results=max_results,
            order_by=["attributes.start_time DESC"],
        )  # fmt: skip

    def run_tags(self, run_id: str) -> dict[str, str]:
        return dict(self.client.get_run(run_id).data.tags)

    def logged_model_id(self, run_id: str, name: str) -> str | None:
        """The id of the newest logged model ``name`` that run ``run_id`` produced, if any."""
        models = self.client.search_logged_models(
            [self.experiment_id],
            filter_string=f"source_run_id = '{run_id}' AND name = '{name}'",
            order_by=[{"field_name": "creation_time", "ascending": False}],
            max_results=1,
        )
        return models[0].model_id if models else None
