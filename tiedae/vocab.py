"""The values settings sections share (activations, optimizers, losses, noises), and how many
classes a dataset has, known without reading it: what ``tiedae.config`` and the pretrainings
(``tiedae.pretrainings``) both check against, without importing each other."""

from __future__ import annotations

from typing import Any

from tiedae.data import DATASETS

N_CLASSES = 10  # the builtin datasets' classes 0..9; npz's are read from its file
ACTIVATIONS = ("selu", "relu", "elu", "gelu", "tanh", "sigmoid", "swish", "linear")
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
                "lecun_uniform")  # fmt: skip
OPTIMIZERS = ("sgd", "adam", "nadam", "rmsprop")
AE_LOSSES = ("binary_crossentropy", "mse")
NOISES = ("none", "gaussian", "dropout")
AE_IMAGES = ("selected", "all")  # the autoencoder's images: data.classes' only, or every class's


def n_classes(cfg: Any) -> int | None:
    """The dataset's number of classes, when known without reading it (npz: None)."""
    dataset = DATASETS.get(cfg.data.name)
    return dataset.n_classes if dataset else N_CLASSES
