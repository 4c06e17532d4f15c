"""Stage 1 — data: load a dataset into train/valid/test splits and draw the labeled subset.

Loaders are registered in ``DATASETS``, keyed by ``data.name``:

- ``fashion_mnist`` and ``mnist``: four IDX files (``.gz`` or uncompressed) in ``data.dir``,
  else (Fashion-MNIST) Debian's ``dataset-fashion-mnist`` package, else Keras's downloader;
- ``cifar10``: CIFAR-10's python batches (``cifar-10-batches-py/``) in ``data.dir``, else Keras's
  downloader;
- ``npz``: a user's own arrays in one ``.npz`` file (``data.path``), see ``load_npz``;
- ``digits``: scikit-learn's bundled 8x8 digits, small enough for tests.

Every loader checks its files (integrity, shapes, dtypes) and raises a one-line ``DataError``
naming the file and how to fix it; ``load_dataset`` then passes every dataset, after
``data.classes`` and ``data.max_train``, through one check of what training will read
(``check_splits``): shapes that agree, finite pixels in [0, 1], label ids 0..k-1 without gaps,
and the same classes in training and test.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import itertools
import math
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
MNIST_CLASSES = tuple(str(digit) for digit in range(10))
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")  # required; x_unlabeled is optional
NPZ_OPTIONAL = ("x_unlabeled",)
IDX_UBYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive's first bytes (an empty one's too)
NPY_MAGIC = b"\x93NUMPY"
LISTED = 6  # class ids a message lists before "..."


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


# --- IDX files ---------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (the MNIST format), gzipped or not, into uint8."""
    path = Path(path)
    hint = "re-download it, or reinstall the Debian package dataset-fashion-mnist"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {hint}") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error}); {hint}") from None
    if raw[:2] == GZIP_MAGIC or path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{path}: not a readable gzip file ({error}); {hint}") from None
    if len(raw) < 4:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header; {hint}")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != IDX_UBYTE or not 1 <= ndim <= 4:
        raise DataError(
            f"{path}: wrong magic number 0x{raw[:4].hex()} (expected 0x000008 followed by the "
            f"number of dimensions): not an IDX file of unsigned bytes; {hint}"
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated inside its header; {hint}")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected = math.prod(shape)
    found = len(raw) - header_size
    if found != expected:
        raise DataError(
            f"{path}: header promises {expected} bytes of data {shape} but the file holds {found} "
            f"(truncated or corrupted); {hint}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(
            f"{images_path.parent}: expected images of 3 dimensions and labels of 1, found "
            f"{images.ndim} and {labels.ndim}; check that the files are not swapped"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path.parent}: {images_path.name} holds {len(images)} images but "
            f"{labels_path.name} holds {len(labels)} labels; the two files must come from the same "
            "release"
        )
    return images, labels


