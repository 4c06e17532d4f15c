"""A run's own figures: an autoencoder's reconstructions under their originals."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def reconstructions_figure(autoencoder, images: np.ndarray, path: Path) -> Path:
    """Originals above their reconstructions, as the seed's ``show_reconstructions``.

    A few images: one eager call (``Model.predict`` would build a tf.data pipeline and trace
    a predict function for each new model, for a picture).
    """
    reconstructions = np.asarray(autoencoder(images, training=False), dtype=np.float32)
    n = len(images)
    figure = plt.figure(figsize=(n * 1.5, 3))
    for index in range(n):
        for row, picture in enumerate((images[index], reconstructions[index])):
            axis = figure.add_subplot(2, n, 1 + index + row * n)
            if picture.ndim == 3 and picture.shape[-1] == 1:  # a channel axis of grey
                picture = picture[..., 0]
            axis.imshow(np.clip(picture, 0, 1), cmap="binary")
            axis.axis("off")
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return path
