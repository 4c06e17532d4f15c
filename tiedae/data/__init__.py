"""Stage 1 — data: load a dataset into train/valid/test splits and draw the labeled subset.

Each dataset is one module here, a ``Dataset`` registered by ``data.name`` (``@register``), and
one ``conf/data/<name>.yaml``; every module is imported below, so nothing else lists them:

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

import weakref
from dataclasses import replace

import numpy as np

from tiedae.data.checks import check_splits, label_problems, pixel_problem, shape_problems
from tiedae.data.cifar10 import load_cifar10, read_cifar_batch
from tiedae.data.dataset import DATASETS, Dataset, register
from tiedae.data.digits import load_digits_splits
from tiedae.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from tiedae.data.identity import (
    arrays_digest,
    data_identity,
    dataset_sources,
    describe_source,
    files_digest,
)
from tiedae.data.idx import (
    DEBIAN_FASHION_MNIST_DIR,
    FASHION_MNIST_FILES,
    find_fashion_mnist_dir,
    idx_file,
    read_idx,
)
from tiedae.data.labeled import (
    labeled_count,
    labeled_shortfall,
    labels_per_class,
    stratified_subset,
)
from tiedae.data.mnist import load_mnist
from tiedae.data.npz import load_npz, read_npz
from tiedae.data.splits import TENSOR_ALIGNMENT, DataError, Splits, aligned_empty
from tiedae.registry import import_modules

import_modules(__name__, __path__)  # every dataset module registers itself

__all__ = [
    "DATASETS", "DEBIAN_FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES", "FASHION_MNIST_FILES",
    "TENSOR_ALIGNMENT", "DataError", "Dataset", "Splits", "aligned_empty", "arrays_digest",
    "check_splits", "data_identity", "dataset_sources", "describe_source", "files_digest",
    "find_fashion_mnist_dir", "idx_file", "label_problems", "labeled_count", "labeled_shortfall",
    "labels_per_class", "load_cifar10", "load_dataset", "load_digits_splits",
    "load_fashion_mnist", "load_mnist", "load_npz", "pixel_problem", "read_cifar_batch",
    "read_idx", "read_npz", "register", "select_classes", "shape_problems", "stratified_subset",
]  # fmt: skip


# data config -> (the loader's splits it came from, weakly; the checked selection): what
# load_dataset returned, returned again while the loader returns the same (cached) arrays
_LOADED: dict[str, tuple[weakref.ref, Splits]] = {}
LOADED_KEPT = 8  # data configs remembered per process


def load_dataset(data_cfg) -> Splits:
    """Load the dataset a ``data`` config names, keep only ``data.classes`` (if set) and the
    first ``data.max_train`` training images, and pass the result through ``check_splits``.

    Once per process: the loaders keep what they decoded (npz excepted), and while a loader
    returns the same arrays, the same config gets the same checked ``Splits`` object back
    (a sweep worker's later jobs neither select nor check again; ``pretraining_view`` of it
    is kept too)."""
    dataset = DATASETS.get(data_cfg.name)
    if dataset is None:
        raise DataError(
            f"data.name={data_cfg.name!r} is unknown; choose one of {', '.join(DATASETS.names())}"
        )
    splits = dataset.load(data_cfg)
    key = repr(sorted((str(name), str(value)) for name, value in data_cfg.items()))
    known = _LOADED.get(key)
    if known and known[0]() is splits:
        return known[1]
    selected = _select_and_check(data_cfg, splits)
    _LOADED[key] = (weakref.ref(splits), selected)
    while len(_LOADED) > LOADED_KEPT:
        _LOADED.pop(next(iter(_LOADED)))
    return selected


def _select_and_check(data_cfg, splits: Splits) -> Splits:
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
