"""A run's dataset inputs (the UI's Dataset column): ``DatasetSpec`` and the arrays' digests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mlflow.entities import Dataset, DatasetInput, InputTag


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset input of a run: a name, the arrays (their digest), where they came from,
    the MLflow context it was used in, and extra numbers for the run page (e.g. labeled count)."""

    name: str
    arrays: Sequence[np.ndarray]
    source: str
    context: str  # training | labeled | validation | test
    profile: Mapping[str, Any] = field(default_factory=dict)

    def as_input(self) -> DatasetInput:
        digest = hashlib.sha256("".join(array_digest(a) for a in self.arrays).encode())
        first = self.arrays[0]
        schema = {"mlflow_tensorspec": {"features": json.dumps(
            [{"type": "tensor", "tensor-spec": {"dtype": str(first.dtype),
                                                "shape": [-1, *first.shape[1:]]}}]
        )}}  # fmt: skip
        profile = {"num_rows": len(first), **self.profile}
        dataset = Dataset(
            name=self.name, digest=digest.hexdigest()[:12], source_type="local",
            source=json.dumps({"uri": self.source}), schema=json.dumps(schema),
            profile=json.dumps(profile),
        )  # fmt: skip
        return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", self.context)])


_DIGESTS: dict[int, tuple[weakref.ref, str]] = {}


def array_digest(array: np.ndarray) -> str:
    """sha256 of an array's shape, dtype and bytes, computed once per array per process."""
    cached = _DIGESTS.get(id(array))
    if cached and cached[0]() is array:
        return cached[1]
    contiguous = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.shape}{array.dtype}".encode())
    digest.update(memoryview(contiguous).cast("B"))
    key = id(array)
    with contextlib.suppress(TypeError):  # not weakly referenceable: not cached
        _DIGESTS[key] = (weakref.ref(array, lambda _: _DIGESTS.pop(key, None)), digest.hexdigest())
    return digest.hexdigest()
