"""The typed schemas of the sections ``tiedae.config.validate`` checks through
:mod:`tiedae.schema`: ``runtime.*``, ``labels.*``, ``tracking.*`` and a network classifier's head.
(The unlabeled pool's is in :mod:`tiedae.pool`, the protocols' in :mod:`tiedae.protocols`, each
dataset's beside its loader in :mod:`tiedae.data`, each model family's in
:mod:`tiedae.families`, each objective's in its module.)"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from tiedae.checks import is_int, is_list
from tiedae.schema import check, read, setting
from tiedae.vocab import OPTIMIZERS

__all__ = [
    "EPOCH_FLUSH_SECONDS", "HeadSettings", "JobSettings", "LabelsSettings", "ProbeSettings",
    "RuntimeSettings", "TrackingSection", "check", "read", "setting",
]  # fmt: skip

EPOCH_FLUSH_SECONDS = 5.0  # tracking.epoch_flush_seconds' default (RunLog.log_epoch)

# --- the sections ------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSettings:
    """The top-level keys of conf/config.yaml (the groups each have their own schema)."""

    seed: int = setting(42, minimum=0)
    force: bool = setting(False, means="true: rerun what is FINISHED, retrain what is cached")


def _probe_counts(problems: list[str], probes: Mapping[str, Any]) -> None:
    counts = probes.get("counts")
    if counts is None:
        return
    if not is_list(counts) or not all(is_int(c) and c >= 1 for c in counts):
        problems.append(
            f"probes.counts={counts!r} must be a list of positive labeled counts, e.g. "
            "[100, 500, 1000], or [] (no probes)"
        )


@dataclass(frozen=True)
class ProbeSettings:
    """``probes.*``: the representation probes of each pretraining run (tiedae/probes.py,
    which imports scikit-learn and TensorFlow: its schema lives here, with validation's)."""

    counts: list | None = setting(None, own_rule=True)
    k: int = setting(5, minimum=1)
    C: float = setting(1.0, positive=True)

    rules: ClassVar[tuple[Callable[[list[str], Mapping[str, Any]], None], ...]] = (_probe_counts,)


@dataclass(frozen=True)
class RuntimeSettings:
    """``runtime.*`` (conf/runtime/default.yaml): how TensorFlow runs, not what it learns."""

    threads: int = setting(1, minimum=0, means="0: TensorFlow's default")
    inter_op_threads: int = setting(2, minimum=0)
    deterministic: bool = setting(True)
    jit: bool | Literal["auto"] = setting("auto", says="true, false or auto")
    steps_per_execution: int = setting(200, minimum=1)
    validation_batch_size: int = setting(1000, minimum=1)
    precision: str = setting("float32")  # checked as the dtype policy it names (validate)
    verbose: Literal["auto", 0, 1, 2] = setting("auto")
    checkpoint_every: int = setting(5, minimum=0, means="0: no checkpoints")


def _count_or_fraction(problems: list[str], labels: Mapping[str, Any]) -> None:
    count, fraction = labels.get("count"), labels.get("fraction")
    if count is not None and fraction is not None:
        problems.append(
            f"labels.count={count} and labels.fraction={fraction} are both set; set one, e.g. "
            "labels.count=null labels.fraction=0.1"
        )


@dataclass(frozen=True)
class LabelsSettings:
    """``labels.*``: how many training images keep their label."""

    count: int | Literal["all"] | None = setting(
        None, minimum=1, says="a positive integer or 'all'"
    )
    fraction: float | None = setting(None, positive=True, maximum=1.0, says="in (0, 1]")
    allow_few_per_class: bool = setting(False)

    rules: ClassVar[tuple[Callable[[list[str], Mapping[str, Any]], None], ...]] = (
        _count_or_fraction,
    )


def _gradual_schedule(problems: list[str], head: Mapping[str, Any]) -> None:
    """``frozen_epochs``: the head trains on a frozen encoder first, then the encoder thaws,
    which ``freeze=true`` would forbid."""
    frozen_epochs = head.get("frozen_epochs")
    if frozen_epochs is not None and head.get("freeze") is True:
        problems.append(
            f"classifier.frozen_epochs={frozen_epochs} unfreezes the encoder after that many "
            "epochs, but classifier.freeze=true keeps it frozen; set classifier.freeze=false "
            "or classifier.frozen_epochs=null"
        )
    if frozen_epochs is not None and head.get("finetune_learning_rate") is None:
        problems.append(
            f"classifier.finetune_learning_rate=None must be a positive number (the learning "
            f"rate once classifier.frozen_epochs={frozen_epochs} have passed)"
        )


@dataclass(frozen=True)
class HeadSettings:
    """``classifier.*`` of a network classifier (``kind=keras``, conf/classifier/frozen.yaml):
    how the head is trained on the reused encoder layers (``reuse_layers`` is checked beside
    the model, whose depth it depends on)."""

    epochs: int = setting(minimum=1)
    patience: int = setting(minimum=1)
    batch_size: int = setting(minimum=1)
    learning_rate: float = setting(positive=True)
    optimizer: str = setting(allowed=OPTIMIZERS)
    freeze: bool = setting(True)
    frozen_epochs: int | None = setting(None, minimum=1, means="null: frozen throughout or never")
    finetune_learning_rate: float | None = setting(None, positive=True)

    rules: ClassVar[tuple[Callable[[list[str], Mapping[str, Any]], None], ...]] = (
        _gradual_schedule,
    )


@dataclass(frozen=True)
class TrackingSection:
    """``tracking.*`` (conf/tracking/*.yaml): where the runs go and how they are written.
    ``tiedae.tracking.TrackingSettings`` is this section with the store's own behaviour."""

    uri: str = setting(says="a tracking URI, e.g. sqlite:////absolute/path/mlflow.db")
    experiment: str = setting("tiedae")
    artifact_dir: str | None = setting(None)
    epoch_flush_seconds: float = setting(EPOCH_FLUSH_SECONDS, minimum=0)
    job_models: Literal["every", "none"] = setting("every")
    name: str = setting("sqlite")
