"""CIFAR-10 (``data=cifar10``): its python batches (``cifar-10-batches-py/``) in ``data.dir``,
else Keras's downloader.
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np

from tiedae.data.dataset import Dataset, register
from tiedae.data.splits import DataError, Splits, download, last_for_validation

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


CIFAR10_FOLDER = "cifar-10-batches-py"


CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


CIFAR10_TEST_BATCH = "test_batch"


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images (n, 32, 32, 3) uint8 and labels (n,).

    The batches are pickles: load only files from a source you trust (the CIFAR-10 site).
    """
    hint = "re-download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html"
    try:
        with open(path, "rb") as stream:
            batch = pickle.load(stream, encoding="bytes")  # noqa: S301 — the dataset's format
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {hint}") from None
    except Exception as error:  # a damaged pickle raises many kinds
        raise DataError(
            f"{path}: not a readable CIFAR-10 batch ({type(error).__name__}); {hint}"
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path}: lacks the b'data' and b'labels' entries of a batch; {hint}")
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 32 * 32 * 3:
        raise DataError(
            f"{path}: data is {data.dtype} {data.shape}, expected uint8 (n, 3072); {hint}"
        )
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {labels.size} labels; {hint}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def find_cifar10_dir(configured_dir: str) -> Path:
    """``data.dir`` itself or its ``cifar-10-batches-py`` folder, holding all six batches."""
    folder = Path(configured_dir).expanduser()
    if (folder / CIFAR10_FOLDER).is_dir():
        folder = folder / CIFAR10_FOLDER
    names = (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH)
    missing = [name for name in names if not (folder / name).exists()]
    if missing:
        raise DataError(
            f"data.dir={folder} lacks {', '.join(missing)}; point data.dir at the unpacked "
            f"{CIFAR10_FOLDER} folder, or set data.dir=null to download it"
        )
    return folder


@functools.lru_cache(maxsize=2)
def load_cifar10(configured_dir: str | None = None, valid_size: int = 5000) -> Splits:
    """CIFAR-10, 32x32x3, from ``data.dir`` (python batches) or Keras's downloader."""
    if configured_dir:
        folder = find_cifar10_dir(configured_dir)
        parts = [read_cifar_batch(folder / name) for name in CIFAR10_TRAIN_BATCHES]
        train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        test = read_cifar_batch(folder / CIFAR10_TEST_BATCH)
    else:
        train, test = download(
            "CIFAR-10", "cifar10", "set data.dir to the unpacked cifar-10-batches-py folder"
        )
    return last_for_validation("cifar10", train, test, valid_size, CIFAR10_CLASSES)


@register("cifar10")
class CIFAR10(Dataset):
    n_classes = len(CIFAR10_CLASSES)

    @classmethod
    def load(cls, data_cfg) -> Splits:
        return load_cifar10(data_cfg.get("dir"), data_cfg.valid_size)

    @classmethod
    def sources(cls, data_cfg) -> dict[str, str]:
        folder = str(data_cfg.get("dir") or Path("~/.keras/datasets").expanduser())
        return {"train": folder, "test": folder}
