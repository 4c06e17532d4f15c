"""Stage 5 — tracking: everything that talks to MLflow lives here, and only here.

Runs, nested runs, tags, metrics, artifacts, the pretraining cache and the look-ups that resume
a sweep. The embedded default is one sqlite file; a tracking server works the same way.
Processes that share a sqlite file take a file lock while they set the store up or create a
sweep's parent run, since those steps race. Locks are files on this machine: processes on
other machines sharing a tracking server are not serialised by them (see ``Tracker.lock``).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import json
import os
import signal
import socket
import tempfile
import time
import urllib.error
import urllib.request
import weakref
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LoggedModelStatus,
    Metric,
    Param,
    RunStatus,
    RunTag,
)
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tiedae.timing import timed

ROLE = "tiedae.role"  # job | pretrain | sweep
SWEEP = "tiedae.sweep"
RUN_KEY = "tiedae.run_key"
PRETRAIN_KEY = "tiedae.pretrain_key"
HOST, PID = "tiedae.host", "tiedae.pid"
SWEEP_STARTED = "tiedae.sweep_started_ms"  # on a sweep's parent: when it was last started
SWEEP_COMMANDS = "tiedae.commands"  # on a sweep's parent: the command lines that ran it
PARENT = "mlflow.parentRunId"
SKIPPED = "tiedae.skipped."  # + run key [+ . + launch digest], on a sweep's parent: a job
# skipped as FINISHED (by that launch)
LAUNCH = "tiedae.launch"  # on a job: which sweep process launched it (several may share a name)
LAUNCH_ENV = "TIEDAE_SWEEP_LAUNCH"  # set by the sweep's process, inherited by its workers
BATCH_LIMIT = 100  # MLflow's most params (and most tags) in one log_batch call
BATCH_ENTITIES = 1000  # MLflow's most params, tags and metrics in all in one log_batch call
EPOCH_FLUSH_SECONDS = 5.0  # tracking.epoch_flush_seconds' default (RunLog.log_epoch)
NOTE = "mlflow.note.content"  # the description MLflow's UI shows on the experiment page
EXPERIMENT_KIND = "mlflow.experimentKind"  # custom_model_development: the UI opens on runs
EXPERIMENT_DESCRIPTION = """\
Semi-supervised pretraining on few labels (tiedae). Each **job** run (tag `tiedae.role=job`)
trains one classifier: a method (row of the table: tag `method`, e.g. `tied-autoencoder-frozen`),
a labeled count (param `labels.n`, tag `labels`) and a seed; its **pretrain** child runs hold the
autoencoders (or transfer sources) it reused, shared through a cache. A sweep's jobs are children
of a **sweep** run named `sweep <name>`.

Compare runs: filter `tags.tiedae.role = 'job'` (and `tags.tiedae.sweep = '<name>'`), add the
columns `test/accuracy`, tag `method` and param `labels.n`, then sort by `test/accuracy` or group
by `method`. Models: each job logs its classifier (`classifier`), each pretraining run its model
(`pretrained`), as MLflow Keras models; the Dataset column shows the images each run used
(contexts training, labeled, validation, test). `python -m tiedae.report` makes the table.
"""
COMPARISON_SECTION = "tiedae-comparison"  # the view's chart section
RUN_NAME_COLUMN = "attributes.`Run Name`"  # the runs table's first column, as the UI names it
SHARED_VIEW, SHARE_KEY = "mlflow.sharedViewState.", "viewStateShareKey"  # the UI's Share
STORE_PHASES = ("log model", "log figures", "load cache", "other logging")  # tiedae.timing's
# phases that talk to the store: its calls inside them are theirs, elsewhere "other logging"
EXPERIMENT_TAGS = {NOTE: EXPERIMENT_DESCRIPTION, EXPERIMENT_KIND: "custom_model_development"}


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message says which URI and what to do."""


