import functools
import gzip
import pickle
import struct

import numpy as np
import pytest
from omegaconf import OmegaConf

from tiedae.data import (
    FASHION_MNIST_FILES,
    DataError,
    aligned_empty,
    find_fashion_mnist_dir,
    labeled_count,
    labeled_shortfall,
    load_cifar10,
    load_dataset,
    load_digits_splits,
    load_fashion_mnist,
    load_mnist,
    load_npz,
    read_idx,
    stratified_subset,
)
from tiedae.training import as_tensor


def write_idx(path, array: np.ndarray, magic: bytes | None = None, cut: int = 0) -> None:
    header = magic or struct.pack(">HBB", 0, 0x08, array.ndim)
    raw = header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    with gzip.open(path, "wb") as stream:
        stream.write(raw[: len(raw) - cut])


def write_fashion_dir(folder, n_train=12, n_test=4, n_labels=None):
    rng = np.random.default_rng(0)
    images = {
        "train": rng.integers(0, 256, (n_train, 28, 28)),
        "test": rng.integers(0, 256, (n_test, 28, 28)),
    }
    labels = {"train": np.arange(n_labels or n_train) % 10, "test": np.arange(n_test) % 10}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images[split])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels[split])
    return images, labels


def test_read_idx_round_trips_an_array(tmp_path):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)


def test_wrong_magic_number_is_named(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros((2, 2)), magic=b"\x00\x00\x0d\x02")
    with pytest.raises(DataError, match="wrong magic number 0x00000d02"):
        read_idx(tmp_path / "a.gz")


def test_truncated_file_says_how_many_bytes_are_missing(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros((10, 5)), cut=7)
    with pytest.raises(DataError, match="promises 50 bytes .* holds 43"):
        read_idx(tmp_path / "a.gz")


