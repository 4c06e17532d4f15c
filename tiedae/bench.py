"""``make bench``: tiedae's training path against the seed's plain Keras ``fit``, side by side.

    python -m tiedae.bench                       # the default (about 16 minutes on 2 idle cores)
    python -m tiedae.bench --quick               # a few minutes: 1 epoch, 1 repetition, no sweep
    python -m tiedae.bench --epochs 10 --repeats 3 --stages pretrain

Stages (``--stages``, default all):

- ``pretrain``: the seed's autoencoders (784-100-30, tied and untied; SGD 1.5, binary
  cross-entropy, batch 32), the same data and epochs, trained by ``tiedae.pretrain`` (with
  ``runtime.jit=true``; as ``tiedae jit=false``, without XLA; as ``tiedae bfloat16``, under
  ``runtime.precision=mixed_bfloat16``) and by the seed's recipe as
  the seed writes it (Keras ``Sequential`` and a plain ``fit(X, X, epochs=...,
  validation_data=...)``), in rotating order, ``--repeats`` times each. Beside images/s:
  achieved GFLOP/s (counted analytically) against one core's matrix-multiply peak, measured in
  the same run (chained 32x784 @ 784x784 products in TensorFlow, one thread).
- ``classify``: the frozen classifier stage at 500 labels and at all labels, tiedae's loop
  against a plain ``fit`` of the same model, a fixed number of epochs (no early stopping).
- ``objective``: each semi-supervised objective of ``--objectives`` (a ``conf/method`` name; its
  networks, batches of 100 labeled + 100 unlabeled images) for one epoch of
  ``--objective-steps`` steps at 500 labels: tiedae's compiled loop against the same objective
  in a plain Keras ``Model.train_step`` trained by ``fit`` (``tf.data``, one step a call), and
  tiedae's loop under ``runtime.precision=mixed_bfloat16`` (``tiedae bfloat16``).
- ``run``: one default ``tiedae`` run (its pretraining shortened to ``--epochs``): peak memory.
- ``sweep``: the smoke sweep (``experiment=sweep_smoke``) with the pretraining cache, and with
  ``pretrain.cache=false`` (every job pretrains its own autoencoder).
- ``jobs``: where a sweep job's time goes (issue 32). The default study's job shapes
  (``experiment=sweep``: every method at ``--job-labels`` for ``--job-seeds``) run one after
  the other in one process, as a sweep worker runs them, into a throw-away store; each job's
  wall time is split into phases (``tiedae.timing``: load data, build, load cache, pretrain,
  train, evaluate, log model, log figures, other logging, and the rest) beside its MLflow-run
  time (end - start of its run, what issue 32 counts). Written to ``jobs.csv`` and ``jobs.md``
  (alone: ``--stages jobs``, which leaves the other files as they are).

Every measurement runs in its own process, so its peak RSS (``ru_maxrss``) is its own and no
stage warms another. Wall time is what a user waits; CPU time (user + system) is the work done,
less sensitive to other load on a shared machine. Results go to ``experiments/bench/``
(``--out``): ``measurements.csv`` (every process), ``summary.csv`` and ``README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import itertools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tiedae.config import PROJECT_ROOT

STAGES = ("pretrain", "classify", "objective", "run", "sweep", "jobs")
RESULT_PREFIX = "BENCH-RESULT "
SEED_PATH, TIEDAE_PATH = "seed fit", "tiedae"
KERAS_PATH = "Keras fit"  # a semi-supervised objective as plain Keras: train_step + fit
NO_JIT_PATH = "tiedae jit=false"  # tiedae's loop without XLA, beside TIEDAE_PATH (jit=true)
BF16_PATH = "tiedae bfloat16"  # tiedae's path under runtime.precision=mixed_bfloat16
JIT = {TIEDAE_PATH: "runtime.jit=true", NO_JIT_PATH: "runtime.jit=false",
       BF16_PATH: "runtime.jit=true"}  # pretrain stage  # fmt: skip
PRECISION = {BF16_PATH: "runtime.precision=mixed_bfloat16"}  # every stage it is timed in
CHILD_ENV = {"PYTHONUNBUFFERED": "1"}  # TensorFlow's chatter: tiedae/quiet.py


@dataclass(frozen=True)
class Options:
    data: str = "fashion_mnist"
    epochs: int = 5  # autoencoder epochs, both paths
    repeats: int = 2
    classifier_epochs: tuple[int, int] = (20, 2)  # at 500 labels, at all labels
    stages: tuple[str, ...] = STAGES
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


# --- the seed's recipe, as the seed writes it ------------------------------------------------


def seed_autoencoder(tied: bool, image_shape: Sequence[int] = (28, 28)):
    """The seed's autoencoder (HOML 2e ch. 17), compiled, with the changes Keras 3 needs.

    ``self.dense.input_shape[-1]`` became ``self.dense.kernel.shape[0]`` (Keras 3 layers have no
    ``input_shape``), ``SGD(lr=1.5)`` became ``SGD(learning_rate=1.5)``, and ``[28, 28]`` is
    ``image_shape`` so tests can run it on digits. The untied one is the book's stacked
    autoencoder that the tied one is compared with.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    class DenseTranspose(keras.layers.Layer):
        def __init__(self, dense, activation=None, **kwargs):
            self.dense = dense
            self.activation = keras.activations.get(activation)
            super().__init__(**kwargs)

        def build(self, batch_input_shape):
            self.biases = self.add_weight(
                name="bias", shape=[self.dense.kernel.shape[0]], initializer="zeros"
            )
            super().build(batch_input_shape)

        def call(self, inputs):
            z = tf.matmul(inputs, self.dense.weights[0], transpose_b=True)
            return self.activation(z + self.biases)

    def rounded_accuracy(y_true, y_pred):
        return keras.metrics.binary_accuracy(tf.round(y_true), tf.round(y_pred))

    shape = list(image_shape)
    keras.backend.clear_session()
    tf.random.set_seed(42)
    np.random.seed(42)
    if tied:
        dense_1 = keras.layers.Dense(100, activation="selu")
        dense_2 = keras.layers.Dense(30, activation="selu")
        encoder = keras.models.Sequential(
            [keras.layers.Flatten(input_shape=shape), dense_1, dense_2]
        )
        decoder = keras.models.Sequential([
            DenseTranspose(dense_2, activation="selu"),
            DenseTranspose(dense_1, activation="sigmoid"),
            keras.layers.Reshape(shape),
        ])  # fmt: skip
    else:
        encoder = keras.models.Sequential([
            keras.layers.Flatten(input_shape=shape),
            keras.layers.Dense(100, activation="selu"),
            keras.layers.Dense(30, activation="selu"),
        ])  # fmt: skip
        decoder = keras.models.Sequential([
            keras.layers.Dense(100, activation="selu", input_shape=[30]),
            keras.layers.Dense(int(np.prod(shape)), activation="sigmoid"),
            keras.layers.Reshape(shape),
        ])  # fmt: skip
    autoencoder = keras.models.Sequential([encoder, decoder])
    autoencoder.compile(
        loss="binary_crossentropy",
        optimizer=keras.optimizers.SGD(learning_rate=1.5),
        metrics=[rounded_accuracy],
    )
    return autoencoder


