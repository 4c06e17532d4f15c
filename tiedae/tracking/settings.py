"""Where the store is (``TrackingSettings``), the one error tiedae raises about it
(``TrackingError``), and the checks that fail fast, before any training, when it cannot be used."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiedae.config.schemas import TrackingSection, read


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message says which URI and what to do."""


@dataclass(frozen=True)
class TrackingSettings(TrackingSection):
    """The ``tracking`` section (its schema: ``TrackingSection``) and where it puts things."""

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TrackingSettings:
        return read(cfg, cls)

    @property
    def sqlite_path(self) -> Path | None:
        prefix = "sqlite:///"
        return Path(self.uri[len(prefix) :]) if self.uri.startswith(prefix) else None

    @property
    def lock_dir(self) -> Path:
        base = self.sqlite_path.parent if self.sqlite_path else Path.home() / ".cache"
        return base / ".tiedae" / "locks"


def check_uri(settings: TrackingSettings) -> None:
    """A server answers its health check, a sqlite file's folder exists, or the URI is of a
    database MLflow takes; else a ``TrackingError`` saying what to do."""
    uri = settings.uri
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    elif settings.sqlite_path is not None:
        folder = settings.sqlite_path.parent
        if not folder.is_dir():
            raise TrackingError(
                f"tracking.uri={uri}: folder {folder} does not exist; create it or point "
                "tracking.uri at another sqlite file"
            )
    elif not uri.startswith(("postgresql", "mysql", "databricks")):
        raise TrackingError(
            f"tracking.uri={uri!r} is not supported; use sqlite:////absolute/path/mlflow.db "
            "or http(s)://host:port of an MLflow tracking server"
        )


def check_server(uri: str, timeout: float = 5.0) -> None:
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as error:
        problem = str(getattr(error, "reason", error))
    raise TrackingError(
        f"tracking server {uri} is unreachable ({problem}); start it (see README, Team setup) "
        "or use tracking=sqlite"
    )


def artifact_location(settings: TrackingSettings) -> str | None:
    """``tracking.artifact_dir`` as a file URI, the folder created; None: the store's own."""
    if not settings.artifact_dir:
        return None
    folder = Path(settings.artifact_dir).expanduser().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TrackingError(
            f"tracking.artifact_dir={settings.artifact_dir}: cannot create it "
            f"({error.strerror or error}); point it at a writable folder"
        ) from None
    return folder.as_uri()


def check_same_location(experiment: Any, location: str | None, configured: str | None) -> None:
    """Artifacts go where the config says, or the run stops: never silently elsewhere."""
    if location is None or experiment.artifact_location.rstrip("/") == location.rstrip("/"):
        return
    raise TrackingError(
        f"tracking.artifact_dir={configured}, but experiment {experiment.name!r} in this store "
        f"keeps its artifacts in {experiment.artifact_location}; set tracking.artifact_dir to "
        "that folder, or use a new tracking.experiment name"
    )
