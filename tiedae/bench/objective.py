"""The ``objective`` stage: each semi-supervised objective by tiedae's compiled loop, by a
plain Keras ``train_step`` + ``fit``, and by tiedae's loop under bfloat16."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tiedae.bench.child import measure_in_child
from tiedae.bench.measure import Clock, Stage, compose_config, register
from tiedae.bench.paths import BF16_PATH, KERAS_PATH, TIEDAE_PATH, rotating, worker_spec
from tiedae.bench.summary import Report, markdown_table, precision_table, ratio_table

if TYPE_CHECKING:
    from tiedae.bench.measure import Measurement, Options, Say

HELP = """\
- ``objective``: each semi-supervised objective of ``--objectives`` (a ``conf/method`` name; its
  networks, batches of 100 labeled + 100 unlabeled images) for one epoch of
  ``--objective-steps`` steps at 500 labels: tiedae's compiled loop against the same objective
  in a plain Keras ``Model.train_step`` trained by ``fit`` (``tf.data``, one step a call), and
  tiedae's loop under ``runtime.precision=mixed_bfloat16`` (``tiedae bfloat16``)."""


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
    from tiedae.runtime import configure_runtime

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


def plan(options: Options, say: Say) -> Iterator[Measurement]:
    for repeat in range(options.repeats):
        for method in options.objectives:
            for path in rotating(repeat, (KERAS_PATH, TIEDAE_PATH, BF16_PATH)):
                say(f"objective {method} by {path}, repetition {repeat + 1}")
                spec = worker_spec(options, path, method, 1, steps=options.objective_steps)
                yield measure_in_child("objective", spec, repeat, options.timeout)


def section(report: Report) -> list[str]:
    objectives, steps = report.lines("objective"), report.options.objective_steps
    if not objectives:
        return []
    text = [
        f"## Semi-supervised objectives ({steps} steps of 100 labeled + "
        "100 unlabeled images, 500 labels, from scratch)\n"
    ]
    text.append(markdown_table(
        ["method", "path", "s per 550 steps", "images/s (range)", "images/CPU-s",
         "val accuracy", "peak RSS MiB"],
        [[s["variant"], s["path"], f"{550 * s['seconds'] / steps:.1f}",
          f"{s['images_per_s']:,.0f} "
          f"({s['images_per_s_min']:,.0f}–{s['images_per_s_max']:,.0f})",
          f"{s['images_per_cpu_s']:,.0f}", f"{s['val_metric']:.4f}",
          f"{s['peak_rss_mib']:,.0f}"] for s in objectives],
    ))  # fmt: skip
    ratios = report.ratios("objective")
    text.append(
        ratio_table(ratios, "tiedae / Keras fit", ("Keras fit", "tiedae"), "metric", "method")
    )
    text.extend(precision_table(report, "objective", "metric"))
    text.append(
        "Seconds include building the networks, compiling and one validation; "
        "the Keras path draws other shuffles, so its accuracies differ by chance.\n"
    )
    return text


register(Stage("objective", 30, HELP, plan=plan, worker=objective_worker, section=section))