# --- workers: one measurement each, in their own process ------------------------------------


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


def _precision_table(summary: Sequence[dict[str, Any]], stage: str, quality: str) -> list[str]:
    """The bfloat16 path against tiedae's float32 one (same loop, same shuffles), if timed."""
    ratios = [c for c in comparisons(summary) if c["stage"] == f"{stage} bfloat16"]
    if not ratios:
        return []
    if quality == "metric":
        header = ["val accuracy float32", "val accuracy bfloat16"]
        cells = [[f"{c['val_metric_keras']:.4f}", f"{c['val_metric_tiedae']:.4f}"] for c in ratios]
    else:
        header = ["val loss float32", "val loss bfloat16", "relative difference"]
        cells = [[f"{c['val_loss_seed']:.4f}", f"{c['val_loss_tiedae']:.4f}",
                  f"{100 * c['val_loss_rel_diff']:+.2f}%"] for c in ratios]  # fmt: skip
    return [markdown_table(
        ["variant", "bfloat16 / float32 images/s", "per CPU-s", *header],
        [[c["variant"], f"{c['speedup']:.2f}x", f"{c['speedup_cpu']:.2f}x", *cell]
         for c, cell in zip(ratios, cells, strict=True)],
    )]  # fmt: skip


def pretrain_worker(spec: dict[str, Any]) -> dict[str, float]:
    """Train the autoencoder ``spec['variant']`` (tied/untied) by ``spec['path']``."""
    overrides = [f"model={spec['variant']}", f"pretrain.epochs={spec['epochs']}"]
    cfg = compose_config(spec["data"], [*overrides, *spec["overrides"]])
    from tiedae.data import load_dataset
    from tiedae.pipeline import fit_settings
    from tiedae.pretrain import pretrain_autoencoder
    from tiedae.training import configure_runtime

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


