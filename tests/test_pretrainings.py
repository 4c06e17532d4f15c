"""The pretraining registry: each ``pretrain.name`` is one module of ``tiedae/pretrainings/``
that validation, row names, the decoder question and the pipeline all read; nothing else lists
the pretrainings."""

import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import QUICK, make_config

from tiedae import pipeline
from tiedae.config import CONFIG_DIR, ConfigError, has_decoder, method_name, reads_pool, validate
from tiedae.models import weight_layers
from tiedae.pretrainings import PRETRAININGS, Pretraining, with_decoder
from tiedae.tracking import Tracker, TrackingSettings, load_keras_model


def test_every_yaml_of_conf_pretrain_is_a_registered_pretraining_and_back():
    names = {path.stem for path in (CONFIG_DIR / "pretrain").glob("*.yaml")}
    assert set(PRETRAININGS) == names == {"none", "autoencoder", "greedy", "transfer"}
    assert with_decoder() == ("autoencoder", "greedy")


def test_the_registry_and_config_import_without_tensorflow():
    probe = (
        "import sys, tiedae.pretrainings, tiedae.config; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'tiedae.pretrainers')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("pretrain", "row", "decoder"),
    [
        ("none", "scratch", False),
        ("autoencoder", "tied-autoencoder-frozen", True),
        ("greedy", "tied-greedy-frozen", True),
    ],
)
def test_the_row_and_the_decoder_come_from_the_pretraining(pretrain, row, decoder):
    cfg = make_config(f"pretrain={pretrain}")
    assert (method_name(cfg), has_decoder(cfg), reads_pool(cfg)) == (row, decoder, decoder)


@pytest.mark.parametrize("pretrain", ["greedy", "transfer"])
def test_a_pretraining_refuses_the_families_it_cannot_serve_in_one_line(pretrain):
    cfg = make_config(
        f"pretrain={pretrain}", "data=digits", "model=conv_tied", "data.classes=[5,6]"
    )
    with pytest.raises(
        ConfigError, match=f"pretrain={pretrain} does not work with model.family=conv"
    ):
        validate(cfg)


class RandomFeatures(Pretraining):
    """A pretraining defined only here: the encoder's layers at a seeded random draw."""

    calls: list[tuple[str, list[np.ndarray]]] = []  # (job run id, the kernels handed over)

    @classmethod
    def check(cls, problems, cfg):
        if cfg.pretrain.get("scale", 1.0) <= 0:
            problems.append(f"pretrain.scale={cfg.pretrain.scale!r} must be a positive number")

    @classmethod
    def row(cls, cfg, widths):
        return f"random{widths}-{cfg.classifier.name}"

    @classmethod
    def layers(cls, spec, splits, tracker, job):
        cfg = spec.cfg  # the run resolved: read-only sections, names and keys derived once
        rng = np.random.default_rng(spec.seed)
        layers, width = [], int(np.prod(splits.image_shape))
        for size in cfg.model.sizes:
            layer = keras.layers.Dense(size)
            layer.build((None, width))
            layer.set_weights([rng.normal(0, width**-0.5, (width, size)).astype("float32"),
                               np.zeros(size, "float32")])  # fmt: skip
            layers.append(layer)
            width = size
        cls.calls.append((job.run_id, [layer.get_weights()[0] for layer in layers]))
        return layers


def test_a_new_pretraining_is_its_class_alone(monkeypatch, store, tmp_path):
    """Registered (as its module's decorator would), it is validated, named and run by the
    pipeline with no other file edited: the job's frozen classifier holds its kernels."""
    monkeypatch.setitem(PRETRAININGS._entries, "random", RandomFeatures)
    monkeypatch.setattr(RandomFeatures, "calls", [])
    bad = make_config(*QUICK, "pretrain.name=random", "+pretrain.scale=-1")
    with pytest.raises(ConfigError, match=r"pretrain.scale=-1 must be a positive number"):
        validate(bad)
    cfg = make_config(*QUICK, *store, "pretrain.name=random")
    assert method_name(cfg) == "random-frozen"
    assert not has_decoder(cfg)
    pipeline.run_experiment(cfg)
    ((run_id, kernels),) = RandomFeatures.calls
    tracker = Tracker(TrackingSettings.from_config(cfg.tracking)).connect()
    classifier = load_keras_model(tracker.download_model(f"runs:/{run_id}/classifier", tmp_path))
    hidden = weight_layers(classifier)[:-1]
    assert len(hidden) == len(kernels) == 2
    for layer, kernel in zip(hidden, kernels, strict=True):
        np.testing.assert_array_equal(layer.get_weights()[0], kernel)  # frozen: unchanged
