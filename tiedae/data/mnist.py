"""MNIST (``data=mnist``): its four IDX files in ``data.dir``, else Keras's downloader."""

from __future__ import annotations

import functools
from pathlib import Path

from tiedae.data.dataset import Dataset, register
from tiedae.data.idx import find_fashion_mnist_dir, idx_files, idx_sources, load_idx_arrays
from tiedae.data.splits import Splits, download, last_for_validation

MNIST_CLASSES = tuple(str(digit) for digit in range(10))


@functools.lru_cache(maxsize=2)
def load_mnist(configured_dir: str | None = None, valid_size: int = 5000) -> Splits:
    """MNIST's four IDX files from ``data.dir``, else Keras's downloader."""
    folder = find_fashion_mnist_dir(configured_dir, default_dir=None, dataset="MNIST")
    if folder is None:
        arrays = download("MNIST", "mnist", "set data.dir to a folder with its four IDX files")
    else:
        arrays = load_idx_arrays(folder)
    return last_for_validation("mnist", *arrays, valid_size, MNIST_CLASSES)


@register("mnist")
class MNIST(Dataset):
    n_classes = len(MNIST_CLASSES)

    @classmethod
    def load(cls, data_cfg) -> Splits:
        return load_mnist(data_cfg.get("dir"), data_cfg.valid_size)

    @classmethod
    def files(cls, data_cfg) -> tuple[str, list[Path]] | None:
        return idx_files(_folder(data_cfg))

    @classmethod
    def sources(cls, data_cfg) -> dict[str, str]:
        return idx_sources(_folder(data_cfg), "mnist")


def _folder(data_cfg) -> Path | None:
    return find_fashion_mnist_dir(data_cfg.get("dir"), default_dir=None, dataset="MNIST")
