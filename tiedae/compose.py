"""One way for the entry points besides ``tiedae`` itself (the table, the benchmark, the
profiler, the per-row cost) to compose the run's config: the same ``conf/`` tree and override
grammar as ``tiedae``, and a one-line :class:`~tiedae.config.ConfigError` for an override that
names no setting or no option (``tiedae`` gets Hydra's own message; these get the same line).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, open_dict

from tiedae.config import CONFIG_DIR, ConfigError, check_choices


def compose_config(
    overrides: Sequence[str] = (), *, drop_grids: bool = False, hydra_config: bool = False
) -> DictConfig:
    """The config ``tiedae <overrides>`` would run. ``drop_grids``: a sweep's own command line
    is accepted, its grids (``a=1,2``) left out; ``hydra_config``: keep the ``hydra`` node
    (its sweeper's grid, for :func:`grid_configs`)."""
    overrides = list(overrides)
    if drop_grids:
        overrides = [o.input_line for o in _parse(overrides) if not o.is_sweep_override()]
    try:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
    except HydraException as error:
        raise ConfigError(one_line(error, overrides)) from None
    check_choices(cfg.hydra.runtime.choices)
    if not hydra_config:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


def grid_configs(experiment: str, overrides: Sequence[str] = ()) -> list[DictConfig]:
    """The composed config of every job of a sweep experiment's grid (its ``a,b,c`` lists, in
    the order Hydra's basic sweeper runs them: the first parameter varies slowest). As on
    ``tiedae``'s command line, an override of a swept key replaces its list (``seed=1``, or
    ``seed=1,2``), and an override's own list sweeps too."""
    base = [f"experiment={experiment}"]
    grid = compose_config([*base, *overrides], drop_grids=True, hydra_config=True)
    params = {
        key: [f"{key}={value}" for value in str(values).split(",")]
        for key, values in (grid.hydra.sweeper.params or {}).items()
    }
    for override in _parse(overrides):
        key = override.key_or_group
        if override.is_sweep_override():
            params[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        elif key in params:
            params[key] = [override.input_line]
        else:
            base.append(override.input_line)
    points = itertools.product(*params.values())
    return [compose_config([*base, *point]) for point in points]


def _parse(overrides: Sequence[str]) -> list:
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as error:
        raise ConfigError(one_line(error, overrides)) from None


def one_line(error: Exception, overrides: Sequence[str]) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    given = " ".join(overrides) or "(no overrides)"
    reason = lines[0] if lines else type(error).__name__
    cause = str(error.__cause__ or "").splitlines()
    if cause and cause[0].endswith(" is not in struct"):  # a typo, or a key to add with +
        key = cause[0].removesuffix(" is not in struct")
        reason = f"{reason.rstrip('.')}: {key} is not a setting there (a typo? + adds a key)"
    return f"{reason} (overrides: {given}); `tiedae --help` lists the groups and their options"
