"""Property-based: whatever arrays and files a user hands a loader, ``load_dataset`` returns
splits a run may train on, or stops with one named, one-line DataError — never another
exception, never splits that break the invariants a run relies on.

Every loader that reads local files is fed generated ones: a user's ``.npz`` (shapes, dtypes,
pixel ranges, NaN and inf, label sets, missing keys, objects, truncated or foreign files), the
raw and gzipped IDX files of ``fashion_mnist`` / ``mnist``, and CIFAR-10's python batches; each
through ``data.classes``, ``data.max_train`` and ``data.valid_size``. Each test also asserts
that both outcomes occurred, so a strategy that only ever produces errors fails.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from tiedae.data import (
    FASHION_MNIST_FILES,
    DataError,
    Splits,
    arrays_digest,
    load_cifar10,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
)

# derandomized: the same examples on every machine, so the suite passes or fails alike in CI
FUZZ = settings(
    max_examples=250, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
SPECIALS = (np.nan, np.inf, -np.inf, -0.25, 1.5, 255.0, 0.0, 1.0)
CACHED_LOADERS = (load_fashion_mnist, load_mnist, load_cifar10)


def record(seen: list, loaded, damage: str) -> None:
    """Note whether the example loaded; what loads undamaged must still load."""
    if damage == "none":
        assert loaded is not None
    seen.append(loaded is not None)


def outcome(data_cfg: dict, source_words: tuple[str, ...]) -> Splits | None:
    """Load ``data_cfg`` twice; the splits when clean (the same both times), None after a
    one-line DataError that starts with one of ``source_words`` (what the user set)."""
    try:
        first = fresh_load(data_cfg)
    except DataError as error:
        message = str(error)
        assert "\n" not in message, message
        assert message.startswith(source_words), message
        return None
    assert_trainable(first)
    again = fresh_load(data_cfg)  # deterministic: the same arrays from the same files
    assert arrays_digest(again) == arrays_digest(first)
    assert again.class_names == first.class_names
    return first


def fresh_load(data_cfg: dict) -> Splits:
    for loader in CACHED_LOADERS:  # read the files again, not a cached copy
        loader.cache_clear()
    return load_dataset(OmegaConf.create(data_cfg))


def assert_trainable(splits: Splits) -> None:
    """The invariants a run relies on: finite pixels in [0, 1], one image size, labels 0..k-1
    each in training, test classes = training classes, validation classes among them."""
    parts = [(splits.x_train, splits.y_train), (splits.x_valid, splits.y_valid),
             (splits.x_test, splits.y_test)]  # fmt: skip
    images = [x for x, _ in parts] + [x for x in [splits.x_unlabeled] if x is not None]
    for x in images:
        assert x.dtype == np.float32 and x.shape[1:] == splits.image_shape
        assert x.ndim in (3, 4) and np.isfinite(x).all()
        assert x.size == 0 or (x.min() >= 0 and x.max() <= 1)
    for x, y in parts:
        assert y.ndim == 1 and len(y) == len(x) and np.issubdtype(y.dtype, np.integer)
    assert len(splits.x_train) and len(splits.x_test)
    trained = set(splits.y_train.tolist())
    assert trained == set(range(splits.n_classes)) and splits.n_classes >= 2
    assert set(splits.y_test.tolist()) == trained
    assert set(splits.y_valid.tolist()) <= trained


def run_property(test: Callable[[list], None]) -> None:
    """Run a @given test that appends each outcome to a list; both kinds must have occurred."""
    seen: list[bool] = []
    test(seen)
    assert any(seen) and not all(seen), f"{sum(seen)} clean loads of {len(seen)}"


def covering_labels(draw, n: int, k: int) -> np.ndarray:
    """n labels cycling through 0..k-1 (each class about n/k times), shuffled."""
    return (np.arange(n) % k)[draw(st.permutations(range(n)))].astype(np.int64)


def one_damage(draw, damages: tuple[str, ...]) -> str:
    """``none`` (a quarter of the time), else one of ``damages``: one change to data that loads."""
    return draw(st.sampled_from(("none",) * (len(damages) // 3) + damages))


def damage_file(draw, path: Path) -> str:
    """Truncate the file, overwrite a byte, or replace it with something that is not one."""
    raw = path.read_bytes()
    damage = draw(st.sampled_from(["truncate", "byte", "empty", "text", "gzip"]))
    if damage == "truncate":
        path.write_bytes(raw[: draw(st.integers(0, len(raw) - 1))])
    elif damage == "byte":
        at = draw(st.integers(0, len(raw) - 1))
        path.write_bytes(raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "text":
        path.write_text("label,pixel\n3,0.5\n")
    else:
        path.write_bytes(gzip.compress(raw))
    return damage


def benign_selection(draw, k: int, n_train: int) -> dict:
    """data.classes (None, or two or more of the k classes) and data.max_train (None or all)."""
    classes = draw(st.one_of(st.none(), st.lists(st.integers(0, k - 1), min_size=2, max_size=k,
                                                 unique=True)))  # fmt: skip
    return {"classes": classes, "max_train": draw(st.sampled_from([None, n_train + 5]))}


# --- a user's .npz -----------------------------------------------------------------------

NPZ_DAMAGES = (
    "pixel", "gap", "test extra class", "test lacks class", "negative label", "float labels",
    "one-hot", "label count", "int32 images", "bool images", "test shape", "unlabeled shape",
    "flat images", "empty test", "empty train", "zero width", "missing key", "one class",
    "valid_size", "max_train", "unknown class", "random labels", "npy", "objects", "file",
)  # fmt: skip


@st.composite
def npz_case(draw) -> tuple[dict, dict, str]:
    """Arrays of an .npz that loads, one damage done to them (or none), the data config."""
    k = draw(st.integers(2, 4))
    n_train, n_test = draw(st.integers(3 * k, 14)), draw(st.integers(k, 6))
    shape = draw(st.sampled_from([(3, 3), (2, 4), (3, 3, 1), (2, 2, 3)]))
    dtype = draw(st.sampled_from(["uint8", "float32", "float64", "float16"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))

    def images(n: int, size: tuple[int, ...] = shape) -> np.ndarray:
        x = rng.integers(0, 256, (n, *size)) if dtype == "uint8" else rng.random((n, *size))
        return x.astype(dtype)

    arrays = {"x_train": images(n_train), "y_train": covering_labels(draw, n_train, k),
              "x_test": images(n_test), "y_test": covering_labels(draw, n_test, k)}  # fmt: skip
    if draw(st.booleans()):
        arrays["x_unlabeled"] = images(draw(st.integers(0, 3)))
    data_cfg = {"name": "npz", "valid_size": draw(st.sampled_from([1, 2, 0.1, 0.2])),
                **benign_selection(draw, k, n_train)}  # fmt: skip
    damage = one_damage(draw, NPZ_DAMAGES)
    damage_npz(draw, arrays, data_cfg, damage, k)
    return arrays, data_cfg, damage


def damage_npz(draw, arrays: dict, data_cfg: dict, damage: str, k: int) -> None:
    """Do ``damage`` to the arrays or the config, in place."""
    y_train, y_test = arrays["y_train"], arrays["y_test"]
    some_class = draw(st.integers(0, k - 1))
    if damage == "pixel":
        key = draw(st.sampled_from(sorted(k for k in arrays if k.startswith("x_"))))
        x = arrays[key].astype(np.float32)
        if x.size:
            x.reshape(-1)[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from(SPECIALS))
        arrays[key] = x
    elif damage == "gap":  # a class renamed in training only
        arrays["y_train"] = np.where(y_train == some_class, k, y_train)
    elif damage == "test extra class":
        y_test[draw(st.integers(0, len(y_test) - 1))] = k + draw(st.integers(0, 2))
    elif damage == "test lacks class":
        arrays["y_test"] = np.where(y_test == some_class, (some_class + 1) % k, y_test)
    elif damage == "negative label":
        arrays[draw(st.sampled_from(["y_train", "y_test"]))][0] = -1
    elif damage == "float labels":
        arrays["y_train"] = y_train.astype(np.float32)
    elif damage == "one-hot":
        arrays["y_train"] = np.eye(k, dtype=np.int64)[y_train]
    elif damage == "label count":
        arrays["y_test"] = y_test[1:]
    elif damage in ("int32 images", "bool images"):
        arrays["x_train"] = arrays["x_train"].astype(damage.split()[0])
    elif damage in ("test shape", "unlabeled shape"):
        key = "x_test" if damage == "test shape" else "x_unlabeled"
        arrays[key] = np.zeros((len(arrays.get(key, [0])), 4, 1), np.uint8)
    elif damage == "flat images":
        arrays["x_train"] = arrays["x_train"].reshape(len(y_train), -1)
    elif damage in ("empty test", "empty train"):
        split = damage.split()[1]
        arrays[f"x_{split}"], arrays[f"y_{split}"] = arrays[f"x_{split}"][:0], y_test[:0]
    elif damage == "zero width":
        arrays["x_test"] = arrays["x_test"][:, :, :0]
    elif damage == "missing key":
        del arrays[draw(st.sampled_from(sorted(arrays)))]
    elif damage == "one class":
        arrays["y_train"], arrays["y_test"] = y_train * 0, y_test * 0
    elif damage == "valid_size":
        data_cfg["valid_size"] = draw(st.sampled_from([0, -1, len(y_train), 1.0, 1.5, 0.001]))
    elif damage == "max_train":
        data_cfg["max_train"] = draw(st.integers(1, k))
    elif damage == "unknown class":
        data_cfg["classes"] = [0, k + draw(st.integers(0, 2))]
    elif damage == "random labels":
        for key in ("y_train", "y_test"):
            n = len(arrays[key])
            arrays[key] = np.array(draw(st.lists(st.integers(0, k), min_size=n, max_size=n)))


def write_npz(draw, folder: Path, arrays: dict, damage: str) -> Path:
    """The arrays as an .npz (compressed or not), or as what the damage makes of the file."""
    path = folder / "mine.npz"
    if damage == "npy":  # np.save of one array: not an archive
        with open(path, "wb") as stream:
            np.save(stream, arrays["x_train"])
    elif damage == "objects":  # an array of Python objects among the numbers
        np.savez(path, **{**arrays, "y_train": np.array([{"label": 0}], dtype=object)})
    else:
        (np.savez_compressed if draw(st.booleans()) else np.savez)(path, **arrays)
    if damage == "file":
        damage_file(draw, path)
    return path


@given(case=npz_case(), data=st.data())
@FUZZ
def _npz_property(seen: list, case: tuple[dict, dict, str], data) -> None:
    arrays, data_cfg, damage = case
    with tempfile.TemporaryDirectory() as folder:
        path = write_npz(data.draw, Path(folder), arrays, damage)
        data_cfg = {**data_cfg, "path": str(path)}
        words = (f"data.path={path}", "data.valid_size=", "data.classes=", "data=npz ")
        loaded = outcome(data_cfg, words)
    record(seen, loaded, damage)


def test_any_npz_loads_clean_or_is_refused_in_one_named_line():
    run_property(_npz_property)


# --- IDX files: fashion_mnist and mnist ----------------------------------------------------

IDX_DAMAGES = ("test size", "label count", "4-d images", "class renamed", "label 12",
               "test lacks class", "magic", "file", "valid_size", "max_train")  # fmt: skip


def idx_bytes(array: np.ndarray, magic: bytes | None = None) -> bytes:
    header = magic or struct.pack(">HBB", 0, 0x08, array.ndim)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


@st.composite
def idx_case(draw) -> tuple[dict[str, np.ndarray], dict, str]:
    """The four arrays of a 10-class IDX dataset, one damage (or none), the data config."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    height, width = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    arrays = {}
    for part, n in (("train", draw(st.integers(30, 40))), ("test", draw(st.integers(10, 14)))):
        arrays[f"{part}_images"] = rng.integers(0, 256, (n, height, width), dtype=np.uint8)
        arrays[f"{part}_labels"] = covering_labels(draw, n, 10).astype(np.uint8)
    data_cfg = {"valid_size": draw(st.integers(1, 4)), **benign_selection(draw, 10, 40)}
    damage = one_damage(draw, IDX_DAMAGES)
    labels, some_class = arrays["train_labels"], draw(st.integers(0, 9))
    if damage == "test size":
        arrays["test_images"] = np.zeros((len(arrays["test_labels"]), width + 1, height), np.uint8)
    elif damage == "label count":
        arrays["test_labels"] = arrays["test_labels"][1:]
    elif damage == "4-d images":
        arrays["train_images"] = arrays["train_images"][..., None]
    elif damage == "class renamed":  # in training only
        arrays["train_labels"] = np.where(labels == some_class, (some_class + 1) % 10, labels)
    elif damage == "label 12":
        arrays[draw(st.sampled_from(["train_labels", "test_labels"]))][0] = 12
    elif damage == "test lacks class":
        test = arrays["test_labels"]
        arrays["test_labels"] = np.where(test == some_class, (some_class + 1) % 10, test)
    elif damage == "valid_size":
        data_cfg["valid_size"] = draw(st.sampled_from([0, 40, 100]))
    elif damage == "max_train":
        data_cfg["max_train"] = draw(st.integers(1, 9))
    return arrays, data_cfg, damage