@dataclass(frozen=True)
class TrackingSettings:
    uri: str
    experiment: str = "tiedae"
    artifact_dir: str | None = None
    epoch_flush_seconds: float = EPOCH_FLUSH_SECONDS

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TrackingSettings:
        return cls(
            cfg["uri"], cfg.get("experiment", "tiedae"), cfg.get("artifact_dir"),
            float(cfg.get("epoch_flush_seconds", EPOCH_FLUSH_SECONDS)),
        )  # fmt: skip

    @property
    def sqlite_path(self) -> Path | None:
        prefix = "sqlite:///"
        return Path(self.uri[len(prefix) :]) if self.uri.startswith(prefix) else None

    @property
    def lock_dir(self) -> Path:
        base = self.sqlite_path.parent if self.sqlite_path else Path.home() / ".cache"
        return base / ".tiedae" / "locks"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock between processes on this machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset input of a run: a name, the arrays (their digest), where they came from,
    the MLflow context it was used in, and extra numbers for the run page (e.g. labeled count)."""

    name: str
    arrays: Sequence[np.ndarray]
    source: str
    context: str  # training | labeled | validation | test
    profile: Mapping[str, Any] = field(default_factory=dict)

    def as_input(self) -> DatasetInput:
        digest = hashlib.sha256("".join(array_digest(a) for a in self.arrays).encode())
        first = self.arrays[0]
        schema = {"mlflow_tensorspec": {"features": json.dumps(
            [{"type": "tensor", "tensor-spec": {"dtype": str(first.dtype),
                                                "shape": [-1, *first.shape[1:]]}}]
        )}}  # fmt: skip
        profile = {"num_rows": len(first), **self.profile}
        dataset = Dataset(
            name=self.name, digest=digest.hexdigest()[:12], source_type="local",
            source=json.dumps({"uri": self.source}), schema=json.dumps(schema),
            profile=json.dumps(profile),
        )  # fmt: skip
        return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", self.context)])


_DIGESTS: dict[int, tuple[weakref.ref, str]] = {}


def array_digest(array: np.ndarray) -> str:
    """sha256 of an array's shape, dtype and bytes, computed once per array per process."""
    cached = _DIGESTS.get(id(array))
    if cached and cached[0]() is array:
        return cached[1]
    contiguous = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.shape}{array.dtype}".encode())
    digest.update(memoryview(contiguous).cast("B"))
    key = id(array)
    with contextlib.suppress(TypeError):  # not weakly referenceable: not cached
        _DIGESTS[key] = (weakref.ref(array, lambda _: _DIGESTS.pop(key, None)), digest.hexdigest())
    return digest.hexdigest()


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
                    pip_requirements=list(pip_requirements()), needs_tiedae=_needs_tiedae(model),
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


def _flush_quietly(log: RunLog) -> None:
    """The epochs' metrics of a run that is stopping on an error; a failing store must not hide
    that error behind its own."""
    with contextlib.suppress(Exception):
        log.flush()


def skipped_tag(run_key: str, launch: str | None) -> str:
    """The parent run's tag noting that ``launch`` skipped the job ``run_key``."""
    if not launch:
        return f"{SKIPPED}{run_key}"
    return f"{SKIPPED}{run_key}.{hashlib.sha256(launch.encode()).hexdigest()[:8]}"