def classify_worker(spec: dict[str, Any]) -> dict[str, float]:
    """Train the default (frozen) classifier on ``spec['labels']`` labels, fixed epochs.

    The encoder layers come from an untrained autoencoder: the cost is the same, and both
    paths get the same ones.
    """
    import keras

    from tiedae.classify import train_classifier
    from tiedae.config import reuse_layers
    from tiedae.data import labeled_count, load_dataset, stratified_subset
    from tiedae.models import build_classifier, transplant_encoder
    from tiedae.pipeline import fit_settings
    from tiedae.pretrain import build_autoencoder, pretrained_layers
    from tiedae.training import configure_runtime, make_optimizer

    overrides = [f"labels.count={spec['labels']}", f"classifier.epochs={spec['epochs']}"]
    cfg = compose_config(spec["data"], [*overrides, *spec["overrides"]])
    splits = load_dataset(cfg.data)
    labeled = stratified_subset(
        splits.y_train, labeled_count(len(splits.y_train), cfg.labels.count, None), cfg.seed
    )
    if spec["path"] != SEED_PATH:
        configure_runtime(cfg)
    keras.utils.set_random_seed(cfg.seed)
    reuse = reuse_layers(cfg)
    encoder = pretrained_layers(build_autoencoder(splits.image_shape, cfg.model, cfg.pretrain))
    if spec["path"] != SEED_PATH:
        with Clock() as clock:
            _, history = train_classifier(
                splits, labeled, cfg.model, cfg.classifier, fit_settings(cfg, cfg.classifier, None),
                pretrained=encoder, reuse=reuse,
            )  # fmt: skip
        last = history.last
    else:
        x, y = splits.x_train[labeled], splits.y_train[labeled]
        with Clock() as clock:
            keras.utils.set_random_seed(cfg.seed)  # as train_classifier: the same initial head
            classifier = build_classifier(
                splits.image_shape, list(cfg.model.sizes)[:reuse], splits.n_classes,
                activation=cfg.model.activation, kernel_initializer=cfg.model.kernel_initializer,
            )  # fmt: skip
            transplant_encoder(classifier, encoder[:reuse], trainable=not cfg.classifier.freeze)
            classifier.compile(
                loss="sparse_categorical_crossentropy",
                optimizer=make_optimizer(cfg.classifier.optimizer, cfg.classifier.learning_rate),
                metrics=["accuracy"],
            )
            fitted = classifier.fit(
                x, y, epochs=spec["epochs"], validation_data=(splits.x_valid, splits.y_valid)
            )
        last = {name: values[-1] for name, values in fitted.history.items()}
    return {
        "images": len(labeled) * spec["epochs"], "seconds": clock.wall, "cpu_seconds": clock.cpu,
        "val_loss": last["val_loss"], "val_metric": last["val_accuracy"],
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


def objective_worker(spec: dict[str, Any]) -> dict[str, float]:
    """Train the semi-supervised method ``spec['variant']`` (a ``conf/method`` name) for
    ``spec['epochs']`` epochs of ``spec['steps']`` steps at 500 labels, from scratch.

    ``tiedae``: its compiled multi-step loop (``train_with_objective``). ``Keras fit``: the same
    objective object (the same networks, losses and ``train_step``) inside a plain Keras
    ``Model.train_step``, fed by ``tf.data`` and trained by ``fit``, one step a call as Keras
    does by default, and validated each epoch by ``evaluate``.
    """
    overrides = [
        f"method={spec['variant']}", "labels.count=500", f"objective.epochs={spec['epochs']}",
        f"objective.patience={spec['epochs']}", f"objective.steps_per_epoch={spec['steps']}",
    ]  # fmt: skip
    cfg = compose_config(spec["data"], [*overrides, *spec["overrides"]])
    from tiedae.data import load_dataset, stratified_subset
    from tiedae.objectives import build_objective, train_with_objective
    from tiedae.pipeline import fit_settings
    from tiedae.training import configure_runtime

    splits = load_dataset(cfg.data)
    labeled = stratified_subset(splits.y_train, 500, cfg.seed)
    pool = splits.pretrain_images
    configure_runtime(cfg)
    with Clock() as clock:
        if spec["path"] == KERAS_PATH:
            objective = build_objective(cfg, splits.image_shape, splits.n_classes, len(pool))
            last = keras_objective_fit(
                objective, cfg, (splits.x_train[labeled], splits.y_train[labeled]), pool,
                (splits.x_valid, splits.y_valid), spec["epochs"],
            )  # fmt: skip
        else:
            settings = fit_settings(cfg, cfg.classifier, None)
            _, history, objective = train_with_objective(cfg, splits, labeled, pool, settings)
            last = history.last
    section = objective.section
    batch = int(section.labeled_batch_size) + int(section.unlabeled_batch_size)
    return {
        "images": spec["steps"] * spec["epochs"] * batch, "seconds": clock.wall,
        "cpu_seconds": clock.cpu, "val_loss": last["val_loss"],
        "val_metric": last["val_accuracy"],
    }  # fmt: skip


def keras_objective_fit(objective, cfg, labeled, unlabeled, validation, epochs: int) -> dict:
    """``objective`` trained the plain Keras way; the last epoch's validation loss and accuracy."""
    import keras
    import tensorflow as tf

    from tiedae.objectives.base import learning_rate_factor
    from tiedae.training import make_optimizer

    section = objective.section
    variables = objective.trainable_variables

    class ObjectiveModel(keras.Model):
        def call(self, x):
            return objective.classifier(x)

        def train_step(self, data):
            labeled_batch, unlabeled_batch = data
            with tf.GradientTape() as tape:
                losses = objective.train_step(labeled_batch, unlabeled_batch)
            self.optimizer.apply(tape.gradient(losses["loss"], variables), variables)
            objective.after_update()
            objective.step.assign_add(1)
            return losses

    def batches(data, size: int):
        data = tf.data.Dataset.from_tensor_slices(data)
        return data.shuffle(len(data), seed=cfg.seed).repeat().batch(size, drop_remainder=True)

    stream = tf.data.Dataset.zip((
        batches(labeled, int(section.labeled_batch_size)),
        batches(unlabeled, int(section.unlabeled_batch_size)),
    )).prefetch(2)  # fmt: skip
    optimizer = make_optimizer(cfg.classifier.optimizer, cfg.classifier.learning_rate)
    model = ObjectiveModel()
    model.compile(optimizer=optimizer)
    objective.classifier.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    base_rate, start = float(cfg.classifier.learning_rate), section.get("lr_decay_start")
    scores: dict[str, float] = {}

    class Validate(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if start is not None:
                optimizer.learning_rate.assign(
                    base_rate * learning_rate_factor(epoch, epochs, float(start))
                )

        def on_epoch_end(self, epoch, logs=None):
            loss, accuracy = objective.classifier.evaluate(*validation, verbose=0)
            scores.update(val_loss=float(loss), val_accuracy=float(accuracy))

    model.fit(
        stream, epochs=epochs, steps_per_epoch=objective.steps_per_epoch,
        callbacks=[Validate()], shuffle=False, verbose=0,
    )  # fmt: skip
    return scores


WORKERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "pretrain": pretrain_worker,
    "classify": classify_worker,
    "objective": objective_worker,
}


def training_flops_per_image(sizes: Sequence[int] = (784, 100, 30)) -> float:
    """FLOPs to train on one image: an autoencoder's products, forward + backward (3x forward).

    A product of (1 x m) by (m x k) costs 2mk; the encoder runs ``sizes`` down, the decoder up
    (tied or untied alike). Element-wise work (activations, loss, update) is not counted.
    """
    forward = 2 * 2 * sum(a * b for a, b in itertools.pairwise(sizes))
    return 3.0 * forward


# --- processes ----------------------------------------------------------------------------


@dataclass
class Child:
    returncode: int
    output: str
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float


def run_child(command: Sequence[str], timeout: float, cwd: Path = PROJECT_ROOT) -> Child:
    """Run ``command``; its exit code, output, wall and CPU time and peak RSS (``wait4``)."""
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(command), stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
            env={**os.environ, **CHILD_ENV},
        )  # fmt: skip
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        log.seek(0)
        output = log.read().decode(errors="replace")
    return Child(
        process.returncode, output, seconds, usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,  # KiB on Linux
    )  # fmt: skip


def measure_in_child(stage: str, spec: dict[str, Any], repeat: int, timeout: float) -> Measurement:
    child = run_child(
        [sys.executable, "-m", "tiedae.bench", "--worker", stage, json.dumps(spec)], timeout
    )
    lines = [line for line in child.output.splitlines() if line.startswith(RESULT_PREFIX)]
    if child.returncode != 0 or not lines:
        raise RuntimeError(
            f"bench worker {stage} {spec} failed (exit {child.returncode}):\n{child.output[-3000:]}"
        )
    result = json.loads(lines[-1][len(RESULT_PREFIX) :])
    return Measurement(
        stage, str(spec["variant"]), spec["path"], repeat, **result,
        peak_rss_mib=child.peak_rss_mib, process_seconds=child.seconds,
    )  # fmt: skip