def idx_file(folder: Path, name: str) -> Path | None:
    """``name`` (a ``.gz``) in ``folder``, or its uncompressed twin; None when neither is."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.exists():
            return candidate
    return None


def find_fashion_mnist_dir(
    configured_dir: str | None, default_dir: Path | None = DEBIAN_FASHION_MNIST_DIR,
    dataset: str = "Fashion-MNIST",
) -> Path | None:  # fmt: skip
    """The folder holding the four IDX files, or None when Keras's downloader must be used.

    A configured ``data.dir`` is authoritative: if it is set but incomplete, that is an error.
    """
    if configured_dir:
        folder = Path(configured_dir).expanduser()
        missing = [name for name in FASHION_MNIST_FILES.values() if not idx_file(folder, name)]
        if missing:
            raise DataError(
                f"data.dir={folder} lacks {', '.join(missing)} (gzipped or not); point data.dir "
                f"at a folder with the four {dataset} IDX files, or set data.dir=null to use "
                "the default places"
            )
        return folder
    if default_dir and all(idx_file(default_dir, n) for n in FASHION_MNIST_FILES.values()):
        return default_dir
    return None


def _download(dataset: str, module: str, hint: str):
    import keras  # deferred: only users without the files on disk need the downloader

    try:
        return getattr(keras.datasets, module).load_data()
    except Exception as error:
        raise DataError(
            f"{dataset} is not on disk and Keras could not download it "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
            f"{hint}"
        ) from None


def _load_idx_arrays(folder: Path):
    files = {key: idx_file(folder, name) for key, name in FASHION_MNIST_FILES.items()}
    train = _read_pair(files["train_images"], files["train_labels"])
    test = _read_pair(files["test_images"], files["test_labels"])
    return train, test


def _load_fashion_mnist_arrays(configured_dir: str | None):
    folder = find_fashion_mnist_dir(configured_dir)
    if folder is None:
        return _download(
            "Fashion-MNIST", "fashion_mnist",
            "install the Debian package dataset-fashion-mnist (make setup does, as root) or "
            "set data.dir",
        )  # fmt: skip
    return _load_idx_arrays(folder)


@functools.lru_cache(maxsize=2)  # sweep jobs in one process share the decoded arrays
def load_fashion_mnist(configured_dir: str | None = None, valid_size: int = 5000) -> Splits:
    """Fashion-MNIST; validation is the last ``valid_size`` training images, as the book does."""
    train, test = _load_fashion_mnist_arrays(configured_dir)
    return _last_for_validation("fashion_mnist", train, test, valid_size, FASHION_MNIST_CLASSES)


def _last_for_validation(
    name: str, train, test, valid_size: int, class_names: tuple[str, ...],
    x_unlabeled: np.ndarray | None = None,
) -> Splits:  # fmt: skip
    """Validation is the last ``valid_size`` training images, as the book does."""
    (x_train_all, y_train_all), (x_test, y_test) = train, test
    if not 0 < valid_size < len(x_train_all):
        raise DataError(f"data.valid_size={valid_size} must be in (0, {len(x_train_all)})")
    _check_labels(name, "train", y_train_all, len(class_names))
    _check_labels(name, "test", y_test, len(class_names))
    x_train_all = _to_unit_float(x_train_all)
    y_train_all = np.asarray(y_train_all, dtype=np.int64).reshape(-1)
    return Splits(
        name=name,
        x_train=x_train_all[:-valid_size],
        y_train=y_train_all[:-valid_size],
        x_valid=x_train_all[-valid_size:],
        y_valid=y_train_all[-valid_size:],
        x_test=_to_unit_float(x_test),
        y_test=np.asarray(y_test, dtype=np.int64).reshape(-1),
        class_names=class_names,
        x_unlabeled=None if x_unlabeled is None else _to_unit_float(x_unlabeled),
    )


def _check_labels(name: str, split: str, labels: np.ndarray, n_classes: int) -> None:
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


@functools.lru_cache(maxsize=2)
def load_mnist(configured_dir: str | None = None, valid_size: int = 5000) -> Splits:
    """MNIST's four IDX files from ``data.dir``, else Keras's downloader."""
    folder = find_fashion_mnist_dir(configured_dir, default_dir=None, dataset="MNIST")
    if folder is None:
        arrays = _download("MNIST", "mnist", "set data.dir to a folder with its four IDX files")
    else:
        arrays = _load_idx_arrays(folder)
    return _last_for_validation("mnist", *arrays, valid_size, MNIST_CLASSES)


# --- CIFAR-10 ----------------------------------------------------------------------------


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
        train, test = _download(
            "CIFAR-10", "cifar10", "set data.dir to the unpacked cifar-10-batches-py folder"
        )
    return _last_for_validation("cifar10", train, test, valid_size, CIFAR10_CLASSES)


# --- a user's own arrays -----------------------------------------------------------------


def load_npz(path: str | None, valid_size: int | float = 0.1) -> Splits:
    """A user's dataset: one ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test`` and
    optionally ``x_unlabeled`` (images for the autoencoder only).

    Images are (n, H, W) or (n, H, W, C), the same size everywhere, uint8 in 0..255 or float in
    [0, 1]; labels are integers 0..k-1 (k >= 2, the classes are the training labels', each of
    them in ``y_train`` and in ``y_test``). The last ``valid_size`` training images (a count,
    or a fraction in (0, 1)) are the validation set.
    """
    if not path:
        raise DataError("data=npz needs data.path, the .npz file with x_train, y_train, x_test, "
                        "y_test (and optionally x_unlabeled)")  # fmt: skip
    file = Path(path).expanduser()
    hint = f"save it with np.savez({file.name!r}, x_train=..., y_train=..., x_test=..., y_test=...)"
    arrays = read_npz(file, hint)
    missing = [key for key in NPZ_KEYS if key not in arrays]
    if missing:
        raise DataError(f"data.path={file} lacks {', '.join(missing)}; {hint}")
    images = {key: arrays[key] for key in ("x_train", "x_test", "x_unlabeled") if key in arrays}
    shape = None
    for key, x in images.items():
        _check_npz_images(file, key, x)
        if shape is not None and x.shape[1:] != shape:
            raise DataError(
                f"data.path={file}: {key} has images of shape {x.shape[1:]} but x_train's are "
                f"{shape}; every image must have the same size and channels"
            )
        shape = shape or x.shape[1:]
    for split in ("train", "test"):
        arrays[f"y_{split}"] = _npz_labels(file, split, arrays[f"x_{split}"], arrays[f"y_{split}"])
    y_train = arrays["y_train"]
    n_classes = int(y_train.max()) + 1 if len(y_train) else 0
    if len(y_train) == 0 or y_train.min() < 0 or n_classes < 2:
        raise DataError(
            f"data.path={file}: y_train must hold class ids 0..k-1 with k >= 2; found "
            f"{np.unique(y_train)[:10].tolist()}"
        )
    problems = label_problems(("y_train", y_train), ("y_test", arrays["y_test"]), n_classes)
    if problems:
        raise DataError(f"data.path={file}: {'; '.join(problems)}")
    n_train = len(arrays["x_train"])
    count = round(valid_size * n_train) if isinstance(valid_size, float) else valid_size
    if not 0 < count < n_train:
        raise DataError(
            f"data.valid_size={valid_size} leaves no training or no validation images out of "
            f"x_train's {n_train}; use a count in (0, {n_train}) or a fraction in (0, 1)"
        )
    return _last_for_validation(
        "npz", (arrays["x_train"], y_train), (arrays["x_test"], arrays["y_test"]), count,
        tuple(str(c) for c in range(n_classes)), arrays.get("x_unlabeled"),
    )  # fmt: skip


def read_npz(file: Path, hint: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive that ``load_npz`` reads (``NPZ_KEYS``, ``NPZ_OPTIONAL``);
    a DataError names a file that is not an archive, or the member that cannot be read."""
    try:
        with open(file, "rb") as stream:
            head = stream.read(len(NPY_MAGIC))
    except FileNotFoundError:
        raise DataError(f"data.path={file}: file not found; {hint}") from None
    except OSError as error:
        raise DataError(f"data.path={file}: cannot be read ({error}); {hint}") from None
    if not head.startswith(ZIP_MAGICS):
        raise DataError(f"data.path={file}: {_not_an_archive(head)}; {hint}")
    try:
        with np.load(file, allow_pickle=False) as archive:
            wanted = [key for key in (*NPZ_KEYS, *NPZ_OPTIONAL) if key in archive.files]
            return {key: _npz_member(file, archive, key, hint) for key in wanted}
    except DataError:  # a member named already (DataError is a ValueError)
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(
            f"data.path={file}: not a readable .npz archive ({_first_line(error)}): truncated "
            f"or corrupted; {hint}"
        ) from None