class Tracker:
    def __init__(self, settings: TrackingSettings):
        self.settings = settings
        self.client: MlflowClient | None = None
        self.experiment_id: str | None = None

    # --- connecting ----------------------------------------------------------------------

    def connect(self) -> Tracker:
        """Check the store answers and get the experiment; fails fast, before any training."""
        uri = self.settings.uri
        if uri.startswith(("http://", "https://")):
            _check_server(uri)
        elif self.settings.sqlite_path is not None:
            folder = self.settings.sqlite_path.parent
            if not folder.is_dir():
                raise TrackingError(
                    f"tracking.uri={uri}: folder {folder} does not exist; create it or point "
                    "tracking.uri at another sqlite file"
                )
        elif not uri.startswith(("postgresql", "mysql", "databricks")):
            raise TrackingError(
                f"tracking.uri={uri!r} is not supported; use sqlite:////absolute/path/mlflow.db "
                "or http(s)://host:port of an MLflow tracking server"
            )
        mlflow.set_tracking_uri(uri)
        location = self._artifact_location()
        with self._store_lock():
            self.client = SignalSafe(MlflowClient(uri))
            experiment = self.client.get_experiment_by_name(self.settings.experiment)
            if experiment is None:
                self.experiment_id = self.client.create_experiment(
                    self.settings.experiment, artifact_location=location, tags=EXPERIMENT_TAGS
                )
            else:
                _check_same_location(experiment, location, self.settings.artifact_dir)
                self.experiment_id = experiment.experiment_id
                for key, value in EXPERIMENT_TAGS.items():
                    if key not in experiment.tags:  # a description a person edited stays
                        self.client.set_experiment_tag(self.experiment_id, key, value)
        return self

    def runs_url(self, base: str, sweep: str | None = None) -> str:
        """The UI page of this experiment's runs table in Model-training mode (MLflow 3 may
        otherwise open on GenAI), showing the job runs (one sweep's, if named) grouped by
        method and labeled count, test accuracy averaged over each group's seeds, best first:
        a view stored in the experiment, as MLflow's Share button stores one."""
        key = self.share_runs_view(sweep)
        query = f"workflowType=machine_learning&{SHARE_KEY}={key}"  # not the GenAI pages
        return f"{base.rstrip('/')}/#/experiments/{self.experiment_id}/runs?{query}"

    def share_runs_view(self, sweep: str | None = None) -> str:
        """Store the comparison view of the runs table as a shared view state; its key."""
        where = f"tags.`{ROLE}` = 'job'" + (f" and tags.`{SWEEP}` = '{sweep}'" if sweep else "")
        groups, metric_prefixes = self._job_groups(where)
        state = {
            "searchFilter": where, "orderByKey": "metrics.`test/accuracy`", "orderByAsc": False,
            "startTime": "ALL", "lifecycleFilter": "Active", "modelVersionFilter": "All Runs",
            "datasetsFilter": [], "runsExpanded": {}, "runsPinned": [], "runsHidden": [],
            "runListHidden": False, "viewMaximized": False,
            "selectedColumns": [
                "metrics.`test/accuracy`", "tags.`method`", "params.`labels.n`", "params.`seed`",
                "attributes.`Dataset`",
            ],
            # the comparison: a row per method and labeled count, its runs (the seeds)
            # folded under it, test accuracy their mean
            "groupBy": {"aggregateFunction": "average", "groupByKeys": [
                {"mode": "tag", "groupByData": "method"},
                {"mode": "param", "groupByData": "labels.n"},
            ]},
            "groupsExpanded": {group: False for group in groups},
            "useGroupedValuesInCharts": True,
            # the group's name (method, labeled count) whole, its mean next to it
            "columnOrder": [RUN_NAME_COLUMN, "metrics.`test/accuracy`", "tags.`method`",
                            "params.`labels.n`", "params.`seed`"],
            "columnWidths": {RUN_NAME_COLUMN: 460, "metrics.`test/accuracy`": 130},
            # the chart view (compareRunsMode=CHART): each group's mean against its count
            "compareRunSections": [{
                "uuid": COMPARISON_SECTION, "name": "tiedae: test accuracy by labeled count",
                "display": True, "isReordered": False, "deleted": False, "isGenerated": False,
            }] + [  # the UI's own sections, one per metric prefix, below it and folded
                {"uuid": f"tiedae-{prefix}", "name": prefix, "display": False,
                 "isReordered": False, "deleted": False, "isGenerated": True}
                for prefix in metric_prefixes
            ],
            "isAccordionReordered": True,
            "compareRunCharts": [{
                "uuid": "tiedae-accuracy-by-labels", "type": "SCATTER", "deleted": False,
                "isGenerated": False, "metricSectionId": COMPARISON_SECTION,
                "runsCountToCompare": 100,
                "displayName": "test accuracy (mean over seeds) against labeled count",
                "xaxis": {"key": "labels.n", "type": "PARAM"},
                "yaxis": {"key": "test/accuracy", "type": "METRIC"},
            }],
            "hideEmptyCharts": True,
        }  # fmt: skip
        text = json.dumps(state, sort_keys=True)
        key = hashlib.sha256(text.encode()).hexdigest()[:32]
        packed = "deflate;" + base64.b64encode(zlib.compress(text.encode())).decode()
        self.client.set_experiment_tag(self.experiment_id, f"{SHARED_VIEW}{key}", packed)
        return key

    def _job_groups(self, where: str) -> tuple[list[str], list[str]]:
        """The UI's ids of the view's groups (one per method and labeled count) among the
        runs matching ``where`` (``tag.method.<method>,param.labels.n.<count>``), and the
        prefixes of their metrics' names (the UI's chart sections)."""
        runs = self._search(where, max_results=50000)
        pairs = {(r.data.tags.get("method"), r.data.params.get("labels.n")) for r in runs}
        prefixes = {key.split("/")[0] for r in runs for key in r.data.metrics if "/" in key}
        return sorted(f"tag.method.{m},param.labels.n.{n}" for m, n in pairs), sorted(prefixes)

    def _artifact_location(self) -> str | None:
        """``tracking.artifact_dir`` as a file URI, the folder created; None: the store's own."""
        if not self.settings.artifact_dir:
            return None
        folder = Path(self.settings.artifact_dir).expanduser().resolve()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrackingError(
                f"tracking.artifact_dir={self.settings.artifact_dir}: cannot create it "
                f"({error.strerror or error}); point it at a writable folder"
            ) from None
        return folder.as_uri()

    @contextlib.contextmanager
    def _store_lock(self) -> Iterator[None]:
        if self.settings.sqlite_path is None:
            yield
        else:
            with file_lock(self.settings.lock_dir / "store.lock"):
                yield

    def lock(self, name: str):
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
        if resume:
            if "tiedae.error" in self.client.get_run(resume).data.tags:
                self.client.delete_tag(resume, "tiedae.error")
            self.set_status(resume, "RUNNING")
            log = RunLog(
                self.client, resume, self.experiment_id, self.settings.epoch_flush_seconds,
                deferred=True,
            )  # fmt: skip
            if LAUNCH in tags:  # the sweep process that resumed it counts it now
                log.set_tags({LAUNCH: tags[LAUNCH]})
        else:
            all_tags = {**tags, HOST: socket.gethostname(), PID: os.getpid()}
            if parent_run_id:
                all_tags[PARENT] = parent_run_id
            run = self.client.create_run(
                self.experiment_id, run_name=name, tags={k: str(v) for k, v in all_tags.items()}
            )
            log = RunLog(
                self.client, run.info.run_id, self.experiment_id,
                self.settings.epoch_flush_seconds, deferred=True,
            )  # fmt: skip
        with sigterm_as_keyboard_interrupt():
            try:
                yield log
            except (KeyboardInterrupt, SystemExit) as stop:
                with sigterm_held():  # a second SIGTERM must not cut the closing writes
                    _flush_quietly(log)
                    log.set_tags({"tiedae.error": f"interrupted ({type(stop).__name__})"})
                    log.flush()
                    self.client.set_terminated(log.run_id, RunStatus.to_string(RunStatus.KILLED))
                raise
            except BaseException as error:
                with sigterm_held():
                    _flush_quietly(log)
                    log.set_tags({"tiedae.error": f"{type(error).__name__}: {error}"[:5000]})
                    log.flush()
                    self.client.set_terminated(log.run_id, RunStatus.to_string(RunStatus.FAILED))
                raise
            with sigterm_held():
                log.flush()
                self.client.set_terminated(log.run_id, RunStatus.to_string(RunStatus.FINISHED))

    # --- resuming a stopped run from its checkpoint ----------------------------------------

    def checkpoint_dir(self, run_id: str) -> Path:
        """The local folder of a run's training checkpoints (next to the sqlite store)."""
        return self.settings.lock_dir.parent / "checkpoints" / run_id

    def find_resumable(
        self, tags: Mapping[str, str], folder: Callable[[str], Path] | None = None
    ) -> str | None:
        """The newest run with these tags that stopped before its end (KILLED, FAILED, or
        RUNNING owned by a dead process on this host) and left a checkpoint here, in
        ``folder(run id)`` (default ``checkpoint_dir``); or None."""
        folder = folder or self.checkpoint_dir
        where = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
        host = socket.gethostname()
        for run in self._search(f"{where} and attributes.status != 'FINISHED'"):
            run_tags = run.data.tags
            if run.info.status == "RUNNING" and (
                run_tags.get(HOST) != host
                or not run_tags.get(PID)
                or _process_alive(int(run_tags[PID]))
            ):
                continue  # still training, or on another machine: not ours to take over
            if run.info.status in ("KILLED", "FAILED", "RUNNING") and any(
                folder(run.info.run_id).rglob("state.pkl")
            ):
                return run.info.run_id
        return None

    def _search(self, filter_string: str, max_results: int = 1000) -> list:
        return self.client.search_runs(
            [self.experiment_id], filter_string, max_results=max_results,
            order_by=["attributes.start_time DESC"],
        )  # fmt: skip

    def find_finished_job(self, sweep: str, run_key: str) -> str | None:
        runs = self._search(
            f"tags.`{SWEEP}` = '{sweep}' and tags.`{RUN_KEY}` = '{run_key}' "
            f"and attributes.status = 'FINISHED'"
        )
        return runs[0].info.run_id if runs else None

    def latest_finished(self, role: str, run_name: str, sweep: str | None = None):
        """The newest FINISHED run of ``role`` named ``run_name`` (in ``sweep``): (id, tags)."""
        name = run_name.replace("'", "\\'")
        where = f"tags.`{ROLE}` = '{role}' and attributes.run_name = '{name}'"
        if sweep:
            where += f" and tags.`{SWEEP}` = '{sweep}'"
        runs = self._search(where + " and attributes.status = 'FINISHED'", max_results=1)
        return (runs[0].info.run_id, dict(runs[0].data.tags)) if runs else None

    def run_tags(self, run_id: str) -> dict[str, str]:
        return dict(self.client.get_run(run_id).data.tags)

    # --- the pretraining cache -----------------------------------------------------------

    def find_pretrained(
        self,
        key: str,
        name: str,
        legacy_artifact: str,
        destination: Path,
        newer_than: int | None = None,
    ) -> tuple[str, Path] | None:
        """Download the model of the newest FINISHED pretraining run for ``key``: (run id,
        local path). The path is an MLflow model folder (the run's logged model ``name``) or,
        for runs made before models were logged, the ``.keras`` file ``legacy_artifact``.

        Only FINISHED runs count: a run killed while writing its weights never finishes, so a
        half-written entry is never loaded. ``newer_than`` (ms since the epoch): only runs
        started at or after it (``force=true``: only what this sweep trained).
        """
        for run_id in self.pretrained_runs(key, newer_than):
            try:
                model_id = self.logged_model_id(run_id, name)
                if model_id:
                    local = mlflow.artifacts.download_artifacts(
                        artifact_uri=f"models:/{model_id}",
                        dst_path=str(destination / run_id), tracking_uri=self.settings.uri,
                    )  # fmt: skip
                else:
                    local = self.client.download_artifacts(
                        run_id, legacy_artifact, str(destination)
                    )
            except Exception:
                continue  # artifacts gone (e.g. deleted by hand): try an older entry
            return run_id, Path(local)
        return None

    def pretrained_runs(self, key: str, newer_than: int | None = None) -> list[str]:
        """The FINISHED pretraining runs of cache key ``key``, newest first (started at or
        after ``newer_than``, ms, when given): the candidates ``find_pretrained`` loads from."""
        since = f" and attributes.start_time >= {int(newer_than)}" if newer_than else ""
        runs = self._search(
            f"tags.`{PRETRAIN_KEY}` = '{key}' and tags.`{ROLE}` = 'pretrain' "
            f"and attributes.status = 'FINISHED'{since}"
        )
        return [run.info.run_id for run in runs]

    def logged_model_id(self, run_id: str, name: str) -> str | None:
        """The id of the newest logged model ``name`` that run ``run_id`` produced, if any."""
        models = self.client.search_logged_models(
            [self.experiment_id],
            filter_string=f"source_run_id = '{run_id}' AND name = '{name}'",
            order_by=[{"field_name": "creation_time", "ascending": False}],
            max_results=1,
        )
        return models[0].model_id if models else None

    # --- models from other runs (transfer sources) ----------------------------------------

    def download_model(self, uri: str, destination: Path) -> Path:
        """Download a model URI: a file or an MLflow model folder.

        ``runs:/<run id>/<name>`` is the run's logged model ``name`` if it has one (else an
        artifact path, e.g. an old run's ``models/classifier.keras``); ``models:/<name>/<version>``
        and ``models:/<name>@<alias>`` are resolved to their source first, so a version may point
        at a single file (MLflow's own ``models:/`` download only fetches folders).
        """
        try:
            if uri.startswith("models:/"):
                source = self._model_version_source(uri)
            else:
                source = self._logged_model_of_run(uri) or uri
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(destination), tracking_uri=self.settings.uri
            )
        except MlflowException as error:
            reason = str(error.message).strip().splitlines()[0]
            raise TrackingError(f"cannot download from {self.settings.uri}: {reason}") from None
        return Path(local)

    def _logged_model_of_run(self, uri: str) -> str | None:
        run_id, _, name = uri[len("runs:/") :].strip("/").partition("/")
        if not name or "/" in name:
            return None
        model_id = self.logged_model_id(run_id, name)
        return f"models:/{model_id}" if model_id else None

    def _model_version_source(self, uri: str) -> str:
        rest = uri[len("models:/") :].rstrip("/")
        if rest.startswith("m-") and "/" not in rest and "@" not in rest:
            return uri  # a logged model's own id
        if "@" in rest:
            name, _, alias = rest.rpartition("@")
            if name and alias:
                version = self.client.get_model_version_by_alias(name, alias)
                return self.client.get_model_version_download_uri(name, version.version)
        name, _, version = rest.rpartition("/")
        if not name or not version.isdigit():
            raise TrackingError(
                "not of the form models:/<name>/<version> or models:/<name>@<alias>, e.g. "
                "models:/src/1"
            )
        return self.client.get_model_version_download_uri(name, version)

    def register_model(
        self, name: str, uri: str, run_id: str | None = None, alias: str | None = None
    ) -> str:
        """Register ``uri`` as a new version of the registered model ``name`` (created if
        missing), optionally under ``alias``; returns the version. ``uri`` is a logged model
        (``models:/<model id>``, or ``runs:/<run id>/<name>`` of one, linked as its lineage) or
        an artifact (e.g. an old run's ``runs:/<id>/models/classifier.keras``)."""
        source = uri
        if uri.startswith("runs:/"):
            source = self._logged_model_of_run(uri) or uri
        model_id = source[len("models:/") :] if source.startswith("models:/m-") else None
        if model_id and run_id is None:
            run_id = self.client.get_logged_model(model_id).source_run_id
        with self._store_lock():
            try:
                self.client.get_registered_model(name)
            except MlflowException:
                self.client.create_registered_model(name)
            version = self.client.create_model_version(
                name, source, run_id=run_id, model_id=model_id
            )
            if alias:
                self.client.set_registered_model_alias(name, alias, version.version)
        return str(version.version)

    # --- sweeps --------------------------------------------------------------------------

    def sweep_parent(self, sweep: str, create: bool = True) -> str | None:
        """The id of the sweep's parent run (one per sweep name), created if missing."""
        with self._store_lock():
            runs = self._search(f"tags.`{ROLE}` = 'sweep' and tags.`{SWEEP}` = '{sweep}'")
            if runs:
                return runs[0].info.run_id
            if not create:
                return None
            run = self.client.create_run(
                self.experiment_id, run_name=f"sweep {sweep}",
                tags={ROLE: "sweep", SWEEP: sweep, HOST: socket.gethostname()},
            )  # fmt: skip
            # Not left RUNNING: the multirun callback marks it RUNNING while the sweep runs.
            self.client.set_terminated(run.info.run_id, "FINISHED")
            return run.info.run_id

    def record_sweep_start(self, parent: str, command: str) -> None:
        """Note on the parent when the sweep started (now) and the command that started it."""
        commands = self.run_tags(parent).get(SWEEP_COMMANDS, "").splitlines()
        if command not in commands:
            commands.append(command)
        RunLog(self.client, parent).set_tags(
            {SWEEP_STARTED: int(time.time() * 1000), SWEEP_COMMANDS: "\n".join(commands)[-5000:]}
        )

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        """Set a run's status; RUNNING also records this process as its owner (host, pid)."""
        if error:
            self.client.set_tag(run_id, "tiedae.error", error)
        if status == "RUNNING":
            RunLog(self.client, run_id).set_tags({HOST: socket.gethostname(), PID: os.getpid()})
            self.client.update_run(run_id, status="RUNNING")
        else:
            self.client.set_terminated(run_id, status)

    def mark_dead_runs_killed(self) -> list[str]:
        """Runs left RUNNING by a process on this host that no longer exists (e.g. SIGKILL).

        Runs owned by processes on other machines are left alone: only they can tell.
        """
        host, killed = socket.gethostname(), []
        for run in self._search("attributes.status = 'RUNNING'"):
            tags = run.data.tags
            if tags.get(HOST) != host or not tags.get(PID):
                continue
            if not _process_alive(int(tags[PID])):
                self.client.set_tag(run.info.run_id, "tiedae.error", "process died (e.g. SIGKILL)")
                self.client.set_terminated(run.info.run_id, "KILLED")
                killed.append(run.info.run_id)
        return killed

    def live_jobs(self, sweep: str) -> list[str]:
        """The sweep's RUNNING job runs owned by other live processes on this host."""
        host, me = socket.gethostname(), str(os.getpid())
        runs = self._search(
            f"tags.`{ROLE}` = 'job' and tags.`{SWEEP}` = '{sweep}' "
            "and attributes.status = 'RUNNING'"
        )
        return [
            run.info.run_id for run in runs
            if run.data.tags.get(HOST) == host and run.data.tags.get(PID) not in (None, me)
            and _process_alive(int(run.data.tags[PID]))
        ]  # fmt: skip

    def note_skipped(self, parent_run_id: str, run_key: str, launch: str | None = None) -> None:
        """Record on the sweep's parent run that a job was skipped (already FINISHED): when,
        and by which launch; one tag per job and launch, so that two processes skipping the
        same job do not overwrite each other's note."""
        stamp = f"{int(time.time() * 1000)} {launch or ''}".rstrip()
        self.client.set_tag(parent_run_id, skipped_tag(run_key, launch), stamp)

    def sweep_progress(
        self, sweep: str, parent_run_id: str, since_ms: int, launch: str | None = None
    ) -> dict[str, int]:
        """What the sweep's jobs did since ``since_ms`` (only those of ``launch``, when given:
        other processes may run the same sweep): jobs whose run ended FINISHED (``done``, of
        them ``hits`` loaded their pretrained model from the cache), ended otherwise
        (``failed``), ``running``, and jobs ``skipped`` as already FINISHED.

        A job is counted once, by its run key, however many runs it has (two processes may
        both run it, or one skip what the other ran): done if one of its runs FINISHED, else
        running if one runs, else failed; skipped only if none of them ran it meanwhile."""
        where = f"tags.`{ROLE}` = 'job' and tags.`{SWEEP}` = '{sweep}'"
        if launch:
            where += f" and tags.`{LAUNCH}` = '{launch}'"
        state: dict[str, str] = {}  # run key (or run id, if untagged) -> done|hit|running|failed
        rank = {"failed": 0, "running": 1, "done": 2, "hit": 3}
        for run in self._search(where, max_results=50000):
            status, ended = run.info.status, run.info.end_time or 0
            if status == "RUNNING":
                now = "running"
            elif ended < since_ms:
                continue
            elif status == "FINISHED":
                now = "hit" if run.data.tags.get("pretrain.cache") == "hit" else "done"
            else:
                now = "failed"
            job = run.data.tags.get(RUN_KEY, run.info.run_id)
            if rank[now] > rank.get(state.get(job, ""), -1):
                state[job] = now
        skipped = set()
        for key, value in self.client.get_run(parent_run_id).data.tags.items():
            if key.startswith(SKIPPED):
                stamp, _, by = value.partition(" ")
                if int(stamp) >= since_ms and (not launch or by == launch):
                    skipped.add(key[len(SKIPPED) :].partition(".")[0])
        states = list(state.values())
        return {
            "done": states.count("done") + states.count("hit"),
            "failed": states.count("failed"),
            "running": states.count("running"),
            "skipped": len(skipped - set(state)),
            "hits": states.count("hit"),
        }

    def sweep_names(self) -> list[str]:
        """Sweep names, newest first."""
        runs = self._search(f"tags.`{ROLE}` = 'sweep'")
        return [run.data.tags[SWEEP] for run in runs]

    def jobs_frame(self, sweep: str, finished_only: bool = True) -> pd.DataFrame:
        """The sweep's job runs as mlflow.search_runs gives them: one row a run."""
        status = " and attributes.status = 'FINISHED'" if finished_only else ""
        return mlflow.search_runs(
            experiment_ids=[self.experiment_id],
            filter_string=f"tags.`{ROLE}` = 'job' and tags.`{SWEEP}` = '{sweep}'{status}",
            max_results=50000,
            output_format="pandas",
        )

    def count_runs(self, role: str) -> int:
        return len(self._search(f"tags.`{ROLE}` = '{role}'", max_results=50000))