def write_idx_dir(draw, folder: Path, arrays: dict[str, np.ndarray], damage: str) -> None:
    """The four files, each gzipped or not; the damage may change one's magic or bytes."""
    damaged = draw(st.sampled_from(sorted(FASHION_MNIST_FILES)))
    for key, name in FASHION_MNIST_FILES.items():
        magic = b"\x00\x00\x0d\x01" if damage == "magic" and key == damaged else None
        raw = idx_bytes(arrays[key], magic)
        path = folder / name if draw(st.booleans()) else folder / name.removesuffix(".gz")
        path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
        if damage == "file" and key == damaged:
            damage_file(draw, path)


@given(case=idx_case(), data=st.data())
@FUZZ
def _idx_property(seen: list, case: tuple[dict, dict, str], data) -> None:
    arrays, data_cfg, damage = case
    name = data.draw(st.sampled_from(["fashion_mnist", "mnist"]))
    with tempfile.TemporaryDirectory() as folder:
        write_idx_dir(data.draw, Path(folder), arrays, damage)
        data_cfg = {**data_cfg, "name": name, "dir": folder}
        words = (folder, f"data.dir={folder}", "data.valid_size=", f"data={name}", f"{name}: ")
        loaded = outcome(data_cfg, words)
    record(seen, loaded, damage)


