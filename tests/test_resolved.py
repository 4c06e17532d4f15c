"""The run resolved once: one immutable description whose names and keys are the config's."""

import dataclasses

import pytest
from conftest import make_config
from omegaconf.errors import ReadonlyConfigError

from tiedae import config as C
from tiedae.config.resolved import resolve


@pytest.mark.parametrize(
    "overrides",
    [
        ["data=digits"],
        ["data=digits", "method=untied_finetune", "labels.count=50", "seed=3"],
        ["data=digits", "method=ladder_tied", "protocol=budget"],
        ["data=digits", "method=logreg_pixels"],
    ],
)
def test_the_description_holds_what_the_config_derives(overrides):
    cfg = make_config(*overrides)
    spec = resolve(cfg)
    assert (spec.name, spec.method, spec.labels, spec.protocol, spec.seed) == (
        C.run_name(cfg), C.method_name(cfg), C.labels_label(cfg), C.protocol_name(cfg), cfg.seed,
    )  # fmt: skip
    assert spec.job.key == C.settings_key(C.run_settings(cfg))  # existing run keys still hit
    assert spec.pretrain.key == C.settings_key(C.pretrain_settings(cfg))  # and cache keys
    assert spec.job.parts == C.key_parts(C.run_settings(cfg))
    assert (spec.pretrained, spec.decoder, spec.objective, spec.sklearn) == (
        C.is_pretrained(cfg), C.has_decoder(cfg), C.uses_objective(cfg), C.is_sklearn(cfg),
    )  # fmt: skip


def test_the_description_cannot_be_changed_by_a_stage():
    spec = resolve(make_config("data=digits"))
    with pytest.raises(ReadonlyConfigError):
        spec.cfg.classifier.epochs = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"
    assert spec.cfg.classifier.epochs == make_config("data=digits").classifier.epochs