# --- logged models: the Keras flavour -------------------------------------------------------


class _KerasFlavor:
    """``mlflow.keras`` for ``Model.log``: the model folder is created before the input example
    is written (MLflow 3.17's Keras ``save_model`` writes it first), and models holding tiedae's
    layers get ``tiedae.tracking`` as pyfunc loader, which registers those layers first."""

    __name__ = "mlflow.keras"

    @staticmethod
    def save_model(path: str, mlflow_model, needs_tiedae: bool = False, **kwargs) -> None:
        import mlflow.keras

        kwargs.pop("validate_serving_input", None)
        os.makedirs(path, exist_ok=True)
        mlflow.keras.save_model(path=path, mlflow_model=mlflow_model, **kwargs)
        if needs_tiedae:
            mlflow_model.flavors["python_function"]["loader_module"] = __name__
            mlflow_model.save(os.path.join(path, "MLmodel"))


def _load_pyfunc(path: str):
    """pyfunc loader of logged models with tiedae's layers: register them, then load as Keras."""
    import mlflow.keras

    import tiedae.models  # noqa: F401  (registers Autoencoder, DenseTranspose, rounded_accuracy)

    return mlflow.keras._load_pyfunc(path)


def _needs_tiedae(model: Any) -> bool:
    import keras

    return '"tiedae>' in json.dumps(keras.saving.serialize_keras_object(model), default=str)


