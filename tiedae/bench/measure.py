"""What the benchmark measures and how a stage plugs in: the options, one process's
measurement, a clock, and the registry of stages.

A stage is one module of this package that registers a ``Stage`` (``register``): its item in
``--help``, what it measures (``plan``, a worker run as ``--worker <name>``), its section of
the report. ``tiedae.bench`` imports every module of the package, so a new stage is its module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tiedae.config import PROJECT_ROOT
from tiedae.registry import Registry

if TYPE_CHECKING:
    from tiedae.bench.summary import Report

RESULT_PREFIX = "BENCH-RESULT "

Say = Callable[[str], None]  # a progress line


def stage_names() -> tuple[str, ...]:
    """Every registered stage's name, in their order (``--stages``' default)."""
    return tuple(stage.name for stage in stages())


@dataclass(frozen=True)
class Options:
    data: str = "fashion_mnist"
    epochs: int = 5  # autoencoder epochs, both paths
    repeats: int = 2
    classifier_epochs: tuple[int, int] = (20, 2)  # at 500 labels, at all labels
    stages: tuple[str, ...] = field(default_factory=stage_names)
    models: tuple[str, ...] = ("tied", "untied")  # the autoencoders the pretrain stage times
    objectives: tuple[str, ...] = ("joint_tied", "ladder_tied", "mean_teacher")
    objective_steps: int = 550  # steps timed per objective: one epoch of 55,000 images
    overrides: tuple[str, ...] = ()  # tiedae config overrides (--set), tiedae's path only
    out: Path = PROJECT_ROOT / "experiments" / "bench"
    timeout: float = 1800.0  # seconds, per process
    job_labels: tuple[str, ...] = ("100", "500", "1000")  # the jobs stage's labeled counts
    job_seeds: tuple[int, ...] = (1, 2)  # and seeds (each seed pretrains its autoencoders)


@dataclass
class Measurement:
    """One process: what it trained, how long it took, what it reached, how much memory."""

    stage: str
    variant: str  # e.g. "tied", "labels=500", "cache on"
    path: str  # SEED_PATH, TIEDAE_PATH, NO_JIT_PATH, BF16_PATH (or "tiedae CLI")
    repeat: int
    images: int = 0  # images seen in training: examples x epochs
    seconds: float = 0.0  # wall, of the timed part
    cpu_seconds: float = 0.0  # user + system, of the timed part
    val_loss: float = float("nan")
    val_metric: float = float("nan")  # rounded accuracy (autoencoders) or accuracy
    peak_rss_mib: float = 0.0  # the whole process
    process_seconds: float = 0.0  # the whole process, start-up included

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else float("nan")

    @property
    def images_per_cpu_second(self) -> float:
        return self.images / self.cpu_seconds if self.cpu_seconds else float("nan")


@dataclass(frozen=True)
class Stage:
    """One stage of ``--stages``; every part but its name, place and help is optional."""

    name: str
    order: int  # its place in --stages, the measurements and the report
    help: str  # its item in --help's list of stages
    plan: Callable[[Options, Say], Iterator[Measurement]] | None = None  # its measurements
    worker: Callable[[dict[str, Any]], Any] | None = None  # --worker <name> <spec>: a result
    section: Callable[[Report], list[str]] | None = None  # its part of README.md
    header: Callable[[dict[str, str]], list[str]] | None = None  # README.md's lines of context
    around: Callable[[Say, dict[str, str]], AbstractContextManager[Any]] | None = None
    write: Callable[[Options, Say, dict[str, str]], int] | None = None  # files of its own
    quick: bool = True  # in --quick's stages


STAGE_REGISTRY: Registry[Stage] = Registry("bench stage")


def register(stage: Stage) -> Stage:
    return STAGE_REGISTRY.register(stage.name)(stage)


def stages() -> list[Stage]:
    """Every stage, in order (imports the package, whose import registers them all)."""
    import tiedae.bench  # noqa: F401

    return sorted(map(STAGE_REGISTRY.__getitem__, STAGE_REGISTRY), key=lambda s: s.order)


def measurements(options: Options, say: Say) -> Iterator[Measurement]:
    for stage in stages():
        if stage.name in options.stages and stage.plan is not None:
            yield from stage.plan(options, say)


class Clock:
    """Wall and CPU seconds of a ``with`` block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def compose_config(data: str, overrides: Sequence[str]):
    from tiedae.compose import compose_config as compose

    return compose([f"data={data}", *overrides])
