"""Shared fixtures: configs from Hydra's compose(), shrunk; a throwaway MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from tiedae.config import CONFIG_DIR, PROJECT_ROOT

# Small and fast: digits, a couple of epochs, no progress bars.
QUICK = [
    "data=digits",
    "++pretrain.epochs=2",
    "classifier.epochs=4",
    "classifier.patience=2",
    "labels.count=100",
    "runtime.verbose=0",
]


def images_right(accuracy: float, n_images: int = 360) -> int:
    """How many of ``n_images`` (default: digits' 360 test images) ``accuracy`` says were
    right; fails unless it is a whole number of them (an accuracy over that very set)."""
    count = accuracy * n_images
    assert abs(count - round(count)) < 1e-3, (accuracy, n_images)
    return round(count)


def make_config(*overrides: str) -> DictConfig:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture
def store(tmp_path: Path) -> list[str]:
    """Overrides that send runs to a sqlite store and artifact folder under tmp_path."""
    return [
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"tracking.artifact_dir={tmp_path}/artifacts",
    ]


def run_cli(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m tiedae ARGS`` in a fresh process, as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(
        [sys.executable, "-m", "tiedae", *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"tiedae {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result
