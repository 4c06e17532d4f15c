"""Sweeps: a sweep's parent run, the jobs it skipped, its progress since it started, its job
runs as a table, and the runs that dead processes on this host left RUNNING."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from typing import Any

import mlflow
import pandas as pd

from tiedae.pool import POOL_PARAMS
from tiedae.tracking.keys import (
    ERROR,
    HOST,
    LAUNCH,
    PID,
    PRETRAIN_KEY,
    ROLE,
    RUN_KEY,
    SKIPPED,
    SWEEP,
    SWEEP_COMMANDS,
    SWEEP_STARTED,
)
from tiedae.tracking.locks import process_alive
from tiedae.tracking.runlog import RunLog
from tiedae.tracking.store import TrackerBase

EPOCH_METRIC = "clf/loss"  # logged once an epoch of the classifier stage, step = epoch (0-based)


def skipped_tag(run_key: str, launch: str | None) -> str:
    """The parent run's tag noting that ``launch`` skipped the job ``run_key``."""
    if not launch:
        return f"{SKIPPED}{run_key}"
    return f"{SKIPPED}{run_key}.{hashlib.sha256(launch.encode()).hexdigest()[:8]}"


class Sweeps(TrackerBase):
    """The ``Tracker``'s sweeps: parent runs, skipped jobs, progress, job tables."""

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

    def mark_dead_runs_killed(self) -> list[str]:
        """Runs left RUNNING by a process on this host that no longer exists (e.g. SIGKILL).

        Runs owned by processes on other machines are left alone: only they can tell.
        """
        host, killed = socket.gethostname(), []
        for run in self._search("attributes.status = 'RUNNING'"):
            tags = run.data.tags
            if tags.get(HOST) != host or not tags.get(PID):
                continue
            if not process_alive(int(tags[PID])):
                self.client.set_tag(run.info.run_id, ERROR, "process died (e.g. SIGKILL)")
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
            and process_alive(int(run.data.tags[PID]))
        ]  # fmt: skip

    def note_skipped(self, parent_run_id: str, run_key: str, launch: str | None = None) -> None:
        """Record on the sweep's parent run that a job was skipped (already FINISHED): when,
        and by which launch; one tag per job and launch, so that two processes skipping the
        same job do not overwrite each other's note."""
        stamp = f"{int(time.time() * 1000)} {launch or ''}".rstrip()
        self.client.set_tag(parent_run_id, skipped_tag(run_key, launch), stamp)

    def sweep_progress(
        self, sweep: str, parent_run_id: str, since_ms: int, launch: str | None = None
    ) -> dict[str, Any]:
        """What the sweep's jobs did since ``since_ms`` (only those of ``launch``, when given:
        other processes may run the same sweep): jobs whose run ended FINISHED (``done``, of
        them ``hits`` loaded their pretrained model from the cache), ended otherwise
        (``failed``), ``running``, and jobs ``skipped`` as already FINISHED; ``epochs``, for
        each running run, its classifier stage's epochs done and planned (``running_epochs``).

        A job is counted once, by its run key, however many runs it has (two processes may
        both run it, or one skip what the other ran): done if one of its runs FINISHED, else
        running if one runs, else failed; skipped only if none of them ran it meanwhile."""
        where = f"tags.`{ROLE}` = 'job' and tags.`{SWEEP}` = '{sweep}'"
        if launch:
            where += f" and tags.`{LAUNCH}` = '{launch}'"
        state: dict[str, str] = {}  # run key (or run id, if untagged) -> done|hit|running|failed
        running = []
        rank = {"failed": 0, "running": 1, "done": 2, "hit": 3}
        for run in self._search(where, max_results=50000):
            status, ended = run.info.status, run.info.end_time or 0
            if status == "RUNNING":
                now = "running"
                running.append(run)
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
            "epochs": [self.running_epochs(run) for run in running],
        }

    def running_epochs(self, run: mlflow.entities.Run) -> tuple[int, int | None]:
        """A running job's epochs done in its classifier stage (0 while it pretrains) and the
        epochs it plans when its params say (``objective.epochs``: the objectives' rows, whose
        schedules run to the end; other rows may stop early)."""
        history = self.client.get_metric_history(run.info.run_id, EPOCH_METRIC)
        done = max((metric.step for metric in history), default=-1) + 1
        planned = run.data.params.get("objective.epochs", "")
        return done, int(planned) if planned.isdigit() else None

    def sweep_names(self) -> list[str]:
        """Sweep names, newest first."""
        runs = self._search(f"tags.`{ROLE}` = 'sweep'")
        return [run.data.tags[SWEEP] for run in runs]

    def jobs_frame(self, sweep: str | None, finished_only: bool = True) -> pd.DataFrame:
        """The sweep's job runs (every sweep's: ``None``) as mlflow.search_runs gives them: one
        row a run; a job that loaded or trained a pretrained encoder has its pretraining run's
        pool params (``POOL_PARAMS``: the images it was pretrained on) where it logged none of
        its own."""
        status = " and attributes.status = 'FINISHED'" if finished_only else ""
        of_sweep = f" and tags.`{SWEEP}` = '{sweep}'" if sweep is not None else ""
        jobs = self._frame(f"tags.`{ROLE}` = 'job'{of_sweep}{status}")
        return self._with_pretraining_pools(jobs)

    def _frame(self, where: str) -> pd.DataFrame:
        """The experiment's runs matching ``where``, as mlflow.search_runs' frame."""
        return mlflow.search_runs(
            experiment_ids=[self.experiment_id], filter_string=where, max_results=50000,
            output_format="pandas",
        )  # fmt: skip

    def _with_pretraining_pools(self, jobs: pd.DataFrame) -> pd.DataFrame:
        key = f"tags.{PRETRAIN_KEY}"
        if jobs.empty or key not in jobs:
            return jobs
        pretrainings = self._frame(f"tags.`{ROLE}` = 'pretrain' and attributes.status = 'FINISHED'")
        if pretrainings.empty or key not in pretrainings:
            return jobs
        pretrainings = pretrainings.drop_duplicates(key)
        for param in POOL_PARAMS:
            column = f"params.{param}"
            if column not in pretrainings:
                continue
            drawn = jobs[key].map(pretrainings.set_index(key)[column])
            jobs[column] = jobs[column].fillna(drawn) if column in jobs else drawn
        return jobs

    def count_runs(self, role: str) -> int:
        return len(self._search(f"tags.`{ROLE}` = '{role}'", max_results=50000))