def _not_an_archive(head: bytes) -> str:
    """Why a file whose first bytes are ``head`` is not an .npz archive (a zip of .npy files)."""
    if not head:
        return "the file is empty, not an .npz archive"
    if head.startswith(NPY_MAGIC):
        return "a single .npy array (np.save), not an .npz archive of named arrays (np.savez)"
    if head.startswith(GZIP_MAGIC):
        return "a gzip file, not an .npz archive (a zip of .npy arrays)"
    return f"not an .npz archive (a zip of .npy arrays): it starts with {head[:4]!r}, not b'PK'"


def _npz_member(file: Path, archive, key: str, hint: str) -> np.ndarray:
    """One array of an open archive; a DataError names a member holding Python objects, one
    that is not an .npy array, or one cut short."""
    try:
        value = archive[key]
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise DataError(
                f"data.path={file}: {key} holds Python objects (dtype=object), not numbers; "
                "store numeric arrays (uint8 or float images, integer labels)"
            ) from None
        raise DataError(
            f"data.path={file}: {key} cannot be read ({_first_line(error)}): truncated or "
            f"corrupted; {hint}"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(
            f"data.path={file}: {key} cannot be read ({_first_line(error)}): truncated or "
            f"corrupted; {hint}"
        ) from None
    if not isinstance(value, np.ndarray):
        raise DataError(f"data.path={file}: {key} is not an .npy array inside the archive; {hint}")
    return value


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _npz_labels(file: Path, split: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``y_<split>`` as a 1-d integer array as long as ``x_<split>``; (n, 1) is accepted."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"data.path={file}: y_{split} is {y.dtype} {y.shape}; labels must be a 1-d "
            "integer array of class ids 0..k-1 (not one-hot)"
        )
    if len(y) != len(x):
        raise DataError(
            f"data.path={file}: x_{split} holds {len(x)} images but y_{split} {len(y)} labels"
        )
    return y


def _check_npz_images(file: Path, key: str, x: np.ndarray) -> None:
    if x.ndim not in (3, 4) or 0 in x.shape[1:] or len(x) == 0 and key != "x_unlabeled":
        raise DataError(
            f"data.path={file}: {key} has shape {x.shape}; images must be (n, H, W) or "
            "(n, H, W, C) with n >= 1"
        )
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"data.path={file}: {key} is {x.dtype}; use uint8 (0..255) or float (0..1)")
    problem = pixel_problem(key, x)
    if problem:
        raise DataError(f"data.path={file}: {problem}")


