"""What a dataset is to the rest of tiedae: a class registered by ``data.name`` in its own module
of ``tiedae.data`` (``@register(name)``), with ``conf/data/<name>.yaml`` its settings and its
``settings`` schema their types and ranges (``tiedae.config.validate`` checks them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from tiedae.data.splits import Splits
from tiedae.registry import Registry
from tiedae.schema import setting


@dataclass(frozen=True)
class DataSettings:
    """``data.*`` of every dataset; a dataset's own schema extends it with its loader's settings."""

    name: str = setting()  # one of the registry's (validate says which)
    classes: tuple[int, ...] | None = setting(None, own_rule=True)  # against the class count
    max_train: int | None = setting(None, minimum=1, means="null: all")


@dataclass(frozen=True)
class HeldOutSettings(DataSettings):
    """A dataset shipped as train and test files: validation is the last ``valid_size`` training
    images (``dir``: the files' folder; null: where the dataset's module looks)."""

    dir: str | None = setting(None)
    valid_size: int = setting(5000, minimum=1)


class Dataset:
    """How to load a dataset, how many classes it has (None: read from its file), which files
    identify it (None: the digest of the arrays its loader returns) and where its images come
    from (MLflow's dataset sources)."""

    n_classes: ClassVar[int | None] = None
    settings: ClassVar[type[DataSettings]] = HeldOutSettings  # its data.* schema

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
