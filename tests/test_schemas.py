"""Typed schemas (tiedae/config/schemas.py): a section's settings declared once, with their types
and ranges; the checker turns them into ``validate``'s one-line messages, and the yaml files
agree with them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import pytest
from conftest import make_config
from omegaconf import OmegaConf

from tiedae.config import CONFIG_DIR, ConfigError, validate
from tiedae.config.schemas import (
    HeadSettings,
    LabelsSettings,
    RuntimeSettings,
    check,
    read,
    setting,
)


@dataclass(frozen=True)
class Example:
    """A schema defined here alone: every kind of field the checker reads."""

    steps: int = setting(minimum=1)  # required
    rate: float = setting(0.1, positive=True, maximum=1.0)
    mode: Literal["fast", "slow"] = setting("fast")
    width: int | None = setting(None, minimum=0, means="null: as wide as the input")
    named: str = setting("a", allowed=("a", "b"))
    on: bool = setting(False)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"steps": 3}, []),
        ({"steps": 3, "rate": 1.0, "mode": "slow", "width": 0, "named": "b", "on": True}, []),
        ({}, ["x.steps is missing; set x.steps=..."]),
        ({"steps": 0}, ["x.steps=0 must be a positive integer"]),
        ({"steps": 2.5}, ["x.steps=2.5 must be a positive integer"]),
        ({"steps": True}, ["x.steps=True must be a positive integer"]),
        ({"steps": 1, "rate": 0}, ["x.rate=0 must be a number in (0, 1]"]),
        ({"steps": 1, "rate": 1.5}, ["x.rate=1.5 must be a number in (0, 1]"]),
        ({"steps": 1, "mode": "medium"}, ["x.mode='medium' is unknown; allowed: fast, slow"]),
        ({"steps": 1, "width": -1},
         ["x.width=-1 must be an integer >= 0 or null (null: as wide as the input)"]),
        ({"steps": 1, "named": "c"}, ["x.named='c' is unknown; allowed: a, b"]),
        ({"steps": 1, "on": "yes"}, ["x.on='yes' must be true or false"]),
        ({"steps": -1, "on": 1}, ["x.steps=-1 must be a positive integer",
                                  "x.on=1 must be true or false"]),
    ],
)  # fmt: skip
def test_the_checker_says_what_each_field_refuses(section, expected):
    problems: list[str] = []
    check(problems, "x", section, Example)
    assert problems == expected


def test_read_gives_the_typed_read_only_section():
    example = read({"steps": 4, "mode": "slow", "other": 1}, Example)
    assert example == Example(steps=4, mode="slow")
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.steps = 5


def test_runtime_yaml_and_its_schema_declare_the_same_settings_and_defaults():
    yaml = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "runtime" / "default.yaml"))
    assert read(yaml, RuntimeSettings) == RuntimeSettings()
    assert set(yaml) == {field.name for field in dataclasses.fields(RuntimeSettings)}


def test_every_classifier_head_and_the_labels_read_as_their_schemas():
    for head in ("frozen", "finetune", "gradual"):
        cfg = make_config(f"classifier={head}")
        problems: list[str] = []
        check(problems, "classifier", cfg.classifier, HeadSettings)
        assert problems == []
        assert read(cfg.classifier, HeadSettings).freeze is (head == "frozen")
    assert read(make_config().labels, LabelsSettings).count == 500


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("runtime.threads=-1", "runtime.threads=-1 must be an integer >= 0 (0: TensorFlow's"),
        ("runtime.verbose=3", "runtime.verbose=3 is unknown; allowed: auto, 0, 1, 2"),
        ("runtime.deterministic=maybe", "runtime.deterministic='maybe' must be true or false"),
        ("runtime.checkpoint_every=-5", "runtime.checkpoint_every=-5 must be an integer >= 0"),
        ("runtime.steps_per_execution=0", "runtime.steps_per_execution=0 must be a positive"),
        ("runtime.jit=sometimes", "runtime.jit='sometimes' must be true, false or auto"),
        ("classifier.optimizer=lbfgs", "classifier.optimizer='lbfgs' is unknown; allowed: sgd"),
        ("objective.epsilon=0", "objective.epsilon=0 must be a number > 0"),
        ("objective.power_iterations=0", "objective.power_iterations=0 must be a positive integer"),
        ("objective.lr_decay_start=1", "objective.lr_decay_start=1 must be null or in [0, 1)"),
        ("objective.monitor=loss", "objective.monitor='loss' is unknown; allowed: val_accuracy"),
        ("tracking.job_models=some", "tracking.job_models='some' is unknown; allowed: every, "),
        ("tracking.epoch_flush_seconds=-1", "tracking.epoch_flush_seconds=-1 must be a number >="),
        ("data.max_train=0", "data.max_train=0 must be a positive integer or null (null: all)"),
        ("data.valid_size=0", "data.valid_size=0 must be a positive integer"),
        ("data.test_size=many", "data.test_size='many' must be a positive integer"),
        ("model.tied=maybe", "model.tied='maybe' must be true or false"),
        ("seed=-1", "seed=-1 must be an integer >= 0"),
        ("force=maybe", "force='maybe' must be true or false (true: rerun what is FINISHED"),
        ("probes.k=0", "probes.k=0 must be a positive integer"),
        ("probes.C=0", "probes.C=0 must be a positive number"),
        ("probes.counts=[100,0]", "probes.counts=[100, 0] must be a list of positive labeled"),
        ("model.kernel_initializer=zeros", "model.kernel_initializer='zeros' is unknown; allowed"),
    ],
)
def test_a_bad_setting_stops_with_one_line_from_its_schema(override, expected):
    """runtime.* and the head through validate, an objective's (here VAT's) through its
    check, as ``tiedae`` runs both before anything trains."""
    from tiedae.objectives import check_objective

    cfg = make_config("method=vat", "data=digits", override)
    with pytest.raises(ConfigError) as error:
        validate(cfg)
        check_objective(cfg)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_the_objectives_yaml_and_their_schemas_declare_the_same_defaults():
    """``_common.yaml`` is ObjectiveSettings; an objective's own yaml sets its own fields
    (those its settings add to ObjectiveSettings) to their schema defaults."""
    from tiedae.objectives import OBJECTIVES
    from tiedae.objectives.base import ObjectiveSettings

    folder = CONFIG_DIR / "objective"
    common = OmegaConf.to_container(OmegaConf.load(folder / "_common.yaml"))
    assert read(common, ObjectiveSettings) == ObjectiveSettings()
    shared = {field.name for field in dataclasses.fields(ObjectiveSettings)}
    typed = 0
    for path in folder.glob("[!_]*.yaml"):
        yaml = OmegaConf.to_container(OmegaConf.load(path))
        objective = OBJECTIVES.get(yaml.get("name"))
        if objective is None or path.stem != objective.name:  # none; variants (joint_untied)
            continue
        own = [f for f in dataclasses.fields(objective.settings) if f.name not in shared]
        for field in own:
            assert yaml[field.name] == field.default, (path.name, field.name)
        typed += bool(own)
    assert typed >= 6  # entropy, semantic, pseudo_label, mean_teacher, vat, gamma


def _fields(schema: type) -> tuple[set[str], set[str]]:
    """A schema's field names, and those without a default (a yaml must set them)."""
    fields = dataclasses.fields(schema)
    required = {f.name for f in fields if f.default is dataclasses.MISSING}
    return {f.name for f in fields}, required


