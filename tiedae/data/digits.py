"""scikit-learn's bundled 8x8 digits (``data=digits``): small enough for tests."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tiedae.data.dataset import Dataset, DataSettings, register
from tiedae.data.splits import DataError, Splits, to_unit_float
from tiedae.schema import setting


@functools.lru_cache(maxsize=2)  # sweep jobs in one process share the arrays
def load_digits_splits(valid_size: int = 200, test_size: int = 360) -> Splits:
    """scikit-learn's 1,797 bundled 8x8 digits, pixels scaled to [0, 1], a fixed shuffled split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.images))
    images = to_unit_float(bunch.images[order] / 16.0)  # aligned: as_tensor shares it
    labels = bunch.target.astype(np.int64)[order]
    n_train = len(images) - valid_size - test_size
    if n_train <= 0:
        raise DataError(f"digits has {len(images)} images: valid_size + test_size is too large")
    return Splits(
        name="digits",
        x_train=images[:n_train],
        y_train=labels[:n_train],
        x_valid=images[n_train : n_train + valid_size],
        y_valid=labels[n_train : n_train + valid_size],
        x_test=images[n_train + valid_size :],
        y_test=labels[n_train + valid_size :],
        class_names=tuple(str(d) for d in range(10)),
    )


@dataclass(frozen=True)
class DigitsSettings(DataSettings):
    valid_size: int = setting(200, minimum=1)
    test_size: int = setting(360, minimum=1)


@register("digits")
class Digits(Dataset):
    settings = DigitsSettings
    n_classes = 10

    @classmethod
    def load(cls, data_cfg) -> Splits:
        return load_digits_splits(data_cfg.valid_size, data_cfg.test_size)

    @classmethod
    def files(cls, data_cfg) -> tuple[str, list[Path]] | None:
        path = _csv()
        return (path.name, [path]) if path.exists() else None

    @classmethod
    def sources(cls, data_cfg) -> dict[str, str]:
        return {"train": str(_csv()), "test": str(_csv())}


def _csv() -> Path:
    """scikit-learn's bundled file the digits are read from."""
    from sklearn import datasets

    return Path(datasets.__file__).parent / "data" / "digits.csv.gz"
