"""What every loader returns: ``Splits`` (float32 images in [0, 1], integer labels), built
the same way for each dataset, and the one-line ``DataError`` for data that cannot be read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class DataError(ValueError):
    """The data on disk is missing or malformed; the message says which file and how to fix it."""


@dataclass(frozen=True)
class Splits:
    """Images as float32 in [0, 1] with integer labels; shapes (n, *image_shape) and (n,)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    x_unlabeled: np.ndarray | None = None  # extra images without labels: the autoencoder's only

    @property
    def pretrain_images(self) -> np.ndarray:
        """The autoencoder's pool: every training image, plus the unlabeled ones if any."""
        if self.x_unlabeled is None or len(self.x_unlabeled) == 0:
            return self.x_train
        return np.concatenate([self.x_train, self.x_unlabeled])

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def download(dataset: str, module: str, hint: str):
    import keras  # deferred: only users without the files on disk need the downloader

    try:
        return getattr(keras.datasets, module).load_data()
    except Exception as error:
        raise DataError(
            f"{dataset} is not on disk and Keras could not download it "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
            f"{hint}"
        ) from None


def last_for_validation(
    name: str, train, test, valid_size: int, class_names: tuple[str, ...],
    x_unlabeled: np.ndarray | None = None,
) -> Splits:  # fmt: skip
    """Validation is the last ``valid_size`` training images, as the book does."""
    (x_train_all, y_train_all), (x_test, y_test) = train, test
    if not 0 < valid_size < len(x_train_all):
        raise DataError(f"data.valid_size={valid_size} must be in (0, {len(x_train_all)})")
    check_labels(name, "train", y_train_all, len(class_names))
    check_labels(name, "test", y_test, len(class_names))
    x_train_all = to_unit_float(x_train_all)
    y_train_all = np.asarray(y_train_all, dtype=np.int64).reshape(-1)
    return Splits(
        name=name,
        x_train=x_train_all[:-valid_size],
        y_train=y_train_all[:-valid_size],
        x_valid=x_train_all[-valid_size:],
        y_valid=y_train_all[-valid_size:],
        x_test=to_unit_float(x_test),
        y_test=np.asarray(y_test, dtype=np.int64).reshape(-1),
        class_names=class_names,
        x_unlabeled=None if x_unlabeled is None else to_unit_float(x_unlabeled),
    )


def check_labels(name: str, split: str, labels: np.ndarray, n_classes: int) -> None:
    labels = np.asarray(labels).reshape(-1)
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{name}: {split} labels are {labels.dtype}, not integer class ids; the file is "
            f"corrupted or not {name}'s"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(
            f"{name}: {split} labels run from {labels.min()} to {labels.max()}, outside "
            f"0..{n_classes - 1}; the file is corrupted or not {name}'s"
        )


TENSOR_ALIGNMENT = 64  # bytes: what TensorFlow needs to use an array's memory without copying


def aligned_empty(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on a ``TENSOR_ALIGNMENT`` boundary,
    so that ``tiedae.training.as_tensor`` can share it with TensorFlow instead of copying it."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(size + TENSOR_ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % TENSOR_ALIGNMENT
    return raw[start : start + size].view(dtype).reshape(shape)


def to_unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 0..255 scaled to float32 [0, 1]; float images (already in [0, 1]) as float32. One
    new aligned array (``aligned_empty``), divided in place: the same numbers as
    ``images.astype(np.float32) / 255``, at the peak memory of one copy."""
    images = np.asarray(images)
    unit = aligned_empty(images.shape)
    unit[...] = images
    if not np.issubdtype(images.dtype, np.floating):
        unit /= 255.0
    return unit