def test_corrupted_gzip_is_reported(tmp_path):
    (tmp_path / "a.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_idx(tmp_path / "a.gz")


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_idx(tmp_path / "absent.gz")


def test_fashion_dir_loads_scaled_splits_with_last_images_for_validation(tmp_path):
    images, labels = write_fashion_dir(tmp_path)
    splits = load_fashion_mnist(str(tmp_path), valid_size=2)
    assert splits.x_train.shape == (10, 28, 28) and splits.x_train.dtype == np.float32
    assert splits.x_train.min() >= 0.0 and splits.x_train.max() <= 1.0
    np.testing.assert_allclose(splits.x_valid * 255, images["train"][-2:], atol=1e-3)
    np.testing.assert_array_equal(splits.y_valid, labels["train"][-2:])
    assert len(splits.x_test) == 4 and splits.n_classes == 10


def test_loaded_images_are_shared_with_tensorflow_not_copied(tmp_path):
    """Images load 64-byte aligned with the numbers of ``astype(float32) / 255``, so that
    ``as_tensor`` hands TensorFlow their memory; an unaligned array is copied instead."""
    images, _ = write_fashion_dir(tmp_path)
    splits = load_fashion_mnist(str(tmp_path), valid_size=2)
    expected = images["train"].astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(np.concatenate([splits.x_train, splits.x_valid]), expected)
    x = splits.x_train
    assert x.ctypes.data % 64 == 0 and splits.x_test.ctypes.data % 64 == 0
    shared, copied = as_tensor(x), as_tensor(aligned_empty((11, 7))[1:])
    x[0, 0, 0] = 0.5
    assert float(shared[0, 0, 0]) == 0.5  # the tensor reads the numpy array's memory
    unaligned = np.zeros(65, np.float32)[1:]
    tensor = as_tensor(unaligned)
    unaligned[0] = 1.0
    assert float(tensor[0]) == 0.0 and copied.shape == (10, 7)


def test_images_and_labels_of_different_counts_are_refused(tmp_path):
    write_fashion_dir(tmp_path, n_train=12, n_labels=11)
    with pytest.raises(DataError, match="12 images but .* 11 labels"):
        load_fashion_mnist(str(tmp_path), valid_size=2)


def test_configured_dir_missing_files_names_them(tmp_path):
    with pytest.raises(DataError, match=FASHION_MNIST_FILES["train_images"]):
        find_fashion_mnist_dir(str(tmp_path))


def test_digits_are_small_scaled_and_split_without_overlap():
    splits = load_digits_splits(valid_size=200, test_size=360)
    assert splits.image_shape == (8, 8)
    assert len(splits.x_train) + len(splits.x_valid) + len(splits.x_test) == 1797
    assert splits.x_train.max() <= 1.0


def test_stratified_subset_follows_class_proportions_and_is_deterministic():
    labels = np.repeat(np.arange(4), [400, 300, 200, 100])
    subset = stratified_subset(labels, 100, seed=3)
    assert len(subset) == len(set(subset)) == 100
    np.testing.assert_array_equal(np.bincount(labels[subset]), [40, 30, 20, 10])
    np.testing.assert_array_equal(subset, stratified_subset(labels, 100, seed=3))
    assert not np.array_equal(subset, stratified_subset(labels, 100, seed=4))


def test_smaller_subsets_are_nested_in_larger_ones_for_one_seed():
    labels = np.random.default_rng(0).integers(0, 10, 5000)
    small, large = stratified_subset(labels, 100, seed=1), stratified_subset(labels, 1000, seed=1)
    assert set(small) <= set(large)


def test_stratified_subset_sizes_add_up_with_uneven_remainders():
    labels = np.repeat(np.arange(3), [5, 5, 5])
    assert len(stratified_subset(labels, 7, seed=0)) == 7
    with pytest.raises(ValueError):
        stratified_subset(labels, 16, seed=0)


def test_labeled_count_reads_count_fraction_or_all():
    assert labeled_count(55000, 500, None) == 500
    assert labeled_count(55000, None, 0.01) == 550
    assert labeled_count(55000, "all", None) == 55000


# --- more datasets: uncompressed IDX, MNIST, CIFAR-10, a user's .npz ------------------------


def test_uncompressed_idx_files_load_next_to_gzipped_ones(tmp_path):
    images, labels = write_fashion_dir(tmp_path)
    plain = tmp_path / "train-images-idx3-ubyte"
    gzipped = plain.with_name(plain.name + ".gz")
    with gzip.open(gzipped) as stream:
        plain.write_bytes(stream.read())
    gzipped.unlink()
    np.testing.assert_array_equal(read_idx(plain), images["train"])
    splits = load_mnist(str(tmp_path), valid_size=2)  # MNIST reads the same four names
    assert splits.name == "mnist" and splits.x_train.shape == (10, 28, 28)
    np.testing.assert_allclose(splits.x_train * 255, images["train"][:10], atol=1e-3)


def test_uncompressed_idx_cut_short_is_reported(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros((4, 3)))
    with gzip.open(tmp_path / "a.gz") as stream:
        (tmp_path / "a").write_bytes(stream.read()[:-2])
    with pytest.raises(DataError, match="promises 12 bytes .* holds 10"):
        read_idx(tmp_path / "a")


def test_idx_labels_out_of_range_are_refused(tmp_path):
    write_fashion_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 12, 3]))
    with pytest.raises(DataError, match="test labels run from 0 to 12, outside 0..9"):
        load_mnist(str(tmp_path), valid_size=2)


