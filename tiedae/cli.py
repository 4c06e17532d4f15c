"""The command line: ``tiedae [overrides]`` or ``python -m tiedae [overrides]``, Hydra-style."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from tiedae.config import CONFIG_DIR, ConfigError, DivergedError, check_choices, validate
from tiedae.data import DataError
from tiedae.tracking import TrackingError

USER_ERRORS = (ConfigError, DataError, TrackingError, DivergedError)


def exit_with_error(error: Exception) -> NoReturn:
    """The one-line message for bad input, then exit status 2 (no traceback)."""
    print(f"tiedae: error: {error}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None


def sweep_job_log(cfg: DictConfig) -> Path | None:
    """A sweep job's own log file (its per-epoch lines) in its Hydra output folder; None for
    a single run, whose lines go to the terminal."""
    if not cfg.sweep.get("name") or not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return Path(hydra_cfg.runtime.output_dir) / "train.log"


# Hydra's flags that do not compose a run (help, config printing, completion): left to Hydra.
HYDRA_INFO_FLAGS = ("-h", "--help", "--hydra-help", "--version", "-c", "--cfg", "-p",
                    "--package", "-i", "--info", "-sc", "--shell-completion")  # fmt: skip
MULTIRUN_FLAGS = ("-m", "--multirun")


def precheck(argv: list[str]) -> None:
    """Hydra's own composition errors (an unknown key, a group option that does not exist, a
    malformed override) as one line and exit status 2, before Hydra would print its multi-line
    report; a sweep's grids are composed without their lists. Hydra's other flags skip it."""
    if any(arg.split("=")[0] in HYDRA_INFO_FLAGS for arg in argv):
        return
    overrides = [arg for arg in argv if arg not in MULTIRUN_FLAGS]
    if any(arg.startswith("-") for arg in overrides):
        return  # a flag this check does not know: Hydra reports it
    from tiedae.compose import compose_config

    try:
        compose_config(overrides, drop_grids=True)
    except ConfigError as error:
        exit_with_error(error)


def main() -> float | None:
    """``tiedae [overrides]``: the overrides checked as one config first, then Hydra's run."""
    precheck(sys.argv[1:])
    return run()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def run(cfg: DictConfig) -> float | None:
    try:
        check_choices(HydraConfig.get().runtime.choices)  # a typo'd method= is not the defaults
        validate(cfg)  # before TensorFlow loads: a bad value fails in a second
        from tiedae.pipeline import run_experiment  # deferred: --help and --cfg stay fast

        results = run_experiment(cfg, job_log=sweep_job_log(cfg))
    except USER_ERRORS as error:
        exit_with_error(error)
    return results.get("test/accuracy")


if __name__ == "__main__":
    main()