def measure_cli(stage: str, variant: str, overrides: Sequence[str], timeout: float) -> Measurement:
    """A ``tiedae`` command as a user runs it, into a throw-away MLflow store."""
    with tempfile.TemporaryDirectory(prefix="tiedae-bench-") as folder:
        command = [
            sys.executable, "-m", "tiedae", *overrides,
            f"tracking.uri=sqlite:///{folder}/mlflow.db", f"tracking.artifact_dir={folder}/art",
            f"hydra.run.dir={folder}/run", f"hydra.sweep.dir={folder}/multirun",
        ]  # fmt: skip
        child = run_child(command, timeout)
    if child.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{child.output[-3000:]}")
    return Measurement(
        stage, variant, "tiedae CLI", 0, seconds=child.seconds, cpu_seconds=child.cpu_seconds,
        peak_rss_mib=child.peak_rss_mib, process_seconds=child.seconds,
    )  # fmt: skip


# --- the plan -----------------------------------------------------------------------------


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


def measurements(options: Options, say: Callable[[str], None]) -> Iterator[Measurement]:
    if "pretrain" in options.stages:
        for repeat in range(options.repeats):
            for model in options.models:
                for path in rotating(repeat, (SEED_PATH, TIEDAE_PATH, NO_JIT_PATH, BF16_PATH)):
                    say(f"pretrain {model} by {path}, repetition {repeat + 1}")
                    spec = worker_spec(options, path, model, options.epochs)
                    if path in JIT and not any(
                        o.startswith("runtime.jit=") for o in spec["overrides"]
                    ):
                        spec["overrides"].insert(0, JIT[path])  # unless --set chose it
                    yield measure_in_child("pretrain", spec, repeat, options.timeout)
    if "classify" in options.stages:
        for repeat in range(options.repeats):
            for labels, epochs in zip((500, "all"), options.classifier_epochs, strict=True):
                for path in alternating(repeat):
                    say(f"classifier at {labels} labels by {path}, repetition {repeat + 1}")
                    spec = worker_spec(options, path, f"labels={labels}", epochs, labels=labels)
                    yield measure_in_child("classify", spec, repeat, options.timeout)
    if "objective" in options.stages:
        for repeat in range(options.repeats):
            for method in options.objectives:
                for path in rotating(repeat, (KERAS_PATH, TIEDAE_PATH, BF16_PATH)):
                    say(f"objective {method} by {path}, repetition {repeat + 1}")
                    spec = worker_spec(options, path, method, 1, steps=options.objective_steps)
                    yield measure_in_child("objective", spec, repeat, options.timeout)
    if "run" in options.stages:
        say(f"one default run, pretrain.epochs={options.epochs}")
        overrides = [f"data={options.data}", f"pretrain.epochs={options.epochs}"]
        yield measure_cli("run", "default", [*overrides, *options.overrides], options.timeout)
    if "sweep" in options.stages:
        for variant, extra in (("cache on", []), ("cache off", ["pretrain.cache=false"])):
            say(f"smoke sweep, pretraining {variant}")
            overrides = ["experiment=sweep_smoke", "runtime.verbose=0", *options.overrides, *extra]
            yield measure_cli("sweep", variant, overrides, options.timeout)


# --- the jobs stage: where a sweep job's time goes (issue 32) ------------------------------


def job_shapes(options: Options, folder: str) -> list:
    """The composed config of each timed job: the default study's methods at the stage's
    labeled counts and seeds, in the sweep's order, into the store in ``folder``."""
    from hydra import compose, initialize_config_dir

    from tiedae.config import CONFIG_DIR

    store = [f"tracking.uri=sqlite:///{folder}/mlflow.db", f"tracking.artifact_dir={folder}/art"]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        grid = compose("config", ["experiment=sweep"], return_hydra_config=True)
        methods = str(grid.hydra.sweeper.params.method).split(",")
        return [
            compose("config", ["experiment=sweep", f"seed={seed}", f"method={method}",
                               f"labels.count={labels}", *store, *options.overrides])
            for seed in options.job_seeds for method in methods for labels in options.job_labels
        ]  # fmt: skip