@pytest.mark.parametrize("group", ["data", "model", "tracking", "pretrain", "classifier"])
def test_each_yaml_of_a_group_sets_what_its_schema_declares(group):
    """Every conf/data file is its dataset's schema (declared beside its loader), every
    conf/model file its family's, every conf/pretrain file its pretraining's, every scikit-learn
    conf/classifier file its estimator's, every conf/tracking file TrackingSection: no setting
    the schema does not know, none it requires missing, and the file's values pass its checks."""
    from tiedae.config.schemas import TrackingSection
    from tiedae.data import DATASETS
    from tiedae.estimators import ESTIMATORS
    from tiedae.families import FAMILIES, family_name
    from tiedae.pretrainings import PRETRAININGS

    paths = sorted((CONFIG_DIR / group).glob("*.yaml"))
    assert paths
    checked = 0
    for path in paths:
        yaml = OmegaConf.to_container(make_config(f"{group}={path.stem}")[group], resolve=True)
        if group == "classifier" and yaml.get("kind") != "sklearn":
            continue  # a network head: HeadSettings (the test above), beside the model
        checked += 1
        if group == "pretrain":
            schema = PRETRAININGS[yaml["name"]].settings
        elif group == "classifier":
            schema = ESTIMATORS[yaml["name"]].settings
        elif group == "data":
            schema = DATASETS[yaml["name"]].settings
        elif group == "model":
            schema = FAMILIES[family_name(yaml)].settings
        else:
            schema = TrackingSection
            defaults = ("experiment", "epoch_flush_seconds", "job_models")
            assert {k: yaml[k] for k in defaults} == {
                k: getattr(TrackingSection, k) for k in defaults
            }, path.name
        names, required = _fields(schema)
        assert set(yaml) <= names, (path.name, set(yaml) - names)
        assert required <= set(yaml), (path.name, required - set(yaml))
        problems: list[str] = []
        check(problems, group, yaml, schema)
        assert problems == [], (path.name, problems)
    assert checked >= {"pretrain": 4, "classifier": 4}.get(group, 1)