@functools.lru_cache(maxsize=1)
def pip_requirements() -> tuple[str, ...]:
    """Pinned keras and tensorflow (whichever distribution is installed), given to MLflow."""
    pins = []
    for names in (("keras",), ("tensorflow", "tensorflow-cpu")):
        for name in names:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                pins.append(f"{name}=={importlib.metadata.version(name)}")
                break
    return tuple(pins)


def load_keras_model(path: Path) -> Any:
    """A Keras model from an MLflow model folder (``MLmodel`` inside) or a ``.keras`` file."""
    import keras
    import mlflow.keras

    import tiedae.models  # noqa: F401  (registers tiedae's layers)

    path = Path(path)
    if (path / "MLmodel").is_file():
        return mlflow.keras.load_model(str(path))
    return keras.saving.load_model(path)


def _check_server(uri: str, timeout: float = 5.0) -> None:
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as error:
        problem = str(getattr(error, "reason", error))
    raise TrackingError(
        f"tracking server {uri} is unreachable ({problem}); start it (see README, Team setup) "
        "or use tracking=sqlite"
    )


def _is_duplicate_insert(error: Exception) -> bool:
    """A unique-key refusal (sqlite, PostgreSQL, MySQL): a concurrent insert of the same row."""
    text = str(error)
    return "IntegrityError" in text or "UNIQUE constraint failed" in text or "Duplicate" in text


