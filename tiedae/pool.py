"""The unlabeled pool (issue 30): how many unlabeled images pretraining and the semi-supervised
objectives read, and what share of them comes from classes the labeled task never names.

``unlabeled.size`` (null: as many as the task's training images left; a count; or a fraction
of those), ``unlabeled.mismatch`` (the share drawn from ``unlabeled.outside_classes``: dataset
class ids outside ``data.classes``; null: every other class) and ``unlabeled.include_labeled``
(whether the labeled images may also sit in the pool, as in the ladder's reference code). The
pool is drawn once per (seed, settings), stratified by class within each part, from the
training split; with the defaults it is every training image of the task, as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tiedae.data import DataError, stratified_subset
from tiedae.schema import check as check_section
from tiedae.schema import setting

# the params a run logs of its pool: how many images it drew, how many from outside the task
POOL_PARAMS = ("unlabeled.n", "unlabeled.n_outside")


class PoolError(DataError):
    """Pool settings the data cannot satisfy (too few images of a part)."""


@dataclass(frozen=True)
class PoolSettings:
    size: int | float | None = setting(None, own_rule=True)  # a range by kind: check() below
    mismatch: float = setting(0.0, minimum=0.0, maximum=1.0, says="a share in [0, 1]")
    outside_classes: tuple[int, ...] | None = setting(None, own_rule=True)  # ids: check()
    include_labeled: bool = setting(True)

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> PoolSettings:
        section = section or {}
        outside = section.get("outside_classes")
        return cls(
            size=section.get("size"),
            mismatch=float(section.get("mismatch", 0.0)),
            outside_classes=None if outside is None else tuple(int(c) for c in outside),
            include_labeled=bool(section.get("include_labeled", True)),
        )

    @property
    def is_default(self) -> bool:
        """Every training image of the task: the pool before these settings existed."""
        return self == PoolSettings()


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check(
    section: Mapping[str, Any] | None, task: Sequence[int] | None, n_classes: int | None
) -> list[str]:
    """The problems with ``unlabeled.*`` that need no data: types and ranges, an empty or
    unknown outside class list, outside classes among the labeled task's, a mismatch with no
    class outside the task. ``task``: ``data.classes`` (None: every class)."""
    section = section or {}
    problems: list[str] = []
    size, mismatch = section.get("size"), section.get("mismatch", 0.0)
    if size is not None and not (
        (isinstance(size, int) and not isinstance(size, bool) and size >= 1)
        or (isinstance(size, float) and 0 < size <= 1)
    ):
        problems.append(
            f"unlabeled.size={size!r} must be null (all), a count >= 1, or a fraction in (0, 1]"
        )
    check_section(problems, "unlabeled", section, PoolSettings)  # mismatch, include_labeled
    outside = section.get("outside_classes")
    if outside is not None:
        ids = (
            list(outside)
            if isinstance(outside, Sequence) and not isinstance(outside, str)
            else None
        )
        if not ids or not all(isinstance(c, int) and c >= 0 for c in ids):
            problems.append(
                f"unlabeled.outside_classes={outside!r} must list class ids (or be null: every "
                "class outside data.classes)"
            )
            return problems
        if n_classes is not None and max(ids) >= n_classes:
            problems.append(f"unlabeled.outside_classes={ids} names ids beyond 0..{n_classes - 1}")
        shared = sorted(set(ids) & set(task if task is not None else range(n_classes or 0)))
        if shared:
            problems.append(
                f"unlabeled.outside_classes={ids} overlaps the labeled task's classes at "
                f"{shared}; outside classes must be ones data.classes leaves out"
            )
    if _number(mismatch) and mismatch > 0 and not outside_of(task, outside, n_classes):
        problems.append(
            f"unlabeled.mismatch={mismatch} draws from classes outside the labeled task, but "
            "there are none: set data.classes to a subset (e.g. [0,1,2,3,4,6]) or mismatch=0"
        )
    return problems


def outside_of(
    task: Sequence[int] | None, outside: Sequence[int] | None, n_classes: int | None
) -> list[int]:
    """The classes the mismatch draws from: ``outside`` if given, else every class not in
    ``task`` (none when the task is every class)."""
    if outside is not None:
        return [int(c) for c in outside]
    if task is None or n_classes is None:
        return []
    return [c for c in range(n_classes) if c not in set(task)]


def draw(
    y_train: np.ndarray,
    task: Sequence[int] | None,
    settings: PoolSettings,
    seed: int,
    labeled: np.ndarray | None = None,
    held_out: np.ndarray | None = None,
    n_classes: int | None = None,
) -> np.ndarray:
    """Indices into the training split (every class, the dataset's own ids) of the pool: the
    task's images less ``held_out`` (and less ``labeled`` unless ``include_labeled``), and
    ``mismatch`` of the size from the outside classes, each part stratified and seeded."""
    n_classes = n_classes or int(y_train.max()) + 1
    in_task = np.flatnonzero(np.isin(y_train, list(task) if task is not None else range(n_classes)))
    for never in (held_out, None if settings.include_labeled else labeled):
        if never is not None:
            in_task = np.setdiff1d(in_task, never)
    size = settings.size
    if size is None:
        size = len(in_task)
    elif isinstance(size, float):
        size = max(1, round(size * len(in_task)))
    n_outside = round(settings.mismatch * size)
    n_inside = size - n_outside
    outside = np.flatnonzero(
        np.isin(y_train, outside_of(task, settings.outside_classes, n_classes))
    )
    for part, want, have, fix in (
        ("the labeled task's classes", n_inside, len(in_task), "lower unlabeled.size"),
        ("the outside classes", n_outside, len(outside), "lower unlabeled.size or mismatch"),
    ):
        if want > have:
            raise PoolError(
                f"unlabeled pool: {want} images from {part} asked for, but the training split "
                f"has {have}; {fix}"
            )
    parts = [
        candidates[stratified_subset(y_train[candidates], want, seed)]
        for candidates, want in ((in_task, n_inside), (outside, n_outside))
        if want > 0
    ]
    return np.sort(np.concatenate(parts)) if parts else np.array([], dtype=np.int64)
