"""The training paths a stage times side by side (the seed's ``fit``, tiedae's loop, without
XLA, under bfloat16, a plain Keras ``fit``), the order they take turns in, and the spec a worker
gets for one of them."""

from __future__ import annotations

from collections.abc import Sequence

from tiedae.bench.measure import Options

SEED_PATH, TIEDAE_PATH = "seed fit", "tiedae"
KERAS_PATH = "Keras fit"  # a semi-supervised objective as plain Keras: train_step + fit
NO_JIT_PATH = "tiedae jit=false"  # tiedae's loop without XLA, beside TIEDAE_PATH (jit=true)
BF16_PATH = "tiedae bfloat16"  # tiedae's path under runtime.precision=mixed_bfloat16
PRECISION = {BF16_PATH: "runtime.precision=mixed_bfloat16"}  # every stage it is timed in


def alternating(repeat: int) -> tuple[str, str]:
    """Which path goes first alternates, so a change in machine load hits both alike."""
    return (SEED_PATH, TIEDAE_PATH) if repeat % 2 == 0 else (TIEDAE_PATH, SEED_PATH)


def rotating(repeat: int, paths: Sequence[str]) -> list[str]:
    """Which path goes first rotates with the repetition, as ``alternating`` for two."""
    return [paths[(repeat + i) % len(paths)] for i in range(len(paths))]


def worker_spec(options: Options, path: str, variant: str, epochs: int, **more) -> dict:
    """What a worker needs; the user's ``--set`` overrides go to tiedae's paths only, after
    the path's own precision (``PRECISION``)."""
    overrides = list(options.overrides) if path != SEED_PATH else []
    if path in PRECISION and not any(o.startswith("runtime.precision=") for o in overrides):
        overrides.insert(0, PRECISION[path])  # unless --set chose it
    return {"data": options.data, "variant": variant, "path": path, "epochs": epochs,
            "overrides": overrides, **more}  # fmt: skip
