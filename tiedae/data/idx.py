"""IDX files (Fashion-MNIST's and MNIST's format): read, checked, found in ``data.dir`` or
Debian's ``dataset-fashion-mnist``.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from tiedae.data.splits import DataError

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


IDX_UBYTE = 0x08


GZIP_MAGIC = b"\x1f\x8b"


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


def load_idx_arrays(folder: Path):
    files = {key: idx_file(folder, name) for key, name in FASHION_MNIST_FILES.items()}
    train = _read_pair(files["train_images"], files["train_labels"])
    test = _read_pair(files["test_images"], files["test_labels"])
    return train, test


def idx_files(folder: Path | None) -> tuple[str, list[Path]] | None:
    """The four IDX files of ``folder`` as a dataset's identity; None (the loader's arrays
    identify it) where Keras's downloader serves."""
    if folder is None:
        return None
    paths = [idx_file(folder, file) for file in FASHION_MNIST_FILES.values()]
    return ",".join(str(path) for path in paths), paths


def idx_sources(folder: Path | None, keras_name: str) -> dict[str, str]:
    """Where the training and test images and labels come from (Keras's copy without a folder)."""
    if folder is None:  # Keras's downloader keeps its copy here
        folder = Path(f"~/.keras/datasets/{keras_name}").expanduser()
    return {
        part: ",".join(str(idx_file(folder, FASHION_MNIST_FILES[f"{part}_{kind}"]) or
                           folder / FASHION_MNIST_FILES[f"{part}_{kind}"]) for kind in
                       ("images", "labels"))
        for part in ("train", "test")
    }  # fmt: skip
