import gzip
import struct

import numpy as np
import pytest

from tiedae.data import (
    FASHION_MNIST_FILES,
    DataError,
    find_fashion_mnist_dir,
    labeled_count,
    load_digits_splits,
    load_fashion_mnist,
    read_idx,
    stratified_subset,
)


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
