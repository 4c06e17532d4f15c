"""The command line: ``tiedae [overrides]`` or ``python -m tiedae [overrides]``, Hydra-style."""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from tiedae.config import CONFIG_DIR, ConfigError, DivergedError
from tiedae.data import DataError
from tiedae.tracking import TrackingError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

USER_ERRORS = (ConfigError, DataError, TrackingError, DivergedError)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    from tiedae.pipeline import run_experiment  # deferred: --help and --cfg stay fast

    try:
        results = run_experiment(cfg)
    except USER_ERRORS as error:
        print(f"tiedae: error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    return results.get("test/accuracy")


if __name__ == "__main__":
    main()
