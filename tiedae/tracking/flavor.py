"""Logged models in MLflow's Keras flavour: how they are saved (``_KerasFlavor``), the pip
requirements given with them, and how they load back (``load_keras_model``, and the pyfunc
loader of models holding tiedae's layers)."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import os
from pathlib import Path
from typing import Any

LOADER_MODULE = "tiedae.tracking"  # the pyfunc loader_module written into MLmodel files (old
# ones too): the package, which re-exports this module's _load_pyfunc


class _KerasFlavor:
    """``mlflow.keras`` for ``Model.log``: the model folder is created before the input example
    is written (MLflow 3.17's Keras ``save_model`` writes it first), and models holding tiedae's
    layers get ``tiedae.tracking`` as pyfunc loader, which registers those layers first."""

    __name__ = "mlflow.keras"

    @staticmethod
    def save_model(path: str, mlflow_model, needs_tiedae: bool = False, **kwargs) -> None:
        import mlflow.keras

        kwargs.pop("validate_serving_input", None)
        os.makedirs(path, exist_ok=True)
        mlflow.keras.save_model(path=path, mlflow_model=mlflow_model, **kwargs)
        if needs_tiedae:
            mlflow_model.flavors["python_function"]["loader_module"] = LOADER_MODULE
            mlflow_model.save(os.path.join(path, "MLmodel"))


def _load_pyfunc(path: str):
    """pyfunc loader of logged models with tiedae's layers: register them, then load as Keras."""
    import mlflow.keras

    import tiedae.models  # noqa: F401  (registers Autoencoder, DenseTranspose, rounded_accuracy)

    return mlflow.keras._load_pyfunc(path)


def needs_tiedae(model: Any) -> bool:
    """Whether the model holds tiedae's own layers (then only tiedae loads it back)."""
    import keras

    return '"tiedae>' in json.dumps(keras.saving.serialize_keras_object(model), default=str)


@functools.lru_cache(maxsize=1)
def pip_requirements() -> tuple[str, ...]:
    """Pinned keras and tensorflow (whichever distribution is installed), given to MLflow."""
    pins = []
    for names in (("keras",), ("tensorflow", "tensorflow-cpu")):
        for name in names:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                pins.append(f"{name}=={importlib.metadata.version(name)}")
                break
    return tuple(pins)


def load_keras_model(path: Path) -> Any:
    """A Keras model from an MLflow model folder (``MLmodel`` inside) or a ``.keras`` file."""
    import keras
    import mlflow.keras

    import tiedae.models  # noqa: F401  (registers tiedae's layers)

    path = Path(path)
    if (path / "MLmodel").is_file():
        return mlflow.keras.load_model(str(path))
    return keras.saving.load_model(path)