@pytest.mark.parametrize(
    ("method", "override", "expected"),
    [
        ("tied_frozen", "pretrain.cache=maybe", "pretrain.cache='maybe' must be true or false"),
        ("tied_frozen", "pretrain.loss=hinge", "pretrain.loss='hinge' is unknown; allowed: "),
        ("tied_frozen", "pretrain.noise_rate=-0.1", "pretrain.noise_rate=-0.1 must be a number"),
        ("tied_greedy_gradual", "pretrain.code_learning_rate=0", "code_learning_rate=0 must be"),
        ("tied_frozen", "pretrain=transfer", "pretrain.source=builtin needs data.classes"),
        ("logreg_pixels", "classifier.features=raw", "classifier.features='raw' is unknown"),
        ("logreg_pixels", "classifier.max_iter=0", "classifier.max_iter=0 must be a positive"),
        ("pca_logreg", "classifier.components=null", "classifier.components=None must be a "),
        ("label_spreading", "classifier.n_neighbors=0", "classifier.n_neighbors=0 must be a "),
        ("label_spreading", "classifier.alpha=1.5", "classifier.alpha=1.5 must be a number in"),
    ],
)
def test_a_pretraining_or_estimator_setting_stops_with_one_line(method, override, expected):
    """pretrain.* and a scikit-learn classifier's settings come from their schemas (declared
    beside the pretraining and the estimator), through validate."""
    cfg = make_config(f"method={method}", "data=digits", override)
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_a_dataset_with_its_own_schema_is_checked_by_it():
    """The schema a Dataset declares is the one validate reads: digits' test_size exists
    there alone, so fashion_mnist's schema has no such setting and digits refuses 0."""
    from tiedae.data import DATASETS

    assert "test_size" in _fields(DATASETS["digits"].settings)[0]
    assert "test_size" not in _fields(DATASETS["fashion_mnist"].settings)[0]
    problems: list[str] = []
    check(problems, "data", {"name": "digits", "test_size": 0}, DATASETS["digits"].settings)
    assert problems == ["data.test_size=0 must be a positive integer"]
