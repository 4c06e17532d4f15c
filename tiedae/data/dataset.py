"""What a dataset is to the rest of tiedae: a class registered by ``data.name`` in its own module
of ``tiedae.data`` (``@register(name)``), with ``conf/data/<name>.yaml`` its settings."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from tiedae.data.splits import Splits
from tiedae.registry import Registry


class Dataset:
    """How to load a dataset, how many classes it has (None: read from its file), which files
    identify it (None: the digest of the arrays its loader returns) and where its images come
    from (MLflow's dataset sources)."""

    n_classes: ClassVar[int | None] = None

    @classmethod
    def load(cls, data_cfg) -> Splits:
        raise NotImplementedError

    @classmethod
    def files(cls, data_cfg) -> tuple[str, list[Path]] | None:
        """(what the identity calls the files, their paths); None: identified by its arrays."""
        return None

    @classmethod
    def sources(cls, data_cfg) -> dict[str, str]:
        """Where the training and test images come from, for MLflow's dataset inputs."""
        raise NotImplementedError


DATASETS: Registry[type[Dataset]] = Registry("dataset")
register = DATASETS.register
