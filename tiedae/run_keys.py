"""The tags that say what a run's key is made of (data, code, settings), and the log line
that says which part changed when a run of the same name had another key."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from omegaconf import DictConfig

from tiedae import config as C
from tiedae import provenance as P
from tiedae.data import (
    data_identity,
)
from tiedae.tracking import (
    Tracker,
)

log = logging.getLogger("tiedae")


COMMAND = "tiedae.command"
KEY_PART = "tiedae.key."  # + data | code | settings: the digests of a key's parts


def provenance_tags(cfg: DictConfig, parts: Mapping[str, str]) -> dict[str, str]:
    """What a run read and ran, for people and for explaining a changed key."""
    data, code, git = data_identity(cfg.data), P.code_identity(), P.git_state()
    return {
        **{f"{KEY_PART}{name}": digest for name, digest in parts.items()},
        "tiedae.data.name": data["name"], "tiedae.data.files": data["files"],
        "tiedae.data.digest": data["digest"], "tiedae.code.version": code["version"],
        "tiedae.code.source": code["source"], "tiedae.git.commit": git["commit"],
        "tiedae.git.dirty": git["dirty"],
    }  # fmt: skip


def describe(parts: Mapping[str, str]) -> str:
    return ", ".join(f"{name} {digest}" for name, digest in parts.items())


def explain_new_key(
    tracker: Tracker, role: str, name: str, sweep: str | None, parts: Mapping[str, str]
) -> str | None:
    """When an older FINISHED run of the same name has another key: log which part changed."""
    older = tracker.latest_finished(role, name, sweep)
    if older is None:
        return None
    old_parts = {p: older[1].get(f"{KEY_PART}{p}", "") for p in ("data", "code", "settings")}
    changed = C.changed_parts(old_parts, parts)
    if not any(old_parts.values()):
        reason = "it predates keys with provenance"
    elif changed:
        reason = " and ".join(changed) + " changed"
    else:
        return None
    log.info("%s: not reusing run %s of the same name: %s", name, older[0], reason)
    return reason
