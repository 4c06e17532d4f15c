"""``make profile``: where one semi-supervised objective's training step spends its time.

    python -m tiedae.profiling method=ladder_tied               # 50 steps, Fashion-MNIST
    python -m tiedae.profiling --steps 20 method=mean_teacher runtime.threads=1

Builds the objective of the composed config (the same networks, batches, optimizer and
compiled loop a run trains), runs a few warm-up steps, then ``--steps`` steps under
TensorFlow's profiler, and sums the time of the ops it ran by kind: matrix products, random
numbers, the optimizer's updates, batch gathers, and the rest (element-wise arithmetic,
reductions). Op times add up over the threads that ran them side by side, so they may exceed
the wall time. The matrix products bound what any loop can gain: an epoch cannot take less
than their op time spread over every core. Under ``runtime.jit`` XLA fuses ops into
clusters, which show as one kind of their own.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tiedae.bench import usable_cores

KINDS = {  # op type -> kind; types not listed here are "element-wise and other"
    "matrix products": ("MatMul", "_MklMatMul", "_FusedMatMul", "_MklFusedMatMul",
                        "BatchMatMulV2", "_MklBatchMatMul", "BatchMatMulV3"),
    "random numbers": ("StatelessRandomNormalV2", "StatelessRandomUniformV2",
                       "RandomStandardNormal", "RandomUniform", "StatelessRandomGetKeyCounter"),
    "optimizer updates": ("AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
                          "ResourceApplyAdam", "ReadVariableOp"),
    "batch gathers": ("GatherV2", "ResourceGather", "Slice"),
    "XLA clusters": ("_XlaRun", "_XlaCompile", "XlaLaunch", "_XlaMerge"),
}  # fmt: skip
OTHER = "element-wise and other"
WRAPPERS = ("Run", "Process", "ExecutorState::Process", "EagerExecute")  # not ops: containers


@dataclass(frozen=True)
class StepProfile:
    steps: int
    wall_seconds: float  # of the profiled steps
    op_seconds: Mapping[str, float]  # op type -> seconds summed over the steps

    @property
    def by_kind(self) -> dict[str, float]:
        kinds = {op: kind for kind, ops in KINDS.items() for op in ops}
        totals: dict[str, float] = collections.Counter()
        for op, seconds in self.op_seconds.items():
            totals[kinds.get(op, OTHER)] += seconds
        return dict(totals)

    @property
    def ms_per_step(self) -> float:
        return 1000 * self.wall_seconds / self.steps


def op_seconds(events: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Seconds by op type from (profiler event name, seconds) pairs. TensorFlow names an op's
    event ``<op name>:<op type>``; the events that contain ops (no type, an executor's, or
    a traced ``__inference_`` function's) are left out so that nothing is counted twice."""
    totals: dict[str, float] = collections.Counter()
    for name, seconds in events:
        head, _, kind = name.rpartition(":")
        kind = kind.strip()
        if not head or "__inference" in name or kind in WRAPPERS:
            continue
        totals[kind] += seconds
    return dict(totals)


def read_trace(folder: Path) -> list[tuple[str, float]]:
    """(event name, seconds) of every host CPU event in the profiler's newest XSpace file."""
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError as error:  # a TensorFlow build without its profiler's protobufs
        raise SystemExit(
            f"tiedae-profile: error: TensorFlow's profiler is missing ({error})"
        ) from None
    path = max(folder.rglob("*.xplane.pb"), key=lambda p: p.stat().st_mtime)
    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    events = []
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                events.append((name, event.duration_ps / 1e12))
    return events


def profile_objective(cfg, steps: int, warmup: int = 3) -> tuple[StepProfile, int]:
    """Profile ``steps`` steps of ``cfg``'s objective; also returns its steps per epoch."""
    import numpy as np
    import tensorflow as tf

    from tiedae.data import load_dataset, stratified_subset
    from tiedae.objectives.cost import compiled_steps_of
    from tiedae.runtime import configure_runtime

    configure_runtime(cfg)
    splits = load_dataset(cfg.data)
    labeled = stratified_subset(splits.y_train, int(cfg.labels.count), cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    objective, run, orders = compiled_steps_of(
        cfg, splits, labeled, splits.pretrain_images, warmup + steps, rng
    )
    [s.numpy() for s in run(*orders, tf.constant(0), tf.constant(warmup))]  # trace, warm up
    with tempfile.TemporaryDirectory() as folder:
        tf.profiler.experimental.start(folder)
        started = time.perf_counter()
        [s.numpy() for s in run(*orders, tf.constant(warmup), tf.constant(steps))]
        wall = time.perf_counter() - started
        tf.profiler.experimental.stop()
        events = read_trace(Path(folder))
    return StepProfile(steps, wall, op_seconds(events)), objective.steps_per_epoch


def report(profile: StepProfile, steps_per_epoch: int, title: str, top: int = 8) -> str:
    kinds = profile.by_kind
    total = sum(kinds.values()) or float("nan")
    epoch = profile.wall_seconds / profile.steps * steps_per_epoch
    lines = [
        f"{title}: {profile.ms_per_step:.1f} ms a step (wall, {profile.steps} steps profiled), "
        f"{epoch:.1f} s an epoch of {steps_per_epoch} steps",
        "",
        "| kind | s in ops | share |",
        "|---|---|---|",
        *(f"| {kind} | {seconds:.3f} | {100 * seconds / total:.1f}% |"
          for kind, seconds in sorted(kinds.items(), key=lambda kv: -kv[1])),
        "",
        "| op type | s | share |",
        "|---|---|---|",
        *(f"| {op} | {seconds:.3f} | {100 * seconds / total:.1f}% |"
          for op, seconds in sorted(profile.op_seconds.items(), key=lambda kv: -kv[1])[:top]),
    ]  # fmt: skip
    products = kinds.get("matrix products", 0.0)
    if products:
        per_epoch = products / profile.steps * steps_per_epoch
        cores = usable_cores()
        lines += ["", f"The matrix products take {per_epoch:.1f} s of op time an epoch (summed "
                      f"over the threads that ran them): no loop gets an epoch under "
                      f"{per_epoch / cores:.1f} s on these {cores} cores at this "
                      f"matrix-multiply speed."]  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tiedae.profiling", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 1)[1],
    )  # fmt: skip
    parser.add_argument("--steps", type=int, default=50, help="steps profiled (default 50)")
    parser.add_argument("overrides", nargs="*", help="tiedae overrides, e.g. method=ladder_tied")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps={args.steps} must be at least 1")
    from tiedae.cli import USER_ERRORS, exit_with_error
    from tiedae.compose import compose_config
    from tiedae.config import uses_objective, validate
    from tiedae.objectives import check_objective

    try:
        cfg = compose_config(args.overrides)
        validate(cfg)
        check_objective(cfg)
        if not uses_objective(cfg):
            parser.error("the config trains no objective: pick one, e.g. method=ladder_tied")
        profile, steps_per_epoch = profile_objective(cfg, args.steps)
    except USER_ERRORS as error:
        exit_with_error(error)
    title = f"{cfg.objective.name} ({' '.join(args.overrides) or 'defaults'})"
    print(report(profile, steps_per_epoch, title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