def load_digits_splits(valid_size: int = 200, test_size: int = 360) -> Splits:
    """scikit-learn's 1,797 bundled 8x8 digits, pixels scaled to [0, 1], a fixed shuffled split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.images))
    images = _to_unit_float(bunch.images[order] / 16.0)  # aligned: as_tensor shares it
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


# --- the one check every dataset passes before training ----------------------------------


def check_splits(splits: Splits, source: str) -> Splits:
    """``splits`` when a run may train on them; else a one-line DataError starting with
    ``source`` (the settings that chose the data) and naming every problem: images whose shapes
    disagree or splits without images, pixels that are not finite or not in [0, 1], label ids
    outside 0..k-1 or with gaps, classes that training or test has and the other lacks."""
    problems = shape_problems(splits)
    if not problems:
        problems = [*_pixel_problems(splits), *_split_label_problems(splits)]
    if problems:
        raise DataError(f"{source}: {'; '.join(problems)}")
    return splits


def _parts(splits: Splits) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, images, labels) of every split, in the user's words; unlabeled images last."""
    parts = [
        ("training", splits.x_train, splits.y_train),
        ("validation", splits.x_valid, splits.y_valid),
        ("test", splits.x_test, splits.y_test),
    ]
    if splits.x_unlabeled is not None:
        parts.append(("unlabeled", splits.x_unlabeled, None))
    return parts


def shape_problems(splits: Splits) -> list[str]:
    """Images not (n, H, W[, C]) or not all of one size, labels not one integer per image,
    no training or no test image."""
    problems, shape = [], splits.x_train.shape[1:]
    for part, x, y in _parts(splits):
        if x.ndim not in (3, 4) or 0 in x.shape[1:]:
            problems.append(f"the {part} images have shape {x.shape}, not (n, H, W[, C])")
        elif x.shape[1:] != shape:
            problems.append(f"the {part} images are {x.shape[1:]} but the training images {shape}")
        if y is not None and (y.ndim != 1 or len(y) != len(x)):
            problems.append(f"the {part} split has {len(x)} images but labels of shape {y.shape}")
        elif y is not None and y.size and not np.issubdtype(y.dtype, np.integer):
            problems.append(f"the {part} labels are {y.dtype}, not integer class ids")
    problems += [f"no {part} images" for part, x, _ in _parts(splits)[::2] if len(x) == 0]
    return problems


def _pixel_problems(splits: Splits) -> list[str]:
    problems = (pixel_problem(f"the {part} images", x) for part, x, _ in _parts(splits))
    return [problem for problem in problems if problem]


