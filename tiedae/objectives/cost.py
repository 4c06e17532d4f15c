"""What one epoch of each semi-supervised row costs: trace, then time compiled steps.

    python -m tiedae.objectives.cost --methods ladder_tied,joint_tied --steps 40

Builds each ``conf/method`` row on Fashion-MNIST (500 labels), runs ``--steps`` of its compiled
two-stream steps after a first call that traces, and prints wall and process-CPU milliseconds a
step and the seconds of an epoch (``steps_per_epoch`` of the full 55,000-image pool), under XLA
where ``runtime.jit`` puts a whole training of the row. CPU time is the figure to trust on a
shared machine; wall time only on an idle one.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from omegaconf import DictConfig

from tiedae.compose import compose_config
from tiedae.data import Splits, load_dataset, stratified_subset
from tiedae.objectives import build_objective, objective_methods
from tiedae.objectives.base import (
    JIT_AUTO_MIN_STEPS,
    Objective,
    compiled_objective_steps,
    shuffled_orders,
)
from tiedae.runtime import configure_runtime
from tiedae.training import make_optimizer, resolve_jit

POOL = 55_000  # Fashion-MNIST's training images after the validation split


def compiled_steps_of(
    cfg: DictConfig, splits: Splits, labeled: np.ndarray, pool: np.ndarray, n_steps: int,
    rng: np.random.Generator, epoch_images: int | None = None,
) -> tuple[Objective, Callable, tuple[tf.Tensor, tf.Tensor]]:  # fmt: skip
    """``cfg``'s objective, its compiled steps as a run of it compiles them (XLA where
    ``runtime.jit`` puts the run's whole training) and shuffled orders for ``n_steps`` steps,
    on the ``labeled`` indices of ``splits`` and the ``pool`` of unlabeled images. Its epoch
    is one pass over ``epoch_images`` (default: the pool)."""
    objective = build_objective(
        cfg, splits.image_shape, splits.n_classes, epoch_images or len(pool)
    )
    section = cfg.objective
    lb, ub = int(section.labeled_batch_size), int(section.unlabeled_batch_size)
    epochs = section.get("epochs") or cfg.classifier.epochs
    run = compiled_objective_steps(
        objective, make_optimizer(cfg.classifier.optimizer, cfg.classifier.learning_rate),
        tf.constant(splits.x_train[labeled]), tf.constant(splits.y_train[labeled]),
        tf.constant(pool), lb, ub,
        resolve_jit(cfg.runtime.jit, epochs * objective.steps_per_epoch, JIT_AUTO_MIN_STEPS),
    )  # fmt: skip
    orders = (
        shuffled_orders(rng, len(labeled), n_steps * lb),
        shuffled_orders(rng, len(pool), n_steps * ub),
    )
    return objective, run, orders


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--methods", default=None, help="comma-separated conf/method rows (default: every one "
        "that picks an objective)",
    )  # fmt: skip
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument(
        "--set", nargs="*", default=[], help="extra overrides, e.g. runtime.threads=2"
    )
    args = parser.parse_args(argv)
    methods = args.methods.split(",") if args.methods else objective_methods()
    for method in methods:
        cfg = compose_config([f"method={method}", "data.max_train=5500", *args.set])
        configure_runtime(cfg, deterministic=False)
        splits = load_dataset(cfg.data)
        labeled = stratified_subset(splits.y_train, args.labels, cfg.seed)
        objective, run, orders = compiled_steps_of(
            cfg, splits, labeled, splits.x_train, args.steps + 1, np.random.default_rng(0), POOL
        )
        run(*orders, tf.constant(0), tf.constant(1))  # traces
        wall, cpu = time.perf_counter(), time.process_time()
        run(*orders, tf.constant(1), tf.constant(args.steps))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        epoch = objective.steps_per_epoch
        print(
            f"{method:15s} {1000 * wall / args.steps:7.1f} ms/step wall "
            f"{1000 * cpu / args.steps:7.1f} ms/step cpu  epoch ({epoch} steps): "
            f"{epoch * wall / args.steps:6.1f} s wall {epoch * cpu / args.steps:6.1f} s cpu  "
            f"trainable {objective.count_parameters():,}",
            flush=True,
        )


if __name__ == "__main__":
    main()
