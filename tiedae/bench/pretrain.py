"""The ``pretrain`` stage: the seed's autoencoders trained by tiedae (with XLA, without, under
bfloat16) and by the seed's plain ``fit``; GFLOP/s against one core's matrix-multiply peak."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from tiedae.bench.child import measure_in_child
from tiedae.bench.measure import Clock, Stage, compose_config, register
from tiedae.bench.paths import (
    BF16_PATH,
    NO_JIT_PATH,
    SEED_PATH,
    TIEDAE_PATH,
    rotating,
    worker_spec,
)
from tiedae.bench.seed import seed_autoencoder
from tiedae.bench.summary import Report, paths_section

if TYPE_CHECKING:
    from tiedae.bench.measure import Measurement, Options, Say

HELP = """\
- ``pretrain``: the seed's autoencoders (784-100-30, tied and untied; SGD 1.5, binary
  cross-entropy, batch 32), the same data and epochs, trained by ``tiedae.pretrain`` (with
  ``runtime.jit=true``; as ``tiedae jit=false``, without XLA; as ``tiedae bfloat16``, under
  ``runtime.precision=mixed_bfloat16``) and by the seed's recipe as
  the seed writes it (Keras ``Sequential`` and a plain ``fit(X, X, epochs=...,
  validation_data=...)``), in rotating order, ``--repeats`` times each. Beside images/s:
  achieved GFLOP/s (counted analytically) against one core's matrix-multiply peak, measured in
  the same run (chained 32x784 @ 784x784 products in TensorFlow, one thread)."""
JIT = {TIEDAE_PATH: "runtime.jit=true", NO_JIT_PATH: "runtime.jit=false",
       BF16_PATH: "runtime.jit=true"}  # pretrain stage  # fmt: skip


def pretrain_worker(spec: dict[str, Any]) -> dict[str, float]:
    """Train the autoencoder ``spec['variant']`` (tied/untied) by ``spec['path']``."""
    overrides = [f"model={spec['variant']}", f"pretrain.epochs={spec['epochs']}"]
    cfg = compose_config(spec["data"], [*overrides, *spec["overrides"]])
    from tiedae.data import load_dataset
    from tiedae.pipeline import fit_settings
    from tiedae.pretrain import pretrain_autoencoder
    from tiedae.runtime import configure_runtime

    splits = load_dataset(cfg.data)
    if spec["path"] != SEED_PATH:
        configure_runtime(cfg)
        with Clock() as clock:
            settings = fit_settings(cfg, cfg.pretrain, None)
            _, history = pretrain_autoencoder(splits, cfg.model, cfg.pretrain, settings)
        last = history.last
    else:
        with Clock() as clock:
            autoencoder = seed_autoencoder(cfg.model.tied, splits.image_shape)
            history = autoencoder.fit(
                splits.x_train, splits.x_train, epochs=spec["epochs"],
                validation_data=(splits.x_valid, splits.x_valid),
            )  # fmt: skip
        last = {name: values[-1] for name, values in history.history.items()}
    return {
        "images": len(splits.x_train) * spec["epochs"], "seconds": clock.wall,
        "cpu_seconds": clock.cpu, "val_loss": last["val_loss"],
        "val_metric": last["val_rounded_accuracy"],
    }  # fmt: skip


def peak_worker(spec: dict[str, Any]) -> dict[str, float]:
    """One core's matrix-multiply peak: chained (32 x n) @ (n x n) products in one TF graph.

    The autoencoders' products are of this kind (32 images, 784 pixels); one thread, as
    ``runtime.threads=1`` trains. The best of ``spec['repeats']`` timings of ``spec['steps']``.
    """
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    n, steps = spec.get("n", 784), spec.get("steps", 1000)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((32, n), dtype=np.float32))
    w = tf.constant(((rng.random((n, n)) - 0.5) / np.sqrt(n)).astype(np.float32))

    @tf.function(autograph=False)
    def chain(x, count):
        return tf.while_loop(lambda i, y: i < count, lambda i, y: (i + 1, y @ w), (0, x))[1]

    chain(x, tf.constant(10)).numpy()  # trace and warm up
    best = float("inf")
    for _ in range(spec.get("repeats", 3)):
        with Clock() as clock:
            chain(x, tf.constant(steps)).numpy()
        best = min(best, clock.wall)
    return {"gflops": 2 * 32 * n * n * steps / best / 1e9}


def training_flops_per_image(sizes: Sequence[int] = (784, 100, 30)) -> float:
    """FLOPs to train on one image: an autoencoder's products, forward + backward (3x forward).

    A product of (1 x m) by (m x k) costs 2mk; the encoder runs ``sizes`` down, the decoder up
    (tied or untied alike). Element-wise work (activations, loss, update) is not counted.
    """
    forward = 2 * 2 * sum(a * b for a, b in itertools.pairwise(sizes))
    return 3.0 * forward


def plan(options: Options, say: Say) -> Iterator[Measurement]:
    for repeat in range(options.repeats):
        for model in options.models:
            for path in rotating(repeat, (SEED_PATH, TIEDAE_PATH, NO_JIT_PATH, BF16_PATH)):
                say(f"pretrain {model} by {path}, repetition {repeat + 1}")
                spec = worker_spec(options, path, model, options.epochs)
                if path in JIT and not any(o.startswith("runtime.jit=") for o in spec["overrides"]):
                    spec["overrides"].insert(0, JIT[path])  # unless --set chose it
                yield measure_in_child("pretrain", spec, repeat, options.timeout)


@contextlib.contextmanager
def matmul_peak(say: Say, info: dict[str, str]) -> Iterator[None]:
    """One core's matrix-multiply peak before the measurements and after: the best of both."""
    say("one core's matrix-multiply peak")
    peaks = [peak_worker({})["gflops"]]  # in this process: it trains nothing else
    yield
    say("one core's matrix-multiply peak, again")
    peaks.append(peak_worker({})["gflops"])  # the best of before and after
    info["matmul_peak_gflops"] = f"{max(peaks):.2f}"


def header(info: dict[str, str]) -> list[str]:
    peak = float(info.get("matmul_peak_gflops", "nan"))
    if peak != peak:
        return []
    return [
        f"- one core's matrix-multiply peak, measured in this run: {peak:,.1f} GFLOP/s "
        "(TensorFlow, one thread, chained 32x784 @ 784x784 products; best of 3). "
        f"Autoencoder GFLOP/s: images/s x {training_flops_per_image() / 1e6:.3f} MFLOP "
        "(the 784-100-30 products forward and backward, 3x forward), a lower bound "
        "since the time includes building and validation."
    ]


def section(report: Report) -> list[str]:
    return paths_section(report, "pretrain", "Autoencoder pretraining", training_flops_per_image())


register(Stage(
    "pretrain", 10, HELP, plan=plan, worker=pretrain_worker, section=section, header=header,
    around=matmul_peak,
))  # fmt: skip