def write_cifar_dir(folder, n=3, damage=None):
    """Six python batches of n images in cifar-10-batches-py/; pixel (r, c, ch) = 16 r + c + ch."""
    batches = folder / "cifar-10-batches-py"
    batches.mkdir()
    image = (np.arange(32)[:, None, None] * 16 + np.arange(32)[None, :, None]
             + np.arange(3)[None, None, :]) % 256  # fmt: skip
    flat = image.transpose(2, 0, 1).reshape(-1).astype(np.uint8)  # channel-major, as CIFAR's
    for name in (*[f"data_batch_{i}" for i in range(1, 6)], "test_batch"):
        batch = {b"data": np.tile(flat, (n, 1)), b"labels": [i % 10 for i in range(n)]}
        if damage == "labels" and name == "test_batch":
            batch[b"labels"] = [0] * (n - 1) + [10]
        if damage == "shape" and name == "data_batch_2":
            batch[b"data"] = batch[b"data"][:, :100]
        with open(batches / name, "wb") as stream:
            pickle.dump(batch, stream)
    if damage == "missing":
        (batches / "data_batch_5").unlink()
    if damage == "garbage":
        (batches / "test_batch").write_bytes(b"\x80\x04not a pickle")
    return image


def test_cifar10_batches_load_as_height_width_channels(tmp_path):
    image = write_cifar_dir(tmp_path)
    splits = load_cifar10(str(tmp_path), valid_size=3)
    assert splits.image_shape == (32, 32, 3) and splits.n_classes == 10
    assert (len(splits.x_train), len(splits.x_valid), len(splits.x_test)) == (12, 3, 3)
    np.testing.assert_allclose(splits.x_test[1] * 255, image, atol=1e-3)
    assert splits.class_names[3] == "cat"


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("missing", "lacks data_batch_5"),
        ("labels", "test labels run from 0 to 10, outside 0..9"),
        ("shape", "data is uint8 (3, 100), expected uint8 (n, 3072)"),
        ("garbage", "not a readable CIFAR-10 batch"),
    ],
)
def test_damaged_cifar10_batches_are_refused_in_one_line(tmp_path, damage, expected):
    write_cifar_dir(tmp_path, damage=damage)
    with pytest.raises(DataError) as error:
        load_cifar10(str(tmp_path), valid_size=3)
    assert expected in str(error.value) and "\n" not in str(error.value)


def with_pixel(images: np.ndarray, value: float) -> np.ndarray:
    images[3, 2, 1, 0] = value
    return images


def npz_arrays(n=20, shape=(6, 5, 3), k=3):
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n, *shape)).astype(np.uint8),
        "y_train": np.arange(n) % k,
        "x_test": rng.integers(0, 256, (6, *shape)).astype(np.uint8),
        "y_test": np.arange(6) % k,
    }