def jobs_worker(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the jobs stage's jobs one after the other in this process; a record per job: its
    method, labels, seed, wall seconds, MLflow-run seconds, pretraining cache tag and phases."""
    from tiedae import timing
    from tiedae.config import method_name, run_name
    from tiedae.pipeline import run_experiment
    from tiedae.tracking import Tracker, TrackingSettings

    options = Options(**{key: tuple(value) if isinstance(value, list) else value
                         for key, value in spec["options"].items()})  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tiedae-bench-jobs-") as folder:
        records = []
        for cfg in job_shapes(options, folder):
            timing.reset()
            started = time.perf_counter()
            run_experiment(cfg)
            seconds = time.perf_counter() - started
            phases = timing.phases()
            phases["rest"] = max(0.0, seconds - sum(phases.values()))
            records.append({
                "name": run_name(cfg),
                "method": method_name(cfg),
                "labels": str(cfg.labels.count), "seed": cfg.seed,
                "seconds": seconds, **{f"phase/{k}": v for k, v in phases.items()},
            })  # fmt: skip
        tracker = Tracker(TrackingSettings.from_config(cfg.tracking)).connect()
        frame = tracker.jobs_frame(cfg.sweep.name)
        run_seconds = {
            row["tags.mlflow.runName"]: (row["end_time"] - row["start_time"]).total_seconds()
            for _, row in frame.iterrows()
        }
        cache = dict(zip(frame["tags.mlflow.runName"], frame["tags.pretrain.cache"], strict=True))
    for record in records:
        record["run_seconds"] = run_seconds.get(record["name"], float("nan"))
        tag = cache.get(record["name"])
        record["pretrain_cache"] = tag if isinstance(tag, str) and tag else "n/a"
    return records


WORKERS["jobs"] = jobs_worker


def measure_jobs(options: Options, timeout: float) -> list[dict[str, Any]]:
    spec = {"options": {key: value for key, value in asdict(options).items() if key != "out"}}
    child = run_child(
        [sys.executable, "-m", "tiedae.bench", "--worker", "jobs", json.dumps(spec)], timeout
    )
    lines = [line for line in child.output.splitlines() if line.startswith(RESULT_PREFIX)]
    if child.returncode != 0 or not lines:
        raise RuntimeError(f"bench jobs worker failed (exit {child.returncode}):\n"
                           f"{child.output[-3000:]}")  # fmt: skip
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def jobs_breakdown(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per labeled count, the median seconds of each phase over the jobs that loaded their
    autoencoder from the cache or pretrain nothing (the sweep's common case: 90 of 125 jobs
    hit, 25 are scratch), and of all jobs' MLflow-run time."""
    import pandas as pd

    frame = pd.DataFrame(records).fillna({c: 0.0 for c in _phase_columns(records)})
    common = frame[frame["pretrain_cache"].isin(["hit", "n/a"])]
    rows = []
    for labels, group in common.groupby("labels", sort=False):
        row = {"labels": labels, "jobs": len(group),
               "run_seconds": group["run_seconds"].median(),
               "seconds": group["seconds"].median()}  # fmt: skip
        row.update({c: group[c].median() for c in _phase_columns(records)})
        row["all_jobs_run_seconds"] = frame[frame["labels"] == labels]["run_seconds"].median()
        rows.append(row)
    return rows


def _phase_columns(records: Sequence[dict[str, Any]]) -> list[str]:
    from tiedae.timing import PHASES

    present = {key for record in records for key in record if key.startswith("phase/")}
    return [f"phase/{name}" for name in (*PHASES, "rest") if f"phase/{name}" in present]


def jobs_report(options: Options, records: Sequence[dict[str, Any]], info: dict[str, str]) -> str:
    rows = jobs_breakdown(records)
    phases = _phase_columns(records)
    names = [column.split("/", 1)[1] for column in phases]
    header = ["labels", "jobs", "MLflow-run s", "job wall s", *names, "all jobs' MLflow-run s"]
    body = [[row["labels"], row["jobs"], f"{row['run_seconds']:.2f}", f"{row['seconds']:.2f}",
             *(f"{row[column]:.2f}" for column in phases),
             f"{row['all_jobs_run_seconds']:.2f}"] for row in rows]  # fmt: skip
    return "\n".join(
        [
            "## Where a sweep job's time goes (issue 32)\n",
            f"- date: {info['date']}, commit {info['commit']}; load: {info['uptime']}",
            f"- jobs: `experiment=sweep`'s methods x labels.count={','.join(options.job_labels)} x "
            f"seed={','.join(map(str, options.job_seeds))}, one after the other in one process (a "
            "sweep worker's life), one TensorFlow thread, a throw-away sqlite store",
            "- median seconds per job over the jobs whose autoencoder came from the cache or that "
            "pretrain nothing (the sweep's common case); *rest*: the job's wall time outside the "
            "timed phases (config, keys, Python); the last column: every job, pretrainings "
            "included\n",
            markdown_table(header, body),
            "",
        ]
    )


# --- summary and report -------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(rows: Sequence[Measurement]) -> list[dict[str, Any]]:
    """One line per (stage, variant, path): medians over repetitions, the range of speeds."""
    groups: dict[tuple[str, str, str], list[Measurement]] = {}
    for row in rows:
        groups.setdefault((row.stage, row.variant, row.path), []).append(row)
    summary = []
    for (stage, variant, path), group in groups.items():
        speeds = [row.images_per_second for row in group]
        summary.append({
            "stage": stage, "variant": variant, "path": path, "repeats": len(group),
            "seconds": _median([row.seconds for row in group]),
            "cpu_seconds": _median([row.cpu_seconds for row in group]),
            "images_per_s": _median(speeds), "images_per_s_min": min(speeds),
            "images_per_s_max": max(speeds),
            "images_per_cpu_s": _median([row.images_per_cpu_second for row in group]),
            "val_loss": _median([row.val_loss for row in group]),
            "val_loss_min": min(row.val_loss for row in group),
            "val_loss_max": max(row.val_loss for row in group),
            "val_metric": _median([row.val_metric for row in group]),
            "peak_rss_mib": max(row.peak_rss_mib for row in group),
        })  # fmt: skip
    return summary


def _ratios(ours: dict[str, Any], other: dict[str, Any], quality: str) -> dict[str, Any]:
    """Our speed over ``other``'s (wall and CPU), and both final validation ``quality`` values
    (``loss``: as ``val_loss_seed``/``val_loss_tiedae`` and the relative difference;
    ``metric``: as ``val_metric_keras``/``val_metric_tiedae``)."""
    ratios = {
        "speedup": ours["images_per_s"] / other["images_per_s"],
        "speedup_cpu": ours["images_per_cpu_s"] / other["images_per_cpu_s"],
    }
    if quality == "metric":
        return {**ratios, "val_metric_keras": other["val_metric"],
                "val_metric_tiedae": ours["val_metric"]}  # fmt: skip
    return {
        **ratios, "val_loss_seed": other["val_loss"], "val_loss_tiedae": ours["val_loss"],
        "val_loss_rel_diff": (ours["val_loss"] - other["val_loss"]) / other["val_loss"],
    }  # fmt: skip


def comparisons(summary: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """tiedae against the seed's fit per variant; the sweep without the cache against with."""
    by_key = {(s["stage"], s["variant"], s["path"]): s for s in summary}
    found = []
    for (stage, variant, path), ours in by_key.items():
        if path != TIEDAE_PATH:
            continue
        seed, keras_fit, no_jit, bfloat16 = (
            by_key.get((stage, variant, other))
            for other in (SEED_PATH, KERAS_PATH, NO_JIT_PATH, BF16_PATH)
        )
        if seed:
            found.append({"stage": stage, "variant": variant, **_ratios(ours, seed, "loss")})
        if keras_fit:
            found.append({"stage": stage, "variant": variant, **_ratios(ours, keras_fit, "metric")})
        if no_jit:
            found.append({"stage": f"{stage} jit", "variant": variant,
                          **_ratios(ours, no_jit, "loss")})  # fmt: skip
        if bfloat16:  # bfloat16 against float32, both tiedae's; as "tiedae" against "seed"
            quality = "metric" if stage == "objective" else "loss"
            found.append({"stage": f"{stage} bfloat16", "variant": variant,
                          **_ratios(bfloat16, ours, quality)})  # fmt: skip
    on, off = (
        by_key.get(("sweep", "cache on", "tiedae CLI")),
        by_key.get(("sweep", "cache off", "tiedae CLI")),
    )
    if on and off:
        found.append({
            "stage": "sweep", "variant": "cache off / cache on",
            "speedup": off["seconds"] / on["seconds"],
            "speedup_cpu": off["cpu_seconds"] / on["cpu_seconds"],
        })  # fmt: skip
    return found


def _val_loss_cell(line: dict[str, Any]) -> str:
    if line["val_loss_min"] == line["val_loss_max"]:
        return f"{line['val_loss']:.4f}"
    return f"{line['val_loss']:.4f} ({line['val_loss_min']:.4f}–{line['val_loss_max']:.4f})"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS says)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine() -> dict[str, str]:
    def version(*names: str) -> str:
        for name in names:
            try:
                return importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                continue
        return "not installed"

    model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]  # fmt: skip
        model = names[0] if names else model
    return {
        "cores": f"{usable_cores()} usable of {os.cpu_count()}", "cpu": model,
        "python": platform.python_version(),
        "tensorflow": version("tensorflow", "tensorflow-cpu"), "keras": version("keras"),
        "system": f"{platform.system()} {platform.release()}",
    }  # fmt: skip


