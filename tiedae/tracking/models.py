"""Models from other runs and the model registry: downloading a model URI (``runs:/``,
``models:/``) as a transfer source, and registering a logged model or artifact as a version."""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from tiedae.tracking.settings import TrackingError
from tiedae.tracking.store import TrackerBase


class ModelStore(TrackerBase):
    """The ``Tracker``'s models of other runs: downloads and registered versions."""

    def download_model(self, uri: str, destination: Path) -> Path:
        """Download a model URI: a file or an MLflow model folder.

        ``runs:/<run id>/<name>`` is the run's logged model ``name`` if it has one (else an
        artifact path, e.g. an old run's ``models/classifier.keras``); ``models:/<name>/<version>``
        and ``models:/<name>@<alias>`` are resolved to their source first, so a version may point
        at a single file (MLflow's own ``models:/`` download only fetches folders).
        """
        try:
            if uri.startswith("models:/"):
                source = self._model_version_source(uri)
            else:
                source = self._logged_model_of_run(uri) or uri
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(destination), tracking_uri=self.settings.uri
            )
        except MlflowException as error:
            reason = str(error.message).strip().splitlines()[0]
            raise TrackingError(f"cannot download from {self.settings.uri}: {reason}") from None
        return Path(local)

    def _logged_model_of_run(self, uri: str) -> str | None:
        run_id, _, name = uri[len("runs:/") :].strip("/").partition("/")
        if not name or "/" in name:
            return None
        model_id = self.logged_model_id(run_id, name)
        return f"models:/{model_id}" if model_id else None

    def _model_version_source(self, uri: str) -> str:
        rest = uri[len("models:/") :].rstrip("/")
        if rest.startswith("m-") and "/" not in rest and "@" not in rest:
            return uri  # a logged model's own id
        if "@" in rest:
            name, _, alias = rest.rpartition("@")
            if name and alias:
                version = self.client.get_model_version_by_alias(name, alias)
                return self.client.get_model_version_download_uri(name, version.version)
        name, _, version = rest.rpartition("/")
        if not name or not version.isdigit():
            raise TrackingError(
                "not of the form models:/<name>/<version> or models:/<name>@<alias>, e.g. "
                "models:/src/1"
            )
        return self.client.get_model_version_download_uri(name, version)

    def register_model(
        self, name: str, uri: str, run_id: str | None = None, alias: str | None = None
    ) -> str:
        """Register ``uri`` as a new version of the registered model ``name`` (created if
        missing), optionally under ``alias``; returns the version. ``uri`` is a logged model
        (``models:/<model id>``, or ``runs:/<run id>/<name>`` of one, linked as its lineage) or
        an artifact (e.g. an old run's ``runs:/<id>/models/classifier.keras``)."""
        source = uri
        if uri.startswith("runs:/"):
            source = self._logged_model_of_run(uri) or uri
        model_id = source[len("models:/") :] if source.startswith("models:/m-") else None
        if model_id and run_id is None:
            run_id = self.client.get_logged_model(model_id).source_run_id
        with self._store_lock():
            try:
                self.client.get_registered_model(name)
            except MlflowException:
                self.client.create_registered_model(name)
            version = self.client.create_model_version(
                name, source, run_id=run_id, model_id=model_id
            )
            if alias:
                self.client.set_registered_model_alias(name, alias, version.version)
        return str(version.version)
