"""Every measurement in a process of its own: a worker (``python -m tiedae.bench --worker``)
or a ``tiedae`` command, with its wall and CPU time and peak RSS."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiedae.bench.measure import RESULT_PREFIX, Measurement
from tiedae.config import PROJECT_ROOT

CHILD_ENV = {"PYTHONUNBUFFERED": "1"}  # TensorFlow's chatter: tiedae/quiet.py


@dataclass
class Child:
    returncode: int
    output: str
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float


def run_child(command: Sequence[str], timeout: float, cwd: Path = PROJECT_ROOT) -> Child:
    """Run ``command``; its exit code, output, wall and CPU time and peak RSS (``wait4``)."""
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(command), stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
            env={**os.environ, **CHILD_ENV},
        )  # fmt: skip
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        log.seek(0)
        output = log.read().decode(errors="replace")
    return Child(
        process.returncode, output, seconds, usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,  # KiB on Linux
    )  # fmt: skip


def run_worker(
    stage: str, spec: dict[str, Any], timeout: float, what: str = ""
) -> tuple[Any, Child]:
    """The result a stage's worker printed, in a process of its own, and that process."""
    child = run_child(
        [sys.executable, "-m", "tiedae.bench", "--worker", stage, json.dumps(spec)], timeout
    )
    lines = [line for line in child.output.splitlines() if line.startswith(RESULT_PREFIX)]
    if child.returncode != 0 or not lines:
        raise RuntimeError(
            f"{what or f'bench worker {stage} {spec}'} failed (exit {child.returncode}):\n"
            f"{child.output[-3000:]}"
        )
    return json.loads(lines[-1][len(RESULT_PREFIX) :]), child


def measure_in_child(stage: str, spec: dict[str, Any], repeat: int, timeout: float) -> Measurement:
    result, child = run_worker(stage, spec, timeout)
    return Measurement(
        stage, str(spec["variant"]), spec["path"], repeat, **result,
        peak_rss_mib=child.peak_rss_mib, process_seconds=child.seconds,
    )  # fmt: skip


def measure_cli(stage: str, variant: str, overrides: Sequence[str], timeout: float) -> Measurement:
    """A ``tiedae`` command as a user runs it, into a throw-away MLflow store."""
    with tempfile.TemporaryDirectory(prefix="tiedae-bench-") as folder:
        command = [
            sys.executable, "-m", "tiedae", *overrides,
            f"tracking.uri=sqlite:///{folder}/mlflow.db", f"tracking.artifact_dir={folder}/art",
            f"hydra.run.dir={folder}/run", f"hydra.sweep.dir={folder}/multirun",
        ]  # fmt: skip
        child = run_child(command, timeout)
    if child.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{child.output[-3000:]}")
    return Measurement(
        stage, variant, "tiedae CLI", 0, seconds=child.seconds, cpu_seconds=child.cpu_seconds,
        peak_rss_mib=child.peak_rss_mib, process_seconds=child.seconds,
    )  # fmt: skip
