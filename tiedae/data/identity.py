"""What was read, for the cache and skip keys and MLflow's dataset inputs: the settings that
chose the data, a digest of its files (or of its arrays), and where its images come from.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

from tiedae.data.dataset import DATASETS
from tiedae.data.splits import Splits


def describe_source(data_cfg) -> str:
    """The settings that chose the data, e.g. ``data=npz data.path=mine.npz data.max_train=9``."""
    words = [f"data={data_cfg.name}"]
    for key in ("path", "dir", "classes", "max_train"):
        value = data_cfg.get(key)
        if value is not None and (key == "path" or data_cfg.name != "npz"):
            words.append(f"data.{key}={list(value) if key == 'classes' else value}")
    return " ".join(words)


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


def data_identity(data_cfg) -> dict[str, str]:
    """The dataset a ``data`` config reads: its name, the files and a digest of their bytes.

    Fashion-MNIST and MNIST: the four IDX files found through ``data.dir`` (another folder with
    other files gives another digest; a copy of the same files the same one); npz: the user's
    file. Without files of their own (a download, CIFAR-10's pickles), the digest of the arrays
    the loader returns. digits: scikit-learn's bundled csv. The selection of classes and
    images is in the config itself, not here.
    """
    dataset = DATASETS[data_cfg.name]
    files = dataset.files(data_cfg)
    if files is None:  # what the loader returns, before any selection (cached per process)
        return {
            "name": data_cfg.name,
            "files": "loader",
            "digest": arrays_digest(dataset.load(data_cfg)),
        }
    label, paths = files
    return {"name": data_cfg.name, "files": label, "digest": files_digest(paths)}


def dataset_sources(data_cfg) -> dict[str, str]:
    """Where the configured dataset's images come from: file paths for training and test."""
    return DATASETS[data_cfg.name].sources(data_cfg)