def pixel_problem(name: str, images: np.ndarray) -> str | None:
    """What is wrong with the pixels of ``images`` (called ``name``): how many are NaN or
    infinite and in how many images, else values outside [0, 1]; None for uint8 or when fine."""
    if images.dtype == np.uint8 or images.size == 0:
        return None
    low, high = images.min(), images.max()  # NaN if any pixel is: one pass each when all is well
    if np.isfinite(low) and np.isfinite(high) and low >= 0 and high <= 1:
        return None
    bad = ~np.isfinite(images)
    if not bad.any():
        return (
            f"{name} is float with values from {low:g} to {high:g}; float images must lie in "
            "[0, 1] (or store uint8 0..255)"
        )
    n_bad, nan = int(bad.sum()), int(np.isnan(images).sum())
    per_image = bad.reshape(len(images), -1).any(axis=1)
    return (
        f"{name} has {_count(n_bad, 'non-finite pixel')} ({nan} NaN, {n_bad - nan} infinite) in "
        f"{int(per_image.sum())} of its {_count(len(images), 'image')} (the first: image "
        f"{int(per_image.argmax())}); replace them or drop those images"
    )


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _split_label_problems(splits: Splits) -> list[str]:
    return label_problems(
        ("the training split", splits.y_train), ("the test split", splits.y_test),
        splits.n_classes, valid=("the validation split", splits.y_valid),
    )  # fmt: skip


def label_problems(
    train: tuple[str, np.ndarray], test: tuple[str, np.ndarray], n_classes: int,
    valid: tuple[str, np.ndarray] | None = None,
) -> list[str]:  # fmt: skip
    """Label ids outside 0..n_classes-1, ids of 0..n_classes-1 that training never has (gaps),
    classes of test (or validation) that training never has, and training classes that test
    never has; each (name, labels) pair names its labels in the user's words."""
    (train_name, y_train), (test_name, y_test) = train, test
    problems = []
    for name, labels in (train, test, *([valid] if valid else [])):
        if labels.size and labels.min() < 0:
            problems.append(f"{name} has negative class ids (down to {labels.min()})")
    if len(y_train) and y_train.max() >= n_classes:
        top = n_classes - 1
        problems.append(f"{train_name} has class ids up to {y_train.max()}, past 0..{top}")
    if problems:
        return problems
    trained = set(np.unique(y_train).tolist())
    gaps = _absent(trained, n_classes)
    if gaps:
        problems.append(
            f"{train_name} has no label of {_ids(gaps, n_classes - len(trained))} (its ids run "
            f"0..{n_classes - 1}): class ids must run 0..k-1 without gaps"
        )
    for name, labels in (test, *([valid] if valid else [])):
        unseen = sorted(set(np.unique(labels).tolist()) - trained)
        if unseen:
            problems.append(f"{name} has labels of {_ids(unseen)}, which {train_name} never has")
    untested = sorted(trained - set(np.unique(y_test).tolist()))
    if untested:
        problems.append(
            f"{test_name} has no label of {_ids(untested)}, which {train_name} has: test "
            "accuracy would say nothing about it"
        )
    return problems


def _absent(present: set[int], n_classes: int) -> list[int]:
    """The first ``LISTED`` + 1 ids of 0..n_classes-1 missing from ``present`` (quick even when
    n_classes is huge: past len(present) every id is missing)."""
    missing = (c for c in range(n_classes) if c not in present)
    return list(itertools.islice(missing, LISTED + 1))


def _ids(ids: Sequence[int], total: int | None = None) -> str:
    """``class 3`` or ``classes 3, 5, ... (12 in all)``: at most ``LISTED`` ids shown."""
    total = len(ids) if total is None else total
    if total == 1:
        return f"class {ids[0]}"
    return f"classes {_listed(ids)}" + (f" ({total} in all)" if total > LISTED else "")


def _listed(ids: Sequence[int]) -> str:
    """``3, 5`` or ``0, 1, 2, 3, 4, 5, ...``: at most ``LISTED`` ids."""
    return ", ".join(str(c) for c in ids[:LISTED]) + (", ..." if len(ids) > LISTED else "")


def describe_source(data_cfg) -> str:
    """The settings that chose the data, e.g. ``data=npz data.path=mine.npz data.max_train=9``."""
    words = [f"data={data_cfg.name}"]
    for key in ("path", "dir", "classes", "max_train"):
        value = data_cfg.get(key)
        if value is not None and (key == "path" or data_cfg.name != "npz"):
            words.append(f"data.{key}={list(value) if key == 'classes' else value}")
    return " ".join(words)


