"""Stage 5 — tracking: everything that talks to MLflow lives here, and only here.

Runs, nested runs, tags, metrics, artifacts, the pretraining cache and the look-ups that resume
a sweep. The embedded default is one sqlite file; a tracking server works the same way.
Processes that share a sqlite file take a file lock while they set the store up or create a
sweep's parent run, since those steps race. Locks are files on this machine: processes on
other machines sharing a tracking server are not serialised by them (see ``Tracker.lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

ROLE = "tiedae.role"  # job | pretrain | sweep
SWEEP = "tiedae.sweep"
RUN_KEY = "tiedae.run_key"
PRETRAIN_KEY = "tiedae.pretrain_key"
HOST, PID = "tiedae.host", "tiedae.pid"
PARENT = "mlflow.parentRunId"
SKIPPED = "tiedae.skipped."  # + run key, on a sweep's parent: a job skipped as FINISHED
BATCH_LIMIT = 100  # MLflow's most params or metrics in one log_batch call


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message says which URI and what to do."""


@dataclass(frozen=True)
class TrackingSettings:
    uri: str
    experiment: str = "tiedae"
    artifact_dir: str | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TrackingSettings:
        return cls(cfg["uri"], cfg.get("experiment", "tiedae"), cfg.get("artifact_dir"))

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


