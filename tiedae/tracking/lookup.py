"""Finding runs to reuse: a stopped run to resume from its checkpoint, a sweep's FINISHED job,
the newest FINISHED run of a name, and the pretraining cache's entries (newest FINISHED first)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from pathlib import Path

import mlflow

from tiedae.tracking.keys import HOST, PID, PRETRAIN_KEY, ROLE, RUN_KEY, SWEEP
from tiedae.tracking.locks import process_alive
from tiedae.tracking.store import TrackerBase


class RunLookups(TrackerBase):
    """The ``Tracker``'s look-ups of runs to resume or reuse."""

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
                or process_alive(int(run_tags[PID]))
            ):
                continue  # still training, or on another machine: not ours to take over
            if run.info.status in ("KILLED", "FAILED", "RUNNING") and any(
                folder(run.info.run_id).rglob("state.pkl")
            ):
                return run.info.run_id
        return None

    def find_finished_job(self, sweep: str, run_key: str) -> str | None:
        runs = self._search(
            f"tags.`{SWEEP}` = '{sweep}' and tags.`{RUN_KEY}` = '{run_key}' "
            f"and attributes.status = 'FINISHED'"
        )
        return runs[0].info.run_id if runs else None

    def latest_finished(
        self, role: str, run_name: str, sweep: str | None = None
    ) -> tuple[str, dict[str, str]] | None:
        """The newest FINISHED run of ``role`` named ``run_name`` (in ``sweep``): (id, tags)."""
        name = run_name.replace("'", "\\'")
        where = f"tags.`{ROLE}` = '{role}' and attributes.run_name = '{name}'"
        if sweep:
            where += f" and tags.`{SWEEP}` = '{sweep}'"
        runs = self._search(where + " and attributes.status = 'FINISHED'", max_results=1)
        return (runs[0].info.run_id, dict(runs[0].data.tags)) if runs else None

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