# --- identity: what was read, for the cache and skip keys ---------------------------------


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, computed once per process per (path, size, mtime)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_digest(paths: list[Path]) -> str:
    """One digest over the names and contents of ``paths`` (cached per file)."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(
            f"{path.name}:{_file_digest(str(path), stat.st_size, stat.st_mtime_ns)};".encode()
        )
    return digest.hexdigest()[:16]


def arrays_digest(splits: Splits) -> str:
    """A digest of every split's images and labels, unlabeled images included."""
    digest = hashlib.sha256()
    for array in (splits.x_train, splits.y_train, splits.x_valid, splits.y_valid, splits.x_test,
                  splits.y_test, splits.x_unlabeled):  # fmt: skip
        if array is not None:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _idx_folder(data_cfg) -> Path | None:
    """Fashion-MNIST's or MNIST's folder of IDX files; None where Keras's downloader serves."""
    if data_cfg.name == "fashion_mnist":
        return find_fashion_mnist_dir(data_cfg.get("dir"))
    return find_fashion_mnist_dir(data_cfg.get("dir"), default_dir=None, dataset="MNIST")


def data_identity(data_cfg) -> dict[str, str]:
    """The dataset a ``data`` config reads: its name, the files and a digest of their bytes.

    Fashion-MNIST and MNIST: the four IDX files found through ``data.dir`` (another folder with
    other files gives another digest; a copy of the same files the same one); npz: the user's
    file. Without files of their own (a download, CIFAR-10's pickles), the digest of the arrays
    the loader returns. digits: scikit-learn's bundled csv. The selection of classes and
    images is in the config itself, not here.
    """
    name = data_cfg.name
    if name == "digits":
        from sklearn import datasets

        path = Path(datasets.__file__).parent / "data" / "digits.csv.gz"
        if path.exists():
            return {"name": name, "files": path.name, "digest": files_digest([path])}
    if name == "npz" and data_cfg.get("path"):
        path = Path(data_cfg.path).expanduser()
        if path.is_file():
            return {"name": name, "files": str(path), "digest": files_digest([path])}
    folder = _idx_folder(data_cfg) if name in ("fashion_mnist", "mnist") else None
    if folder is None:  # what the loader returns, before any selection (cached per process)
        splits = DATASETS[name].load(data_cfg)
        return {"name": name, "files": "loader", "digest": arrays_digest(splits)}
    paths = [idx_file(folder, file) for file in FASHION_MNIST_FILES.values()]
    return {
        "name": name,
        "files": ",".join(str(path) for path in paths),
        "digest": files_digest(paths),
    }


TENSOR_ALIGNMENT = 64  # bytes: what TensorFlow needs to use an array's memory without copying