def report(
    options: Options, rows: Sequence[Measurement], command: str, info: dict[str, str]
) -> str:
    summary = summarize(rows)
    text = [
        "# Benchmark: tiedae's training path against the seed's plain Keras `fit`\n",
        f"- command: `{command}`",
        f"- date: {info['date']}, commit {info['commit']}",
        f"- machine: {info['cores']} cores, {info['cpu']}; {info['system']}; Python "
        f"{info['python']}, TensorFlow {info['tensorflow']}, Keras {info['keras']}",
        f"- load average (1 min) at start and end: {info['load']}",
        f"- data: {options.data}; autoencoders {options.epochs} epochs, batch 32, SGD 1.5, "
        f"binary cross-entropy; {options.repeats} repetitions (median and range)",
        f"- tiedae config overrides: {' '.join(options.overrides) or 'none (the defaults)'}",
        "- images/s: training images x epochs / wall seconds of model building + training "
        "(validation each epoch included); images/CPU-s: the same over user + system CPU "
        "seconds, less sensitive to other load. Peak RSS: the whole process (`ru_maxrss`).",
    ]
    peak = float(info.get("matmul_peak_gflops", "nan"))
    if peak == peak:
        text.append(
            f"- one core's matrix-multiply peak, measured in this run: {peak:,.1f} GFLOP/s "
            "(TensorFlow, one thread, chained 32x784 @ 784x784 products; best of 3). "
            f"Autoencoder GFLOP/s: images/s x {training_flops_per_image() / 1e6:.3f} MFLOP "
            "(the 784-100-30 products forward and backward, 3x forward), a lower bound "
            "since the time includes building and validation."
        )
    text[-1] += "\n"
    stage_titles = {
        "pretrain": "Autoencoder pretraining",
        "classify": f"Classifier stage (frozen encoder, {options.classifier_epochs[0]} epochs at "
        f"500 labels, {options.classifier_epochs[1]} at all; no early stopping)",
    }
    for stage, title in stage_titles.items():
        lines = [s for s in summary if s["stage"] == stage]
        if not lines:
            continue
        text.append(f"## {title}\n")
        flops = stage == "pretrain"
        gflops = [s["images_per_s"] * training_flops_per_image() / 1e9 for s in lines]
        text.append(markdown_table(
            ["variant", "path", "images/s (range)", "images/CPU-s"]
            + (["GFLOP/s", "of peak"] if flops else [])
            + ["final val loss (range)", "final val metric", "peak RSS MiB"],
            [[s["variant"], s["path"],
              f"{s['images_per_s']:,.0f} "
              f"({s['images_per_s_min']:,.0f}–{s['images_per_s_max']:,.0f})",
              f"{s['images_per_cpu_s']:,.0f}"]
             + ([f"{g:.1f}", f"{100 * g / peak:.0f}%" if peak == peak else "–"] if flops else [])
             + [_val_loss_cell(s), f"{s['val_metric']:.4f}", f"{s['peak_rss_mib']:,.0f}"]
             for s, g in zip(lines, gflops, strict=True)],
        ))  # fmt: skip
        ratios = [c for c in comparisons(summary) if c["stage"] == stage]
        text.append(markdown_table(
            ["variant", "tiedae / seed images/s", "per CPU-s", "val loss seed", "val loss tiedae",
             "relative difference"],
            [[c["variant"], f"{c['speedup']:.2f}x", f"{c['speedup_cpu']:.2f}x",
              f"{c['val_loss_seed']:.4f}", f"{c['val_loss_tiedae']:.4f}",
              f"{100 * c['val_loss_rel_diff']:+.2f}%"] for c in ratios],
        ))  # fmt: skip
        jit = [c for c in comparisons(summary) if c["stage"] == f"{stage} jit"]
        if jit:
            text.append(markdown_table(
                ["variant", "jit=true / jit=false images/s", "per CPU-s", "val loss jit=false",
                 "val loss jit=true", "relative difference"],
                [[c["variant"], f"{c['speedup']:.2f}x", f"{c['speedup_cpu']:.2f}x",
                  f"{c['val_loss_seed']:.4f}", f"{c['val_loss_tiedae']:.4f}",
                  f"{100 * c['val_loss_rel_diff']:+.2f}%"] for c in jit],
            ))  # fmt: skip
        text.extend(_precision_table(summary, stage, "loss"))
    objectives = [s for s in summary if s["stage"] == "objective"]
    if objectives:
        text.append(
            f"## Semi-supervised objectives ({options.objective_steps} steps of 100 labeled + "
            "100 unlabeled images, 500 labels, from scratch)\n"
        )
        text.append(markdown_table(
            ["method", "path", "s per 550 steps", "images/s (range)", "images/CPU-s",
             "val accuracy", "peak RSS MiB"],
            [[s["variant"], s["path"], f"{550 * s['seconds'] / options.objective_steps:.1f}",
              f"{s['images_per_s']:,.0f} "
              f"({s['images_per_s_min']:,.0f}–{s['images_per_s_max']:,.0f})",
              f"{s['images_per_cpu_s']:,.0f}", f"{s['val_metric']:.4f}",
              f"{s['peak_rss_mib']:,.0f}"] for s in objectives],
        ))  # fmt: skip
        ratios = [c for c in comparisons(summary) if c["stage"] == "objective"]
        text.append(markdown_table(
            ["method", "tiedae / Keras fit images/s", "per CPU-s", "val accuracy Keras fit",
             "val accuracy tiedae"],
            [[c["variant"], f"{c['speedup']:.2f}x", f"{c['speedup_cpu']:.2f}x",
              f"{c['val_metric_keras']:.4f}", f"{c['val_metric_tiedae']:.4f}"] for c in ratios],
        ))  # fmt: skip
        text.extend(_precision_table(summary, "objective", "metric"))
        text.append(
            "Seconds include building the networks, compiling and one validation; "
            "the Keras path draws other shuffles, so its accuracies differ by chance.\n"
        )
    runs = [s for s in summary if s["stage"] == "run"]
    if runs:
        text.append(f"## One default run (`tiedae data={options.data} "
                    f"pretrain.epochs={options.epochs}`)\n")  # fmt: skip
        text.append(markdown_table(
            ["wall s", "CPU s", "peak RSS MiB"],
            [[f"{s['seconds']:.1f}", f"{s['cpu_seconds']:.1f}", f"{s['peak_rss_mib']:,.0f}"]
             for s in runs],
        ))  # fmt: skip
    sweeps = [s for s in summary if s["stage"] == "sweep"]
    if sweeps:
        text.append("## The smoke sweep (`tiedae experiment=sweep_smoke`), whole process\n")
        ratio = [c for c in comparisons(summary) if c["stage"] == "sweep"]
        text.append(markdown_table(
            ["pretraining", "wall s", "CPU s", "peak RSS MiB"],
            [[s["variant"], f"{s['seconds']:.1f}", f"{s['cpu_seconds']:.1f}",
              f"{s['peak_rss_mib']:,.0f}"] for s in sweeps]
            + [["without / with the cache", f"{c['speedup']:.2f}x", f"{c['speedup_cpu']:.2f}x", ""]
               for c in ratio],
        ))  # fmt: skip
        text.append(study_estimate(options, rows))
    return "\n".join(text)