def test_npz_loads_any_image_size_channels_and_class_count(tmp_path):
    arrays = npz_arrays()
    unlabeled = np.random.default_rng(1).random((7, 6, 5, 3)).astype(np.float32)
    np.savez(tmp_path / "mine.npz", **arrays, x_unlabeled=unlabeled)
    cfg = OmegaConf.create(
        {"name": "npz", "path": str(tmp_path / "mine.npz"), "valid_size": 0.25, "classes": None}
    )
    splits = load_dataset(cfg)
    assert splits.image_shape == (6, 5, 3) and splits.n_classes == 3
    assert (len(splits.x_train), len(splits.x_valid)) == (15, 5)
    np.testing.assert_allclose(splits.x_train * 255, arrays["x_train"][:15], atol=1e-3)
    # the unlabeled images (float, kept as they are) join the autoencoder's pool only
    assert len(splits.pretrain_images) == 15 + 7
    np.testing.assert_array_equal(splits.pretrain_images[15:], unlabeled)
    kept = load_dataset(OmegaConf.merge(cfg, {"classes": [2, 0]}))
    assert kept.n_classes == 2 and set(kept.y_train) == {0, 1} and len(kept.pretrain_images) > 15
    with pytest.raises(DataError, match=r"data.classes=\[0, 5\] names \[5\], but npz has"):
        load_dataset(OmegaConf.merge(cfg, {"classes": [0, 5]}))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"y_test": None}, "lacks y_test"),
        ({"x_train": np.full((20, 6, 5, 3), 2.0)}, "float images must lie in [0, 1]"),
        ({"x_train": np.zeros((20, 6, 5, 3), np.int32)}, "x_train is int32; use uint8"),
        ({"x_train": np.zeros((20, 30), np.uint8)}, "x_train has shape (20, 30); images must"),
        ({"x_test": np.zeros((6, 5, 6, 3), np.uint8)}, "x_test has images of shape (5, 6, 3)"),
        ({"y_train": np.eye(3)[np.arange(20) % 3]}, "labels must be a 1-d integer array"),
        ({"y_train": np.arange(19) % 3}, "x_train holds 20 images but y_train 19 labels"),
        ({"y_train": np.zeros(20, np.int64)}, "with k >= 2"),
        ({"garbage": True}, "not a readable .npz archive"),
        (
            {"x_train": with_pixel(np.random.default_rng(0).random((20, 6, 5, 3)), np.nan)},
            "x_train has 1 non-finite pixel (1 NaN, 0 infinite) in 1 of its 20 images",
        ),
        (
            {"x_unlabeled": np.full((2, 6, 5, 3), np.inf)},
            "x_unlabeled has 180 non-finite pixels (0 NaN, 180 infinite) in 2 of its 2 images",
        ),
        ({"y_train": np.arange(20) % 3 * 2}, "y_train has no label of classes 1, 3 (its ids run 0"),
        ({"y_test": np.arange(6) % 4}, "y_test has labels of class 3, which y_train never has"),
        ({"y_test": np.zeros(6, np.int64)}, "y_test has no label of classes 1, 2, which y_train"),
        (
            {"y_train": np.array([0, 1, 2] * 6 + [2**40, 5])},
            "y_train has no label of classes 3, 4, 6, 7, 8, 9, ... (1099511627772 in all) (its "
            "ids run 0..1099511627776)",
        ),
        ({"y_test": np.array([{}] * 6, dtype=object)}, "y_test holds Python objects (dtype=obj"),
        ({"x_test": np.zeros((6, 6, 0, 3), np.uint8)}, "x_test has shape (6, 6, 0, 3); images"),
    ],
)
def test_bad_npz_files_are_refused_in_one_line(tmp_path, change, expected):
    arrays = {**npz_arrays(), **change}
    path = tmp_path / "mine.npz"
    if change.get("garbage"):
        path.write_bytes(b"PK\x03\x04 cut short")
    else:
        np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    with pytest.raises(DataError) as error:
        load_npz(str(path), valid_size=4)
    assert expected in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"x_train,y_train\n0.5,1\n", "not an .npz archive (a zip of .npy arrays): it starts "
                                     "with b'x_tr', not b'PK'"),
        (b"", "the file is empty, not an .npz archive"),
        (gzip.compress(b"PK\x03\x04", mtime=0), "a gzip file, not an .npz archive"),
        ("npy", "a single .npy array (np.save), not an .npz archive of named arrays (np.savez)"),
    ],
)  # fmt: skip
def test_a_file_that_is_not_an_npz_archive_is_called_so(tmp_path, content, expected):
    path = tmp_path / "mine.npz"
    if content == "npy":
        with open(path, "wb") as stream:
            np.save(stream, np.zeros((3, 4, 4)))
    else:
        path.write_bytes(content)
    with pytest.raises(DataError) as error:
        load_npz(str(path))
    message = str(error.value)
    assert message.startswith(f"data.path={path}: {expected}"), message
    assert "pickle" not in message and "\n" not in message


def data_config(name: str, **values) -> OmegaConf:
    return OmegaConf.create({"name": name, "classes": None, "max_train": None, **values})


