"""Fashion-MNIST (``data=fashion_mnist``): four IDX files in ``data.dir``, else Debian's
``dataset-fashion-mnist`` package, else Keras's downloader; the last 5,000 training images
validate, as the book does.
"""

from __future__ import annotations

import functools
from pathlib import Path

from tiedae.data.dataset import Dataset, register
from tiedae.data.idx import find_fashion_mnist_dir, idx_files, idx_sources, load_idx_arrays
from tiedae.data.splits import Splits, download, last_for_validation

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def _load_fashion_mnist_arrays(configured_dir: str | None):
    folder = find_fashion_mnist_dir(configured_dir)
    if folder is None:
        return download(
            "Fashion-MNIST", "fashion_mnist",
            "install the Debian package dataset-fashion-mnist (make setup does, as root) or "
            "set data.dir",
        )  # fmt: skip
    return load_idx_arrays(folder)


@functools.lru_cache(maxsize=2)  # sweep jobs in one process share the decoded arrays
def load_fashion_mnist(configured_dir: str | None = None, valid_size: int = 5000) -> Splits:
    """Fashion-MNIST; validation is the last ``valid_size`` training images, as the book does."""
    train, test = _load_fashion_mnist_arrays(configured_dir)
    return last_for_validation("fashion_mnist", train, test, valid_size, FASHION_MNIST_CLASSES)


@register("fashion_mnist")
class FashionMNIST(Dataset):
    n_classes = len(FASHION_MNIST_CLASSES)

    @classmethod
    def load(cls, data_cfg) -> Splits:
        return load_fashion_mnist(data_cfg.get("dir"), data_cfg.valid_size)

    @classmethod
    def files(cls, data_cfg) -> tuple[str, list[Path]] | None:
        return idx_files(find_fashion_mnist_dir(data_cfg.get("dir")))

    @classmethod
    def sources(cls, data_cfg) -> dict[str, str]:
        return idx_sources(find_fashion_mnist_dir(data_cfg.get("dir")), "fashion-mnist")
