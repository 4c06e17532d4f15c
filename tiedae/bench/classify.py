"""The ``classify`` stage: the frozen classifier at 500 labels and at all, tiedae's loop
against a plain ``fit`` of the same model, a fixed number of epochs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tiedae.bench.child import measure_in_child
from tiedae.bench.measure import Clock, Stage, compose_config, register
from tiedae.bench.paths import SEED_PATH, alternating, worker_spec
from tiedae.bench.summary import Report, paths_section

if TYPE_CHECKING:
    from tiedae.bench.measure import Measurement, Options, Say

HELP = """\
- ``classify``: the frozen classifier stage at 500 labels and at all labels, tiedae's loop
  against a plain ``fit`` of the same model, a fixed number of epochs (no early stopping)."""


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
    from tiedae.runtime import configure_runtime
    from tiedae.training import make_optimizer

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


def plan(options: Options, say: Say) -> Iterator[Measurement]:
    for repeat in range(options.repeats):
        for labels, epochs in zip((500, "all"), options.classifier_epochs, strict=True):
            for path in alternating(repeat):
                say(f"classifier at {labels} labels by {path}, repetition {repeat + 1}")
                spec = worker_spec(options, path, f"labels={labels}", epochs, labels=labels)
                yield measure_in_child("classify", spec, repeat, options.timeout)


def section(report: Report) -> list[str]:
    title = (
        f"Classifier stage (frozen encoder, {report.options.classifier_epochs[0]} epochs at "
        f"500 labels, {report.options.classifier_epochs[1]} at all; no early stopping)"
    )
    return paths_section(report, "classify", title)


register(Stage("classify", 20, HELP, plan=plan, worker=classify_worker, section=section))