def test_every_dataset_is_checked_after_its_classes_and_images_are_chosen(tmp_path):
    """data.max_train or image sizes that disagree between IDX files: one line, the settings."""
    write_fashion_dir(tmp_path, n_train=14, n_test=10)
    cfg = data_config("mnist", dir=str(tmp_path), valid_size=2)
    assert load_dataset(cfg).n_classes == 10  # every class in training and in test
    with pytest.raises(DataError) as error:
        load_dataset(OmegaConf.merge(cfg, {"max_train": 7}))
    assert str(error.value) == (
        f"data=mnist data.dir={tmp_path} data.max_train=7: the training split has no label of "
        "classes 7, 8, 9 (its ids run 0..9): class ids must run 0..k-1 without gaps; the test "
        "split has labels of classes 7, 8, 9, which the training split never has"
    )
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((10, 20, 20)))
    load_mnist.cache_clear()
    with pytest.raises(DataError) as error:
        load_dataset(cfg)
    assert str(error.value) == (
        f"data=mnist data.dir={tmp_path}: the test images are (20, 20) but the training "
        "images (28, 28)"
    )


def test_digits_with_a_class_chosen_and_too_few_images_kept_are_refused():
    cfg = data_config("digits", valid_size=200, test_size=360, classes=[3, 8], max_train=1)
    with pytest.raises(DataError, match=r"^data=digits data.classes=\[3, 8\] data.max_train=1: "):
        load_dataset(cfg)


def test_idx_or_cifar_labels_that_are_not_integers_are_refused(tmp_path):
    image = write_cifar_dir(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    flat = image.transpose(2, 0, 1).reshape(1, -1).astype(np.uint8)
    batch.write_bytes(pickle.dumps({b"data": np.tile(flat, (3, 1)), b"labels": [0.5, 1, 2]}))
    with pytest.raises(DataError, match="test labels are float64, not integer class ids"):
        load_cifar10(str(tmp_path), valid_size=3)


def test_labeled_shortfall_counts_the_classes_short_of_what_the_protocol_needs():
    assert labeled_shortfall(np.array([2, 3, 2]), needed=2) is None
    assert labeled_shortfall(np.array([1, 0, 2, 0]), needed=1) == (
        "2 of the 4 classes without a labeled image (1, 3)"
    )
    assert labeled_shortfall(np.array([1, 0, 2, 0]), needed=2) == (
        "3 of the 4 classes with fewer than 2 labeled images (0, 1, 3; 2 with none)"
    )
    assert labeled_shortfall(np.zeros(9, int), needed=1).endswith("(0, 1, 2, 3, 4, 5, ...)")


def test_a_dataset_is_loaded_and_checked_once_per_process(monkeypatch):
    """A sweep worker's jobs share one load: the loader decodes once, the selection is checked
    once, and every job gets the same Splits (and the same pretraining view) back."""
    from tiedae import data, protocols
    from tiedae.data import digits

    calls = {"digits": 0, "check": 0}
    decode, check = digits.load_digits_splits.__wrapped__, data.check_splits

    def counted_decode(*args):
        calls["digits"] += 1
        return decode(*args)

    def counted_check(*args):
        calls["check"] += 1
        return check(*args)

    loader = functools.lru_cache(maxsize=2)(counted_decode)
    monkeypatch.setattr(digits, "load_digits_splits", loader)
    monkeypatch.setattr(data, "check_splits", counted_check)
    cfg = OmegaConf.create({"name": "digits", "valid_size": 200, "test_size": 360})
    first, second = load_dataset(cfg), load_dataset(OmegaConf.create(dict(cfg)))
    assert first is second and calls == {"digits": 1, "check": 1}
    budget = OmegaConf.create({"name": "budget", "pretrain_holdout": 0.05})
    view = protocols.pretraining_view(first, budget)
    assert protocols.pretraining_view(second, budget) is view and len(view.x_valid) == 62
    fewer = load_dataset(OmegaConf.merge(cfg, {"max_train": 100}))  # another selection
    assert len(fewer.x_train) == 100 and calls == {"digits": 1, "check": 2}
    loader.cache_clear()  # the loader reads the files again: its new arrays are checked
    assert load_dataset(cfg) is not first and calls == {"digits": 2, "check": 3}
