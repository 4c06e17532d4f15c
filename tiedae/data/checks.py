"""The one check every dataset passes before training (``check_splits``): shapes that agree,
finite pixels in [0, 1], label ids 0..k-1 without gaps, the same classes in training and test.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from tiedae.data.splits import DataError, Splits

LISTED = 6  # class ids a message lists before "..."


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
    return f"classes {listed(ids)}" + (f" ({total} in all)" if total > LISTED else "")


def listed(ids: Sequence[int]) -> str:
    """``3, 5`` or ``0, 1, 2, 3, 4, 5, ...``: at most ``LISTED`` ids."""
    return ", ".join(str(c) for c in ids[:LISTED]) + (", ..." if len(ids) > LISTED else "")
