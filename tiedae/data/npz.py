"""A user's own arrays (``data=npz data.path=mine.npz``): one ``.npz`` file, see ``load_npz``."""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tiedae.data.checks import label_problems, pixel_problem
from tiedae.data.dataset import Dataset, DataSettings, register
from tiedae.data.idx import GZIP_MAGIC
from tiedae.data.splits import DataError, Splits, last_for_validation
from tiedae.schema import setting

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")  # required; x_unlabeled is optional


NPZ_OPTIONAL = ("x_unlabeled",)


ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive's first bytes (an empty one's too)


NPY_MAGIC = b"\x93NUMPY"


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
    return last_for_validation(
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


@dataclass(frozen=True)
class NPZSettings(DataSettings):
    path: str | None = setting(None)  # required: the loader says so with what the file needs
    valid_size: int | float = setting(
        0.1, positive=True, says="a count of images or a fraction of x_train, > 0"
    )


@register("npz")
class NPZ(Dataset):
    n_classes = None  # read from the file
    settings = NPZSettings

    @classmethod
    def load(cls, data_cfg) -> Splits:
        return load_npz(data_cfg.get("path"), data_cfg.valid_size)

    @classmethod
    def files(cls, data_cfg) -> tuple[str, list[Path]] | None:
        path = Path(data_cfg.path).expanduser() if data_cfg.get("path") else None
        return (str(path), [path]) if path is not None and path.is_file() else None

    @classmethod
    def sources(cls, data_cfg) -> dict[str, str]:
        path = str(Path(str(data_cfg.get("path"))).expanduser())
        return {"train": path, "test": path}
