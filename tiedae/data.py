"""Stage 1 — data: load a dataset into train/valid/test splits and draw the labeled subset.

Fashion-MNIST is read from its four IDX ``.gz`` files, looked for in ``data.dir``, then in
Debian's ``dataset-fashion-mnist`` package, then fetched by Keras's downloader. ``digits`` is
scikit-learn's bundled 8x8 digits, small enough for tests.
"""

from __future__ import annotations

import functools
import gzip
import struct
from dataclasses import dataclass, replace
from pathlib import Path

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
IDX_UBYTE = 0x08


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

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


# --- IDX files ---------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes (the MNIST format) into a uint8 array."""
    path = Path(path)
    hint = "re-download it, or reinstall the Debian package dataset-fashion-mnist"
    try:
        with gzip.open(path, "rb") as stream:
            raw = stream.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {hint}") from None
    except (OSError, EOFError) as error:
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
    expected = int(np.prod(shape))
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


def find_fashion_mnist_dir(configured_dir: str | None) -> Path | None:
    """The folder holding the four IDX files, or None when Keras's downloader must be used.

    A configured ``data.dir`` is authoritative: if it is set but incomplete, that is an error.
    """
    if configured_dir:
        folder = Path(configured_dir).expanduser()
        missing = [name for name in FASHION_MNIST_FILES.values() if not (folder / name).exists()]
        if missing:
            raise DataError(
                f"data.dir={folder} lacks {', '.join(missing)}; point data.dir at a folder with "
                "the four Fashion-MNIST .gz files, or set data.dir=null to use the default places"
            )
        return folder
    if all((DEBIAN_FASHION_MNIST_DIR / n).exists() for n in FASHION_MNIST_FILES.values()):
        return DEBIAN_FASHION_MNIST_DIR
    return None


def _load_fashion_mnist_arrays(configured_dir: str | None):
    folder = find_fashion_mnist_dir(configured_dir)
    if folder is None:
        import keras  # deferred: only users without the files on disk need the downloader

        try:
            return keras.datasets.fashion_mnist.load_data()
        except Exception as error:
            raise DataError(
                "Fashion-MNIST is not on disk and Keras could not download it "
                f"({type(error).__name__}: {error}); install the Debian package "
                "dataset-fashion-mnist (make setup does, as root) or set data.dir"
            ) from None
    files = {key: folder / name for key, name in FASHION_MNIST_FILES.items()}
    train = _read_pair(files["train_images"], files["train_labels"])
    test = _read_pair(files["test_images"], files["test_labels"])
    return train, test


@functools.lru_cache(maxsize=2)  # sweep jobs in one process share the decoded arrays
def load_fashion_mnist(configured_dir: str | None = None, valid_size: int = 5000) -> Splits:
    """Fashion-MNIST; validation is the last ``valid_size`` training images, as the book does."""
    (x_train_all, y_train_all), (x_test, y_test) = _load_fashion_mnist_arrays(configured_dir)
    if not 0 < valid_size < len(x_train_all):
        raise DataError(f"data.valid_size={valid_size} must be in (0, {len(x_train_all)})")
    x_train_all = _to_unit_float(x_train_all)
    return Splits(
        name="fashion_mnist",
        x_train=x_train_all[:-valid_size],
        y_train=y_train_all[:-valid_size].astype(np.int64),
        x_valid=x_train_all[-valid_size:],
        y_valid=y_train_all[-valid_size:].astype(np.int64),
        x_test=_to_unit_float(x_test),
        y_test=np.asarray(y_test, dtype=np.int64),
        class_names=FASHION_MNIST_CLASSES,
    )


def load_digits_splits(valid_size: int = 200, test_size: int = 360) -> Splits:
    """scikit-learn's 1,797 bundled 8x8 digits, pixels scaled to [0, 1], a fixed shuffled split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(images))
    images, labels = images[order], labels[order]
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


def _to_unit_float(images: np.ndarray) -> np.ndarray:
    unit = np.array(images, dtype=np.float32)  # one new array, divided in place: peak memory
    unit /= 255.0
    return unit


def load_dataset(data_cfg) -> Splits:
    """Load the dataset a ``data`` config names, then keep only ``data.classes`` if set."""
    if data_cfg.name == "fashion_mnist":
        splits = load_fashion_mnist(data_cfg.get("dir"), data_cfg.valid_size)
    elif data_cfg.name == "digits":
        splits = load_digits_splits(data_cfg.valid_size, data_cfg.test_size)
    else:
        raise DataError(f"data.name={data_cfg.name!r} is unknown; choose fashion_mnist or digits")
    classes = data_cfg.get("classes")
    if classes:
        splits = select_classes(splits, list(classes))
    max_train = data_cfg.get("max_train")
    return replace(splits, x_train=splits.x_train[:max_train], y_train=splits.y_train[:max_train])


def select_classes(splits: Splits, classes: list[int]) -> Splits:
    """Keep only the given classes, relabelled 0..k-1 in the order given."""
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
    )


# --- the labeled subset ------------------------------------------------------------------


def labeled_count(n_train: int, count: int | str | None, fraction: float | None) -> int:
    """How many labeled images ``labels.count`` / ``labels.fraction`` ask for out of n_train."""
    if fraction is not None:
        return max(1, round(fraction * n_train))
    if count is None or count == "all":
        return n_train
    return int(count)


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
    """
    if protocol_cfg.name == "oracle":
        return LabeledView(splits, labeled, "oracle")
    y = splits.y_train[labeled]
    if not can_split(y):
        fixed = _with_validation(splits, splits.x_train[labeled], y)
        return LabeledView(fixed, labeled, "fixed_epochs", int(protocol_cfg.fixed_epochs))
    train, valid = budget_split(y, protocol_cfg.valid_fraction, seed)
    budget = _with_validation(splits, splits.x_train[labeled[valid]], y[valid])
    return LabeledView(budget, labeled[train], "budget", valid_indices=labeled[valid])


def pretraining_view(splits: Splits, protocol_cfg) -> Splits:
    """The images pretraining may read. Under budget a fixed stratified slice
    (``protocol.pretrain_holdout``, seed 0) of the training images is held out of pretraining
    and is its validation set; the dataset's validation split is not read."""
    if protocol_cfg.name == "oracle":
        return splits
    size = max(1, round(protocol_cfg.pretrain_holdout * len(splits.y_train)))
    holdout = stratified_subset(splits.y_train, size, seed=0)
    keep = np.setdiff1d(np.arange(len(splits.y_train)), holdout)
    view = _with_validation(splits, splits.x_train[holdout], splits.y_train[holdout])
    return replace(view, x_train=splits.x_train[keep], y_train=splits.y_train[keep])


def _with_validation(splits: Splits, x_valid: np.ndarray, y_valid: np.ndarray) -> Splits:
    return replace(splits, x_valid=x_valid, y_valid=y_valid)
