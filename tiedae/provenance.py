"""Provenance: what code made a run, what data it read, and the command that started it.

The code identity (package version + a digest of the package's own ``.py`` sources) and the
data identity (``tiedae.data.data_identity``) enter the pretraining-cache and skip-finished
keys, so a bug fix or another dataset never reuses an older run. The git commit and a dirty
flag are tags for people; they do not enter keys (the source digest already counts
uncommitted edits). Each is computed once per process.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
import sys
from pathlib import Path

import tiedae

PACKAGE_DIR = Path(tiedae.__file__).resolve().parent


def source_digest(folder: Path = PACKAGE_DIR) -> str:
    """sha256 over the relative paths and contents of every ``.py`` file under ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*.py")):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def code_identity() -> dict[str, str]:
    """The code that makes a result: ``{"version": ..., "source": <digest>}``."""
    return {"version": tiedae.__version__, "source": source_digest()}


@functools.lru_cache(maxsize=1)
def git_state() -> dict[str, str]:
    """``{"commit": <sha or unknown>, "dirty": "true"|"false"|"unknown"}`` of the checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=PACKAGE_DIR, capture_output=True, text=True, check=True,
            timeout=10,
        ).stdout.strip()  # fmt: skip

    try:
        commit = git("rev-parse", "HEAD")
        dirty = "true" if git("status", "--porcelain", "--untracked-files=no") else "false"
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": "unknown"}
    return {"commit": commit, "dirty": dirty}


def command_line() -> str:
    """The command that started this job: ``tiedae <its overrides>`` under Hydra, else argv."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return " ".join(["tiedae", *HydraConfig.get().overrides.task])
    except ImportError:  # pragma: no cover - hydra is a dependency
        pass
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