def sweep_jobs(experiment: str) -> list:
    """The composed config of every job in a sweep experiment's grid (``a,b,c`` lists)."""
    from tiedae.compose import grid_configs

    return grid_configs(experiment)


def study_estimate(options: Options, rows: Sequence[Measurement]) -> str:
    """What the cache saves in the default study, from its grid and the pretraining measured.

    The smoke sweep's autoencoders (digits, 2 epochs) cost about a second each, so the cache
    barely shows there; the default study's are the seed's, 10 epochs on Fashion-MNIST.
    """
    from tiedae.config import is_pretrained, pretrain_settings, settings_key

    jobs = sweep_jobs("sweep")
    pretraining = [job for job in jobs if is_pretrained(job)]
    distinct = len({settings_key(pretrain_settings(job)) for job in pretraining})
    epochs, data = pretraining[0].pretrain.epochs, pretraining[0].data.name
    line = (
        f"The default study (`experiment=sweep`): {len(pretraining)} of its {len(jobs)} jobs "
        f"pretrain, sharing {distinct} distinct autoencoders ({epochs} epochs on {data}); "
        f"with the cache it trains {distinct}, without it {len(pretraining)}."
    )
    measured = [row.seconds / options.epochs for row in rows
                if row.stage == "pretrain" and row.path == TIEDAE_PATH]  # fmt: skip
    if measured and options.data == data:
        saved = (len(pretraining) - distinct) * epochs * _median(measured)
        line += (
            f" At the {_median(measured):.1f} s an epoch measured above, the cache saves about "
            f"{saved / 60:.0f} minutes of pretraining (an estimate, not a measurement)."
        )
    return line + "\n"


def write_results(
    folder: Path, rows: Sequence[Measurement], markdown: str, command: str, info: dict[str, str]
) -> list[Path]:
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    context = {"command": command, **info}
    raw = pd.DataFrame([
        {**asdict(row), "images_per_s": row.images_per_second,
         "images_per_cpu_s": row.images_per_cpu_second}
        for row in rows
    ])  # fmt: skip
    summary = pd.DataFrame(summarize(rows))
    for frame in (raw, summary):
        for key, value in context.items():
            frame[key] = value
    paths = [folder / "measurements.csv", folder / "summary.csv", folder / "README.md"]
    raw.to_csv(paths[0], index=False)
    summary.to_csv(paths[1], index=False)
    paths[2].write_text(markdown)
    return paths


# --- the command line ---------------------------------------------------------------------