def aligned_empty(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on a ``TENSOR_ALIGNMENT`` boundary,
    so that ``tiedae.training.as_tensor`` can share it with TensorFlow instead of copying it."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(size + TENSOR_ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % TENSOR_ALIGNMENT
    return raw[start : start + size].view(dtype).reshape(shape)


def _to_unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 0..255 scaled to float32 [0, 1]; float images (already in [0, 1]) as float32. One
    new aligned array (``aligned_empty``), divided in place: the same numbers as
    ``images.astype(np.float32) / 255``, at the peak memory of one copy."""
    images = np.asarray(images)
    unit = aligned_empty(images.shape)
    unit[...] = images
    if not np.issubdtype(images.dtype, np.floating):
        unit /= 255.0
    return unit


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: its loader and its number of classes (None: read from the file)."""

    load: Callable[[Any], Splits]
    n_classes: int | None


# data.name -> its loader; config.py validates data.name and data.classes against this table
DATASETS: dict[str, Dataset] = {
    "fashion_mnist": Dataset(
        lambda cfg: load_fashion_mnist(cfg.get("dir"), cfg.valid_size), len(FASHION_MNIST_CLASSES)
    ),
    "mnist": Dataset(lambda cfg: load_mnist(cfg.get("dir"), cfg.valid_size), 10),
    "cifar10": Dataset(lambda cfg: load_cifar10(cfg.get("dir"), cfg.valid_size), 10),
    "npz": Dataset(lambda cfg: load_npz(cfg.get("path"), cfg.valid_size), None),
    "digits": Dataset(lambda cfg: load_digits_splits(cfg.valid_size, cfg.test_size), 10),
}


def load_dataset(data_cfg) -> Splits:
    """Load the dataset a ``data`` config names, keep only ``data.classes`` (if set) and the
    first ``data.max_train`` training images, and pass the result through ``check_splits``."""
    dataset = DATASETS.get(data_cfg.name)
    if dataset is None:
        raise DataError(
            f"data.name={data_cfg.name!r} is unknown; choose one of {', '.join(DATASETS)}"
        )
    splits = dataset.load(data_cfg)
    classes = data_cfg.get("classes")
    if classes:
        splits = select_classes(splits, list(classes))
    max_train = data_cfg.get("max_train")
    splits = replace(splits, x_train=splits.x_train[:max_train], y_train=splits.y_train[:max_train])
    return check_splits(splits, describe_source(data_cfg))


def select_classes(splits: Splits, classes: list[int]) -> Splits:
    """Keep only the given classes, relabelled 0..k-1 in the order given; unlabeled images
    (whose classes are unknown) are all kept."""
    unknown = [c for c in classes if not 0 <= c < splits.n_classes]
    if unknown:
        raise DataError(
            f"data.classes={classes} names {unknown}, but {splits.name} has classes "
            f"0..{splits.n_classes - 1}"
        )
    remap = {old: new for new, old in enumerate(classes)}

    def keep(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = np.isin(y, classes)
        return x[mask], np.array([remap[int(v)] for v in y[mask]], dtype=np.int64)

    x_train, y_train = keep(splits.x_train, splits.y_train)
    x_valid, y_valid = keep(splits.x_valid, splits.y_valid)
    x_test, y_test = keep(splits.x_test, splits.y_test)
    return Splits(
        name=splits.name,
        x_train=x_train,
        y_train=y_train,
        x_valid=x_valid,
        y_valid=y_valid,
        x_test=x_test,
        y_test=y_test,
        class_names=tuple(splits.class_names[c] for c in classes),
        x_unlabeled=splits.x_unlabeled,
    )


def dataset_sources(data_cfg) -> dict[str, str]:
    """Where the configured dataset's images come from: file paths for training and test."""
    name = data_cfg.name
    if name == "digits":
        from importlib.resources import files

        path = str(files("sklearn.datasets") / "data" / "digits.csv.gz")
        return {"train": path, "test": path}
    if name == "npz":
        path = str(Path(str(data_cfg.get("path"))).expanduser())
        return {"train": path, "test": path}
    if name == "cifar10":
        folder = str(data_cfg.get("dir") or Path("~/.keras/datasets").expanduser())
        return {"train": folder, "test": folder}
    folder = _idx_folder(data_cfg)
    if folder is None:  # Keras's downloader keeps its copy here
        folder = Path(f"~/.keras/datasets/{name.replace('_', '-')}").expanduser()
    return {
        part: ",".join(str(idx_file(folder, FASHION_MNIST_FILES[f"{part}_{kind}"]) or
                           folder / FASHION_MNIST_FILES[f"{part}_{kind}"]) for kind in
                       ("images", "labels"))
        for part in ("train", "test")
    }  # fmt: skip


# --- the labeled subset ------------------------------------------------------------------


def labeled_count(n_train: int, count: int | str | None, fraction: float | None) -> int:
    """How many labeled images ``labels.count`` / ``labels.fraction`` ask for out of n_train."""
    if fraction is not None:
        return max(1, round(fraction * n_train))
    if count is None or count == "all":
        return n_train
    return int(count)


def labels_per_class(splits: Splits, labeled: np.ndarray) -> np.ndarray:
    """How many of the ``labeled`` training images fall in each of the dataset's classes."""
    return np.bincount(splits.y_train[labeled], minlength=splits.n_classes)


def labeled_shortfall(per_class: np.ndarray, needed: int) -> str | None:
    """How many classes have fewer than ``needed`` labeled images and which, in words, e.g.
    ``5 of the 10 classes without a labeled image (5, 6, 7, 8, 9)``; None when none has."""
    short = np.flatnonzero(per_class < needed).tolist()
    if not short:
        return None
    classes = f"{len(short)} of the {len(per_class)} classes"
    if needed == 1:
        return f"{classes} without a labeled image ({_listed(short)})"
    empty = int((per_class == 0).sum())
    none = f"; {empty} with none" if empty else ""
    return f"{classes} with fewer than {needed} labeled images ({_listed(short)}{none})"


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of ``size`` examples whose class proportions follow ``labels``.

    Per class, a seeded permutation is cut at its share (largest remainder), so the same seed
    always gives the same subset and a smaller subset is contained in a larger one.
    """
    labels = np.asarray(labels)
    if not 0 < size <= len(labels):
        raise ValueError(f"subset size {size} must be in [1, {len(labels)}]")
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * size / len(labels)
    quota = np.floor(exact).astype(int)
    by_remainder = np.argsort(-(exact - quota), kind="stable")
    quota[by_remainder[: size - quota.sum()]] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.permutation(np.flatnonzero(labels == cls))[:take]
        for cls, take in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


# --- the validation protocol -------------------------------------------------------------


def budget_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split labeled examples into (train, valid) positions: ``fraction`` of each class, at least
    one, goes to validation, and at least one stays for training.

    Positions index ``labels`` (the labeled few, not the whole training set). Seeded and
    stratified: the same labels and seed give the same split, whatever method asks. Raises
    ValueError when a class has fewer than 2 examples: nothing to split.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        raise ValueError(f"class {classes[counts.argmin()]} has {counts.min()} labeled example(s)")
    rng = np.random.default_rng([seed, len(labels)])  # not the stream stratified_subset used
    valid = []
    for cls, count in zip(classes, counts, strict=True):
        take = min(count - 1, max(1, round(fraction * count)))
        valid.append(rng.permutation(np.flatnonzero(labels == cls))[:take])
    valid_positions = np.sort(np.concatenate(valid))
    train_positions = np.setdiff1d(np.arange(len(labels)), valid_positions)
    return train_positions, valid_positions


def can_split(labels: np.ndarray) -> bool:
    """Whether every class among ``labels`` has the 2 examples a budget split needs."""
    return len(labels) > 0 and np.unique(labels, return_counts=True)[1].min() >= 2


@dataclass(frozen=True)
class LabeledView:
    """What a classifier may read: ``splits`` (its x_valid/y_valid being the validation set to
    use) and the indices of its training labels. ``fixed_epochs`` is set when there is no
    validation set to stop on (then x_valid/y_valid are the training labels themselves)."""

    splits: Splits
    labeled: np.ndarray
    validation: str  # "oracle" | "budget" | "fixed_epochs"
    fixed_epochs: int | None = None
    valid_indices: np.ndarray | None = None  # budget: the labeled indices that validate


def labeled_view(splits: Splits, labeled: np.ndarray, protocol_cfg, seed: int) -> LabeledView:
    """The classifier's view of the data under ``protocol``.

    oracle: train on every labeled index, validate on the dataset's validation split.
    budget: a stratified ``protocol.valid_fraction`` of the labeled indices is the validation
    set; the dataset's validation split is replaced, so nothing downstream can read it. With
    fewer than 2 labels in some class, every label trains for ``protocol.fixed_epochs``.
    fixed: every label trains for ``protocol.fixed_epochs``, whatever N (nothing validates).
    """
    if protocol_cfg.name == "oracle":
        return LabeledView(splits, labeled, "oracle")
    y = splits.y_train[labeled]
    if protocol_cfg.name == "fixed" or not can_split(y):
        fixed = _with_validation(splits, splits.x_train[labeled], y)
        return LabeledView(fixed, labeled, "fixed_epochs", int(protocol_cfg.fixed_epochs))
    train, valid = budget_split(y, protocol_cfg.valid_fraction, seed)
    budget = _with_validation(splits, splits.x_train[labeled[valid]], y[valid])
    return LabeledView(budget, labeled[train], "budget", valid_indices=labeled[valid])


def pretraining_view(splits: Splits, protocol_cfg) -> Splits:
    """The images pretraining may read. Under budget a fixed stratified slice
    (``protocol.pretrain_holdout``, seed 0) of the training images is held out of pretraining
    and is its validation set; the dataset's validation split is not read."""
    holdout = pretraining_holdout(splits, protocol_cfg)
    if holdout is None:
        return splits
    keep = np.setdiff1d(np.arange(len(splits.y_train)), holdout)
    view = _with_validation(splits, splits.x_train[holdout], splits.y_train[holdout])
    return replace(view, x_train=splits.x_train[keep], y_train=splits.y_train[keep])


def pretraining_holdout(splits: Splits, protocol_cfg) -> np.ndarray | None:
    """The training images pretraining validates on instead of reading (None under oracle,
    which validates on the dataset's validation split)."""
    if protocol_cfg.name == "oracle":
        return None
    size = max(1, round(protocol_cfg.pretrain_holdout * len(splits.y_train)))
    return stratified_subset(splits.y_train, size, seed=0)


def _with_validation(splits: Splits, x_valid: np.ndarray, y_valid: np.ndarray) -> Splits:
    return replace(splits, x_valid=x_valid, y_valid=y_valid)