class RunLog:
    """Logging into one MLflow run by id (no global active run, so runs can nest freely)."""

    def __init__(self, client: MlflowClient, run_id: str):
        self.client, self.run_id = client, run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [Param(key, str(value)[:6000]) for key, value in params.items()]
        for start in range(0, len(items), BATCH_LIMIT):
            self.client.log_batch(self.run_id, params=items[start : start + BATCH_LIMIT])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        items = [Metric(key, float(value), now, step or 0) for key, value in metrics.items()]
        for start in range(0, len(items), BATCH_LIMIT):
            self.client.log_batch(self.run_id, metrics=items[start : start + BATCH_LIMIT])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        items = [RunTag(key, str(value)) for key, value in tags.items()]
        self.client.log_batch(self.run_id, tags=items)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        """Log a file; a failed write raises instead of leaving the artifact silently missing."""
        try:
            self.client.log_artifact(self.run_id, str(path), folder)
        except Exception as error:
            raise TrackingError(
                f"could not store artifact {Path(path).name} for run {self.run_id}: {error}; "
                "check free space and permissions of the artifact store (tracking.artifact_dir)"
            ) from error

    def log_text(self, text: str, artifact_file: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / Path(artifact_file).name
            path.write_text(text)
            folder_name = str(Path(artifact_file).parent)
            self.log_artifact(path, None if folder_name == "." else folder_name)


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
            self.client = MlflowClient(uri)
            experiment = self.client.get_experiment_by_name(self.settings.experiment)
            if experiment is None:
                self.experiment_id = self.client.create_experiment(
                    self.settings.experiment, artifact_location=location
                )
            else:
                _check_same_location(experiment, location, self.settings.artifact_dir)
                self.experiment_id = experiment.experiment_id
        return self

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
            log = RunLog(self.client, resume)
        else:
            all_tags = {**tags, HOST: socket.gethostname(), PID: os.getpid()}
            if parent_run_id:
                all_tags[PARENT] = parent_run_id
            run = self.client.create_run(
                self.experiment_id, run_name=name, tags={k: str(v) for k, v in all_tags.items()}
            )
            log = RunLog(self.client, run.info.run_id)
        with sigterm_as_keyboard_interrupt():
            try:
                yield log
            except (KeyboardInterrupt, SystemExit) as stop:
                log.set_tags({"tiedae.error": f"interrupted ({type(stop).__name__})"})
                self.client.set_terminated(log.run_id, RunStatus.to_string(RunStatus.KILLED))
                raise
            except BaseException as error:
                log.set_tags({"tiedae.error": f"{type(error).__name__}: {error}"[:5000]})
                self.client.set_terminated(log.run_id, RunStatus.to_string(RunStatus.FAILED))
                raise
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

    # --- the pretraining cache -----------------------------------------------------------

    def find_pretrained(
        self, key: str, artifact_path: str, destination: Path
    ) -> tuple[str, Path] | None:
        """Download a FINISHED pretraining run's artifact for ``key``: (run id, local path).

        Only FINISHED runs count: a run killed while writing its weights never finishes, so a
        half-written entry is never loaded.
        """
        runs = self._search(
            f"tags.`{PRETRAIN_KEY}` = '{key}' and tags.`{ROLE}` = 'pretrain' "
            f"and attributes.status = 'FINISHED'"
        )
        for run in runs:
            try:
                local = self.client.download_artifacts(
                    run.info.run_id, artifact_path, str(destination)
                )
            except Exception:
                continue  # artifacts gone (e.g. deleted by hand): try an older entry
            return run.info.run_id, Path(local)
        return None

    # --- models from other runs (transfer sources) ----------------------------------------

    def download_model(self, uri: str, destination: Path) -> Path:
        """Download ``runs:/<run id>/<path>`` or ``models:/<name>/<version>``: a file or folder.

        A registered version is resolved to its source first, so a version may point at a
        single file (MLflow's own ``models:/`` download only fetches folders).
        """
        try:
            source = self._model_version_source(uri) if uri.startswith("models:/") else uri
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(destination), tracking_uri=self.settings.uri
            )
        except MlflowException as error:
            reason = str(error.message).strip().splitlines()[0]
            raise TrackingError(f"cannot download from {self.settings.uri}: {reason}") from None
        return Path(local)

    def _model_version_source(self, uri: str) -> str:
        name, _, version = uri[len("models:/") :].rstrip("/").rpartition("/")
        if not name or not version.isdigit():
            raise TrackingError("not of the form models:/<name>/<version>, e.g. models:/src/1")
        return self.client.get_model_version_download_uri(name, version)

    def register_model(self, name: str, artifact_uri: str, run_id: str | None = None) -> str:
        """Register ``artifact_uri`` (e.g. ``runs:/<id>/models/classifier.keras``) as a new
        version of the registered model ``name``, created if missing; returns the version."""
        with self._store_lock():
            try:
                self.client.get_registered_model(name)
            except MlflowException:
                self.client.create_registered_model(name)
            version = self.client.create_model_version(name, artifact_uri, run_id=run_id)
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

    def note_skipped(self, parent_run_id: str, run_key: str) -> None:
        """Record on the sweep's parent run that a job was skipped (already FINISHED)."""
        self.client.set_tag(parent_run_id, f"{SKIPPED}{run_key}", str(int(time.time() * 1000)))

    def sweep_progress(self, sweep: str, parent_run_id: str, since_ms: int) -> dict[str, int]:
        """What the sweep's jobs did since ``since_ms``: runs ended FINISHED (``done``, of
        them ``hits`` loaded their pretrained model from the cache), ended otherwise
        (``failed``), ``running``, and jobs ``skipped`` as already FINISHED."""
        counts = dict.fromkeys(("done", "failed", "running", "skipped", "hits"), 0)
        for run in self._search(
            f"tags.`{ROLE}` = 'job' and tags.`{SWEEP}` = '{sweep}'", max_results=50000
        ):
            status, ended = run.info.status, run.info.end_time or 0
            if status == "RUNNING":
                counts["running"] += 1
            elif ended >= since_ms:
                counts["done" if status == "FINISHED" else "failed"] += 1
                if status == "FINISHED" and run.data.tags.get("pretrain.cache") == "hit":
                    counts["hits"] += 1
        tags = self.client.get_run(parent_run_id).data.tags
        counts["skipped"] = sum(
            1 for key, value in tags.items() if key.startswith(SKIPPED) and int(value) >= since_ms
        )
        return counts

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


@contextlib.contextmanager
def sigterm_as_keyboard_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so a terminated run ends KILLED, not RUNNING."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
