"""Representation probes: how good a pretrained encoder's frozen codes are, apart from how a
head was trained on them.

At each labeled count of ``probes.counts`` (the same ``stratified_subset`` and seed the
classifiers draw), a k-nearest-neighbour classifier (``probes.k``) and a logistic regression
(fixed ``probes.C``) are fitted on the codes of the labeled images and scored on the TEST set's
codes. Nothing is chosen, so no validation set is read: the probes respect either protocol.
A 2-D PCA picture of the pretraining's validation codes, coloured by class, is logged too.
Cheap: one pass of the encoder over the training and test images, then small fits.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from tiedae.config.schemas import ProbeSettings, read  # noqa: E402
from tiedae.data import Splits, stratified_subset  # noqa: E402
from tiedae.training import predict  # noqa: E402


def probe_accuracies(
    train_codes: np.ndarray,
    y_train: np.ndarray,
    test_codes: np.ndarray,
    y_test: np.ndarray,
    counts: list[int],
    seed: int,
    k: int = 5,
    C: float = 1.0,
) -> dict[str, float]:
    """``probe/knn_accuracy_n<count>`` and ``probe/logreg_accuracy_n<count>`` per count (counts
    larger than the training set are skipped). Codes are standardised with statistics of every
    training code (labels unused): the logistic regression then converges in a few steps."""
    scaler = StandardScaler().fit(train_codes.reshape(len(train_codes), -1))
    flat_train = scaler.transform(train_codes.reshape(len(train_codes), -1))
    flat_test = scaler.transform(test_codes.reshape(len(test_codes), -1))
    results: dict[str, float] = {}
    for count in counts:
        if count > len(y_train):
            continue
        labeled = stratified_subset(y_train, count, seed)
        x, y = flat_train[labeled], y_train[labeled]
        knn = KNeighborsClassifier(n_neighbors=min(k, len(y))).fit(x, y)
        results[f"probe/knn_accuracy_n{count}"] = float(knn.score(flat_test, y_test))
        if len(np.unique(y)) > 1:
            logreg = LogisticRegression(C=C, max_iter=1000, random_state=seed).fit(x, y)
            results[f"probe/logreg_accuracy_n{count}"] = float(logreg.score(flat_test, y_test))
    return results


def codes_figure(
    codes: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...], path: Path, title: str
) -> Path:
    """The codes' first two principal components, one colour per class."""
    flat = codes.reshape(len(codes), -1)
    points = PCA(n_components=2, random_state=0).fit_transform(flat)
    figure, axis = plt.subplots(figsize=(6, 5))
    for cls, name in enumerate(class_names):
        mask = labels == cls
        axis.scatter(points[mask, 0], points[mask, 1], s=4, alpha=0.6, label=name)
    axis.set_xlabel("PC 1")
    axis.set_ylabel("PC 2")
    axis.set_title(title)
    axis.legend(fontsize=7, markerscale=3, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def log_probes(
    run, encoder, splits: Splits, x_valid: np.ndarray, y_valid: np.ndarray, cfg: DictConfig
) -> dict[str, float]:
    """Probe ``encoder`` on ``splits`` (the classifier's task) and log to ``run``: the metrics,
    also as ``probe/<kind>_accuracy`` with step = labeled count, and ``codes_pca.png`` of the
    pretraining's validation images ``x_valid`` (at most 2,000)."""
    probes = read(cfg.get("probes"), ProbeSettings)
    counts = [int(c) for c in probes.counts or []]
    if not counts:
        return {}
    batch = cfg.runtime.validation_batch_size
    started = time.perf_counter()
    results = probe_accuracies(
        predict(encoder, splits.x_train, batch), splits.y_train,
        predict(encoder, splits.x_test, batch), splits.y_test,
        counts, cfg.seed, int(probes.k), float(probes.C),
    )  # fmt: skip
    run.log_metrics({**results, "time/probe_seconds": time.perf_counter() - started})
    for name, value in results.items():
        kind, count = name.rsplit("_n", 1)
        run.log_metrics({kind: value}, step=int(count))
    with tempfile.TemporaryDirectory() as folder:
        shown = slice(0, 2000)
        path = codes_figure(
            predict(encoder, x_valid[shown], batch), y_valid[shown], splits.class_names,
            Path(folder) / "codes_pca.png", f"{splits.name}: validation codes (PCA)",
        )  # fmt: skip
        run.log_artifact(path)
    return results