def test_any_idx_files_load_clean_or_are_refused_in_one_named_line():
    run_property(_idx_property)


# --- CIFAR-10's python batches -------------------------------------------------------------

CIFAR_DAMAGES = ("float labels", "label 10", "short rows", "no labels", "not a dict", "file",
                 "test lacks class")  # fmt: skip
CIFAR_NAMES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")


@st.composite
def cifar_case(draw) -> tuple[list, dict, str]:
    """Six batches (five training, one test) of a few images each, one damage (or none)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n, n_test = draw(st.integers(7, 9)), draw(st.integers(10, 12))
    train = np.split(covering_labels(draw, 5 * n, 10), 5)
    batches = [
        {b"data": rng.integers(0, 256, (len(y), 3072), dtype=np.uint8), b"labels": y.tolist()}
        for y in (*train, covering_labels(draw, n_test, 10))
    ]
    damage = one_damage(draw, CIFAR_DAMAGES)
    which = draw(st.integers(0, 5))
    batch = batches[which]
    if damage == "float labels":
        batch[b"labels"] = [label + 0.5 for label in batch[b"labels"]]
    elif damage == "label 10":
        batch[b"labels"][0] = 10
    elif damage == "short rows":
        batch[b"data"] = batch[b"data"][:, :100]
    elif damage == "no labels":
        del batch[b"labels"]
    elif damage == "not a dict":
        batches[which] = [1, 2, 3]
    elif damage == "test lacks class":
        batches[5][b"labels"] = [label or 1 for label in batches[5][b"labels"]]
    data_cfg = {"name": "cifar10", "valid_size": draw(st.integers(1, 3)), "max_train": None,
                "classes": draw(st.sampled_from([None, [0, 1], [1, 0], [2, 3, 9]]))}  # fmt: skip
    return batches, data_cfg, damage


@given(case=cifar_case(), data=st.data())
@FUZZ
def _cifar_property(seen: list, case: tuple[list, dict, str], data) -> None:
    batches, data_cfg, damage = case
    with tempfile.TemporaryDirectory() as folder:
        unpacked = Path(folder) / "cifar-10-batches-py"
        unpacked.mkdir()
        for name, batch in zip(CIFAR_NAMES, batches, strict=True):
            (unpacked / name).write_bytes(pickle.dumps(batch))
        if damage == "file":
            damage_file(data.draw, unpacked / data.draw(st.sampled_from(CIFAR_NAMES)))
        data_cfg = {**data_cfg, "dir": folder}
        words = (str(unpacked), f"data.dir={unpacked}", "data.valid_size=", "data=cifar10",
                 "cifar10: ")  # fmt: skip
        loaded = outcome(data_cfg, words)
    record(seen, loaded, damage)


def test_any_cifar10_batches_load_clean_or_are_refused_in_one_named_line():
    run_property(_cifar_property)
