"""``RunLog``: writing into one run by id, its params, tags, metrics (held and written in
batches), dataset inputs, artifacts and logged models."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import LoggedModelStatus, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tiedae.timing import timed
from tiedae.tracking.datasets import DatasetSpec
from tiedae.tracking.flavor import _KerasFlavor, needs_tiedae, pip_requirements
from tiedae.tracking.keys import BATCH_ENTITIES, BATCH_LIMIT, EPOCH_FLUSH_SECONDS
from tiedae.tracking.settings import TrackingError
from tiedae.tracking.signals import sigterm_held


class RunLog:
    """Logging into one MLflow run by id (no global active run, so runs can nest freely).

    With ``deferred`` (the runs ``Tracker.run`` opens), params, tags and metrics are held and
    written together in as few ``log_batch`` calls as MLflow allows: once
    ``epoch_flush_seconds`` have passed since the last write (0: at once), at ``flush()``, and
    when the run ends (however it ends). A job of a few hundred labels then writes its
    params, tags and curves in one or two store transactions instead of one per call; the UI
    sees them at most ``epoch_flush_seconds`` late. Without it, each call writes at once.
    """

    def __init__(
        self, client: MlflowClient, run_id: str, experiment_id: str | None = None,
        epoch_flush_seconds: float = EPOCH_FLUSH_SECONDS, deferred: bool = False,
    ):  # fmt: skip
        self.client, self.run_id = client, run_id
        self.experiment_id = experiment_id
        self.epoch_flush_seconds = epoch_flush_seconds
        self.deferred = deferred
        self._epochs: list[Metric] = []  # metrics not yet written, in the order measured
        self._params: list[Param] = []  # (deferred) params not yet written
        self._tags: list[RunTag] = []  # (deferred) tags not yet written
        self._written = time.monotonic()

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._params += [Param(key, str(value)[:6000]) for key, value in params.items()]
        self._write_if_due(at_once=not self.deferred)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        self._epochs += [Metric(key, float(v), now, step or 0) for key, v in metrics.items()]
        self._write_if_due(at_once=not self.deferred)

    def log_epoch(self, metrics: Mapping[str, float], step: int) -> None:
        """One epoch's metrics, batched: written with the next write of this run, once
        ``epoch_flush_seconds`` have passed since the last write (0: at once), or when the run
        ends. Short epochs (a classifier's on a few hundred labels) then cost one store write
        per few seconds, not one each; long ones still show in the UI as they end."""
        now = int(time.time() * 1000)
        self._epochs += [Metric(key, float(v), now, step) for key, v in metrics.items()]
        self._write_if_due()

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._tags += [RunTag(key, str(value)) for key, value in tags.items()]
        self._write_if_due(at_once=not self.deferred)

    def _write_if_due(self, at_once: bool = False) -> None:
        if at_once or time.monotonic() - self._written >= self.epoch_flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write everything held: params, tags and metrics (in the order they were measured),
        in as few ``log_batch`` calls as MLflow's limits allow."""
        params, self._params = self._params, []
        tags, self._tags = self._tags, []
        metrics, self._epochs = self._epochs, []
        while params or tags or metrics:
            some_params, params = params[:BATCH_LIMIT], params[BATCH_LIMIT:]
            some_tags, tags = tags[:BATCH_LIMIT], tags[BATCH_LIMIT:]
            room = BATCH_ENTITIES - len(some_params) - len(some_tags)
            some_metrics, metrics = metrics[:room], metrics[room:]
            self.client.log_batch(
                self.run_id, metrics=some_metrics, params=some_params, tags=some_tags
            )
        self._written = time.monotonic()

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        """Log a file; a failed write raises instead of leaving the artifact silently missing."""
        try:
            self.client.log_artifact(self.run_id, str(path), folder)
        except Exception as error:
            raise TrackingError(
                f"could not store artifact {Path(path).name} for run {self.run_id}: {error}; "
                "check free space and permissions of the artifact store (tracking.artifact_dir)"
            ) from error

    def log_model(self, model: Any, name: str, example: np.ndarray) -> str:
        """Log ``model`` as an MLflow logged model (Keras flavour) linked to this run; its id.

        The signature is inferred from ``example`` (a few inputs, also stored as the input
        example); pip requirements are given, not inferred, which would load the model again.
        Models holding tiedae's layers load back through ``tiedae.tracking`` under pyfunc.
        """
        with timed("log model"):
            return self._log_model(model, name, example)

    def _log_model(self, model: Any, name: str, example: np.ndarray) -> str:
        from mlflow.models import Model, infer_signature

        example = np.asarray(example, dtype=np.float32)
        signature = infer_signature(example, np.asarray(model(example, training=False)))
        logged = None
        try:
            if self.experiment_id is None:
                self.experiment_id = self.client.get_run(self.run_id).info.experiment_id
            # created here, in the run's experiment (Model.log would use the active one)
            logged = self.client.create_logged_model(
                self.experiment_id, name=name, source_run_id=self.run_id,
                tags={"mlflow.modelFlavor": "keras"},
            )  # fmt: skip
            with sigterm_held():
                info = Model.log(
                    None, flavor=_KerasFlavor, model_id=logged.model_id, name=name,
                    run_id=self.run_id, model=model, signature=signature, input_example=example,
                    pip_requirements=list(pip_requirements()), needs_tiedae=needs_tiedae(model),
                    validate_serving_input=False,
                )  # fmt: skip
            self.client.finalize_logged_model(info.model_id, LoggedModelStatus.READY)
        except Exception as error:
            if logged is not None:
                with contextlib.suppress(Exception):
                    self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise TrackingError(
                f"could not store model {name} for run {self.run_id}: {reason}; check free "
                "space and permissions of the artifact store (tracking.artifact_dir)"
            ) from error
        return info.model_id

    def log_datasets(self, datasets: Sequence[DatasetSpec], attempts: int = 3) -> None:
        """Record the arrays this run read as MLflow dataset inputs (the UI's Dataset column).

        Two sweep workers logging the same new dataset at once both insert it, and the
        store's unique key refuses the second; retried, it finds the first's row and links it.
        """
        inputs = [spec.as_input() for spec in datasets]
        for attempt in range(1, attempts + 1):
            try:
                self.client.log_inputs(self.run_id, datasets=inputs)
                return
            except MlflowException as error:
                if attempt == attempts or not _is_duplicate_insert(error):
                    raise
                time.sleep(0.2 * attempt)

    def log_text(self, text: str, artifact_file: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / Path(artifact_file).name
            path.write_text(text)
            folder_name = str(Path(artifact_file).parent)
            self.log_artifact(path, None if folder_name == "." else folder_name)


def flush_quietly(log: RunLog) -> None:
    """The epochs' metrics of a run that is stopping on an error; a failing store must not hide
    that error behind its own."""
    with contextlib.suppress(Exception):
        log.flush()


def _is_duplicate_insert(error: Exception) -> bool:
    """A unique-key refusal (sqlite, PostgreSQL, MySQL): a concurrent insert of the same row."""
    text = str(error)
    return "IntegrityError" in text or "UNIQUE constraint failed" in text or "Duplicate" in text
