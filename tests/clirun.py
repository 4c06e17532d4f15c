"""Helpers for tests that run the real command line and read what it left in the store."""

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

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from tiedae.config import CONFIG_DIR
from tiedae.tracking import ROLE, Tracker, TrackingSettings

T = TypeVar("T")
# a sweep small enough for tests: the smoke sweep's digits, fewer epochs, one thread a job
FAST = ["pretrain.epochs=2", "classifier.epochs=3", "runtime.threads=1", "runtime.verbose=0"]


def sqlite_uri(root: Path) -> str:
    return f"sqlite:///{root}/mlflow.db"


def tracking_overrides(root: Path) -> list[str]:
    """Overrides that keep the store and its artifacts under ``root``."""
    return [f"tracking.uri={sqlite_uri(root)}", f"tracking.artifact_dir={root}/artifacts"]


def store_overrides(root: Path) -> list[str]:
    """``tracking_overrides`` plus Hydra's output folders, for the command line."""
    return [
        *tracking_overrides(root),
        f"hydra.run.dir={root}/outputs",
        f"hydra.sweep.dir={root}/multirun",
    ]


def cli_command(overrides: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "tiedae", *overrides]


def run_cli(
    overrides: Sequence[str], timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``tiedae [overrides]`` to the end; stdout and stderr kept apart, as text."""
    return subprocess.run(
        cli_command(overrides), capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def start_cli(overrides: Sequence[str], log: Path) -> subprocess.Popen:
    """``tiedae [overrides]`` in its own process group, output to ``log``, not waited for."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            cli_command(overrides), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


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


def store_tracker(root: Path, database_dir: Path | None = None) -> Tracker:
    """A tracker on the store that ``tracking_overrides(root)`` points runs at (its sqlite file
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


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The config ``tiedae [overrides]`` would run, composed in this process."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))
