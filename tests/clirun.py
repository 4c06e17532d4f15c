"""Helpers for tests that start the command line, signal it, and read what it left in the store.

``conftest.run_cli`` runs a command to its end; these start one and leave it running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from tiedae.config import PROJECT_ROOT
from tiedae.tracking import ROLE, Tracker, TrackingSettings

T = TypeVar("T")
# the smoke sweep's digits with fewer epochs and one thread a job
FAST = ["pretrain.epochs=2", "classifier.epochs=3", "runtime.threads=1", "runtime.verbose=0"]


def sqlite_uri(root: Path) -> str:
    return f"sqlite:///{root}/mlflow.db"


def store_overrides(root: Path) -> list[str]:
    """The store, its artifacts and Hydra's output folders, all under ``root``."""
    return [
        f"tracking.uri={sqlite_uri(root)}",
        f"tracking.artifact_dir={root}/artifacts",
        f"hydra.run.dir={root}/outputs",
        f"hydra.sweep.dir={root}/multirun",
    ]


def store_tracker(root: Path, database_dir: Path | None = None) -> Tracker:
    """A tracker on the store that ``store_overrides(root)`` points runs at (its sqlite file
    in ``database_dir`` when given)."""
    settings = TrackingSettings(
        sqlite_uri(database_dir or root), artifact_dir=str(root / "artifacts")
    )
    return Tracker(settings).connect()


def find_runs(tracker: Tracker, where: str = "") -> list:
    """Runs of the tracker's experiment matching an MLflow filter string."""
    return tracker.client.search_runs([tracker.experiment_id], where, max_results=10000)


def runs_by_role(tracker: Tracker, role: str, status: str | None = None) -> list:
    where = f"tags.`{ROLE}` = '{role}'"
    if status:
        where += f" and attributes.status = '{status}'"
    return find_runs(tracker, where)


def start_cli(overrides: Sequence[str], log: Path) -> subprocess.Popen:
    """``tiedae [overrides]`` in its own process group, output to ``log``, not waited for."""
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tiedae", *overrides], cwd=PROJECT_ROOT, env=env,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def stop_group(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the process group that ``start_cli`` made, then reap its leader."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    process.wait(timeout=60)


def wait_for(probe: Callable[[], T], timeout: float, what: str, every: float = 0.3) -> T:
    """Poll ``probe`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
