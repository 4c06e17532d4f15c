"""The command line: ``tiedae [overrides]`` or ``python -m tiedae [overrides]``, Hydra-style."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import hydra
from omegaconf import DictConfig

from tiedae.config import CONFIG_DIR, ConfigError, DivergedError, validate
from tiedae.data import DataError
from tiedae.tracking import TrackingError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

USER_ERRORS = (ConfigError, DataError, TrackingError, DivergedError)


def exit_with_error(error: Exception) -> NoReturn:
    """The one-line message for bad input, then exit status 2 (no traceback)."""
    print(f"tiedae: error: {error}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    try:
        validate(cfg)  # before TensorFlow loads: a bad value fails in a second
        from tiedae.pipeline import run_experiment  # deferred: --help and --cfg stay fast

        results = run_experiment(cfg)
    except USER_ERRORS as error:
        exit_with_error(error)
    return results.get("test/accuracy")


if __name__ == "__main__":
    main()
