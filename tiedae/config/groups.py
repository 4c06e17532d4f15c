"""The config groups as ``conf/`` has them: their options, a typo's one-line error, ``--help``;
and the resolvers the yaml files use (``${project_root:}``, ``${pid:}``, ``${tiedae_groups:}``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from tiedae.config.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "conf"

if not OmegaConf.has_resolver("project_root"):
    OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
if not OmegaConf.has_resolver("pid"):  # keeps two sweeps started in one second apart
    # cached, like Hydra's ``now``: Hydra copies the launching process's resolved values to
    # each job's config, so a launcher's workers name the same folder
    OmegaConf.register_new_resolver("pid", os.getpid, use_cache=True)


def config_groups(conf: Path = CONFIG_DIR) -> list[tuple[str, str, list[str]]]:
    """The config groups, as the conf folder has them: each folder ``conf/<group>/``, what it
    is for (the comment beside the group in ``conf/config.yaml``'s defaults list) and its
    options (``<option>.yaml``; files starting with ``_`` are shared parts, not options)."""
    purposes = {}
    for line in (conf / "config.yaml").read_text().splitlines():
        entry = re.match(r"\s*-\s+(?:optional\s+)?([\w/]+)\s*:\s*\S+\s*#\s*(.*\S)", line)
        if entry:
            purposes[entry[1]] = entry[2]
    groups = []
    for folder in sorted(path for path in conf.iterdir() if path.is_dir()):
        options = sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_"))
        if options:
            groups.append((folder.name, purposes.get(folder.name, ""), options))
    return groups


def check_choices(choices: Mapping[str, Any], conf: Path = CONFIG_DIR) -> None:
    """Every group option picked (``method=...``, ``experiment=...``) names a file of ``conf/``:
    Hydra skips a missing option of an ``optional`` group silently, which would run the
    defaults under a typo's name. A ConfigError, one line, otherwise."""
    known = {name: options for name, _, options in config_groups(conf)}
    wrong = [
        f"{group}={choice} is not an option of {group} (options: {', '.join(known[group])})"
        for group, choice in choices.items()
        if group in known and choice is not None and str(choice) not in known[group]
    ]
    if wrong:
        raise ConfigError("; ".join(wrong))


def groups_help(conf: Path = CONFIG_DIR) -> str:
    """One line a config group for ``tiedae --help`` (``hydra.help.template``): its name,
    what it is for and its options."""
    groups = config_groups(conf)
    width = max(len(name) for name, _, _ in groups)
    lines = [
        f"  {name:<{width}}  {purpose + '. ' if purpose else ''}Options: {', '.join(options)}"
        for name, purpose, options in groups
    ]
    return "\n".join(lines).replace("$", "$$")  # the template is a string.Template


if not OmegaConf.has_resolver("tiedae_groups"):
    OmegaConf.register_new_resolver("tiedae_groups", groups_help)