def _process_alive(pid: int) -> bool:
    """Whether ``pid`` runs here; a zombie (exited, not yet reaped) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux) or just gone: the signal said it was there
    return stat.rpartition(")")[2].split()[0] != "Z"


def _check_same_location(experiment, location: str | None, configured: str | None) -> None:
    """Artifacts go where the config says, or the run stops: never silently elsewhere."""
    if location is None or experiment.artifact_location.rstrip("/") == location.rstrip("/"):
        return
    raise TrackingError(
        f"tracking.artifact_dir={configured}, but experiment {experiment.name!r} in this store "
        f"keeps its artifacts in {experiment.artifact_location}; set tracking.artifact_dir to "
        "that folder, or use a new tracking.experiment name"
    )


class SignalSafe:
    """An ``MlflowClient`` whose every call ends before a SIGTERM is acted on.

    A SIGTERM turned into KeyboardInterrupt in the middle of a sqlite write can leave that
    write's transaction open in this process, and the run's closing writes then wait on it
    until "database is locked" (seen under load, run status left RUNNING).
    """

    def __init__(self, client: MlflowClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def held(*args: Any, **kwargs: Any) -> Any:
            with timed("other logging", unless_in=STORE_PHASES), sigterm_held():
                return attribute(*args, **kwargs)

        return held


@contextlib.contextmanager
def sigterm_handled_by(handler: Callable[[int, Any], Any]) -> Iterator[bool]:
    """SIGTERM goes to ``handler`` inside the block (yields False, and changes nothing, off the
    main thread, where Python cannot set handlers)."""
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:
        yield False
        return
    try:
        yield True
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def sigterm_held() -> Iterator[None]:
    """Defer SIGTERM while a run's closing status is written, then deliver it.

    A handler swap, not a signal mask: CPython runs Python handlers in the main thread even
    when the kernel hands the signal to another (TensorFlow's) thread.
    """
    received: list[int] = []
    with sigterm_handled_by(lambda signum, frame: received.append(signum)):
        yield
    if received:
        signal.raise_signal(signal.SIGTERM)


@contextlib.contextmanager
def sigterm_as_keyboard_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so a terminated run ends KILLED, not RUNNING."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    with sigterm_handled_by(interrupt):
        yield
