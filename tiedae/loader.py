"""Hydra's config loader, composing each distinct set of config-group choices once per process.

A sweep's jobs differ mostly in plain values (``seed=3``, ``labels.count=500``), yet Hydra
composes every job from scratch: it rebuilds the defaults tree, parses and merges some sixty
YAML files, ~0.15-0.27 s a job, twice (once in the sweep's process to check the batch, once in
the worker that runs it). :class:`ReusingConfigLoader` composes a job's *config-group*
overrides (``method=tied_frozen``, ``hydra/launcher=joblib``) once, keeps the result, and
applies each job's value overrides to a copy of it, as Hydra itself applies them after
composing; the ``hydra`` node then records the job's overrides as Hydra's would. The config is
the one Hydra composes (``tests/test_sweeper.py`` compares them key by key).

The sweeper (``hydra/sweeper=tiedae``) hands it to the launcher, so each worker process keeps
its own compositions across the jobs it runs. Only jobs (``RunMode.RUN``) are reused; the
sweep's own config is composed as Hydra does.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.types import Override
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

# (config name, group overrides, search path) -> the config composed from them; per process.
_COMPOSED: dict[tuple[Any, ...], DictConfig] = {}


class ReusingConfigLoader(ConfigLoaderImpl):
    """A :class:`ConfigLoaderImpl` that reuses the composition of each set of group choices."""

    @classmethod
    def like(cls, loader: ConfigLoader) -> ReusingConfigLoader:
        """A reusing loader over the same config search path as ``loader``."""
        return cls(config_search_path=loader.get_search_path())

    def _load_configuration_impl(
        self,
        config_name: str | None,
        overrides: list[str],
        run_mode: RunMode,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> DictConfig:
        if run_mode != RunMode.RUN:
            return super()._load_configuration_impl(
                config_name, overrides, run_mode, from_shell, validate_sweep_overrides
            )
        parsed, repo = self._parse_overrides_and_create_caching_repo(config_name, overrides)
        values, groups = [], []
        for override in parsed:
            if is_value_override(override, repo):
                values.append(override)
            else:
                groups.append(override.input_line)
        key = (config_name, tuple(groups), str(self.get_search_path()))
        if key not in _COMPOSED:
            _COMPOSED[key] = super()._load_configuration_impl(
                config_name, groups, run_mode, from_shell, validate_sweep_overrides
            )
        elif validate_sweep_overrides:
            self.validate_sweep_overrides_legal(parsed, run_mode=run_mode, from_shell=from_shell)
        cfg = copy.deepcopy(_COMPOSED[key])
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        record_overrides(cfg, parsed)
        return cfg


def is_value_override(override: Override, repo: Any) -> bool:
    """Whether Hydra applies ``override`` to the composed config (``seed=3``) rather than to
    the defaults tree (``method=tied_frozen``): the rule of Hydra's ``Overrides``."""
    return isinstance(override.value(), dict) or not repo.group_exists(override.key_or_group)


def record_overrides(cfg: DictConfig, parsed: list[Override]) -> None:
    """The ``hydra`` node's fields that depend on the job's overrides, set as Hydra sets them
    (``_load_configuration_impl``): the override lists, the override dirname, cwd, env."""
    task = [o for o in parsed if not o.is_hydra_override()]
    cfg.hydra.overrides.hydra = [o.input_line for o in parsed if o.is_hydra_override()]
    cfg.hydra.overrides.task = [o.input_line for o in task]
    with open_dict(cfg.hydra):
        for key in cfg.hydra.job.env_copy:
            cfg.hydra.job.env_set[key] = os.environ[key]
    cfg.hydra.runtime.cwd = os.getcwd()
    dirname = cfg.hydra.job.config.override_dirname
    cfg.hydra.job.override_dirname = get_overrides_dirname(
        overrides=task,
        kv_sep=dirname.kv_sep,
        item_sep=dirname.item_sep,
        exclude_keys=dirname.exclude_keys,
    )