def parse_options(argv: Sequence[str] | None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m tiedae.bench", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 1)[1],
    )  # fmt: skip
    parser.add_argument("--data", choices=("fashion_mnist", "digits"), default="fashion_mnist")
    parser.add_argument("--epochs", type=int, help="autoencoder epochs (default 5; --quick: 1)")
    parser.add_argument("--repeats", type=int, help="repetitions (default 2; --quick: 1)")
    parser.add_argument(
        "--classifier-epochs", type=int, nargs=2, metavar=("AT_500", "AT_ALL"),
        help="classifier epochs at 500 and at all labels (default 20 2)",
    )  # fmt: skip
    parser.add_argument("--stages", default=None,
                        help=f"comma-separated, from {','.join(STAGES)} (default all; "
                             "--quick: all but sweep)")  # fmt: skip
    parser.add_argument(
        "--models",
        default="tied,untied",
        help="comma-separated autoencoders for the pretrain stage (default both)",
    )
    parser.add_argument(
        "--objectives",
        default=",".join(Options.objectives),
        help="comma-separated conf/method names for the objective stage (all: every row "
        "that picks an objective)",
    )
    parser.add_argument(
        "--objective-steps",
        type=int,
        help="steps timed per objective (default 550, one epoch; --quick: 50)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="a tiedae config override for tiedae's path, e.g. --set runtime.threads=1",
    )  # fmt: skip
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short version (a few minutes): 1 epoch, 1 repetition, no sweep",
    )
    parser.add_argument(
        "--job-labels",
        default=",".join(Options.job_labels),
        help="the jobs stage's labeled counts (default 100,500,1000)",
    )
    parser.add_argument("--job-seeds", default=",".join(map(str, Options.job_seeds)),
                        help="the jobs stage's seeds (default 1,2)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Options.out, help="results folder")
    parser.add_argument("--timeout", type=float, default=Options.timeout, help="s per process")
    parser.add_argument("--worker", nargs=2, metavar=("STAGE", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    quick_stages = tuple(stage for stage in STAGES if stage not in ("sweep", "jobs"))
    stages = tuple(args.stages.split(",")) if args.stages else quick_stages if quick else STAGES
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"--stages: {', '.join(unknown)} unknown; choose from {', '.join(STAGES)}")
    models = tuple(args.models.split(","))
    if not models or set(models) - {"tied", "untied"}:
        parser.error(f"--models={args.models}: choose from tied, untied (comma-separated)")
    objectives = tuple(args.objectives.split(","))
    if objectives == ("all",):
        from tiedae.objectives import objective_methods

        objectives = tuple(objective_methods())
    methods = {path.stem for path in (PROJECT_ROOT / "conf" / "method").glob("*.yaml")}
    if set(objectives) - methods:
        parser.error(f"--objectives: {', '.join(sorted(set(objectives) - methods))} unknown; "
                     f"see conf/method/")  # fmt: skip
    objective_steps = args.objective_steps or (50 if quick else Options.objective_steps)
    if objective_steps < 1:
        parser.error(f"--objective-steps={objective_steps} must be at least 1")
    for name in ("epochs", "repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name}={value} must be at least 1")
    options = Options(
        data=args.data,
        epochs=args.epochs or (1 if quick else Options.epochs),
        repeats=args.repeats or (1 if quick else Options.repeats),
        classifier_epochs=tuple(args.classifier_epochs or ((2, 1) if quick else (20, 2))),
        stages=stages, models=models, objectives=objectives,
        objective_steps=objective_steps, overrides=tuple(args.overrides), out=args.out,
        timeout=args.timeout, job_labels=tuple(args.job_labels.split(",")),
        job_seeds=tuple(int(seed) for seed in args.job_seeds.split(",")),
    )  # fmt: skip
    return options, args


def uptime() -> str:
    """The load averages (1, 5, 15 min) as ``uptime`` prints them."""
    return "load average: " + ", ".join(f"{load:.2f}" for load in os.getloadavg())


def write_jobs(options: Options, say: Callable[[str], None], info: dict[str, str]) -> int:
    """Run the jobs stage; write ``jobs.csv`` (a row per job) and ``jobs.md`` to ``--out``."""
    import pandas as pd

    say(f"jobs: the default study's shapes at labels {','.join(options.job_labels)}")
    records = measure_jobs(options, options.timeout)
    info = {**info, "uptime": f"{info['uptime']} at start, {uptime()} at end"}
    markdown = jobs_report(options, records, info)
    options.out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(records)
    for key, value in info.items():
        frame[key] = value
    frame.to_csv(options.out / "jobs.csv", index=False)
    (options.out / "jobs.md").write_text(markdown)
    print("\n" + markdown)
    print(f"written: {options.out / 'jobs.csv'}, {options.out / 'jobs.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    options, args = parse_options(argv)
    if args.worker:
        stage, spec = args.worker
        result = WORKERS[stage](json.loads(spec))
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    command = shlex.join(
        ["python", "-m", "tiedae.bench", *(sys.argv[1:] if argv is None else argv)]
    )
    info = {**machine(), "date": datetime.datetime.now().isoformat(timespec="seconds")}
    from tiedae.provenance import git_state

    state = git_state()
    info["commit"] = state["commit"][:10] + (" (dirty)" if state["dirty"] == "true" else "")
    load_start = os.getloadavg()[0]
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[bench {time.perf_counter() - started:6.0f}s] {message}", flush=True)

    info["uptime"] = uptime()
    if options.stages == ("jobs",):  # alone: the other stages' files stay as they are
        return write_jobs(options, say, info)
    peaks = []
    if "pretrain" in options.stages:
        say("one core's matrix-multiply peak")
        peaks.append(peak_worker({})["gflops"])  # in this process: it trains nothing else
    rows = list(measurements(options, say))
    if peaks:
        say("one core's matrix-multiply peak, again")
        peaks.append(peak_worker({})["gflops"])  # the best of before and after
        info["matmul_peak_gflops"] = f"{max(peaks):.2f}"
    info["load"] = f"{load_start:.1f} and {os.getloadavg()[0]:.1f}"
    markdown = report(options, rows, command, info)
    paths = write_results(options.out, rows, markdown, command, info)
    if "jobs" in options.stages:
        write_jobs(options, say, info)
    print("\n" + markdown)
    print(f"written: {', '.join(str(p) for p in paths)}  ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
