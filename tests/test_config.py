import re
import shutil

import pytest
from conftest import make_config, run_cli

from tiedae.config import (
    CONFIG_DIR,
    ConfigError,
    config_groups,
    method_name,
    pretrain_settings,
    run_settings,
    settings_key,
    validate,
)


def test_default_and_experiment_configs_validate():
    """The default and every conf/experiment file validate; the four oldest compose the row,
    data and protocol they are documented with, and every experiment has a sweep of its own."""
    expected = {
        (): ("fashion_mnist", "oracle", None),
        ("experiment=seed",): ("fashion_mnist", "oracle", "seed"),
        ("experiment=sweep",): ("fashion_mnist", "budget", "fashion_mnist"),
        ("experiment=sweep_smoke",): ("digits", "oracle", "smoke"),
    }  # fmt: skip
    for overrides, identity in expected.items():
        cfg = make_config(*overrides)
        validate(cfg)
        assert method_name(cfg) == "tied-autoencoder-frozen"
        assert (cfg.data.name, cfg.protocol.name, cfg.sweep.name) == identity
    experiments = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
    sweeps = []
    for experiment in experiments:
        cfg = make_config(f"experiment={experiment}")
        validate(cfg)
        sweeps.append(cfg.sweep.name)
    assert None not in sweeps and len(set(sweeps)) == len(experiments) >= 13


def test_experiment_seed_is_the_books_recipe():
    cfg = make_config("experiment=seed")
    assert list(cfg.model.sizes) == [100, 30] and cfg.model.activation == "selu" and cfg.model.tied
    assert (cfg.pretrain.optimizer, cfg.pretrain.learning_rate) == ("sgd", 1.5)
    assert (cfg.pretrain.epochs, cfg.pretrain.batch_size, cfg.pretrain.loss) == (
        10,
        32,
        "binary_crossentropy",
    )
    assert cfg.data.name == "fashion_mnist" and cfg.data.valid_size == 5000


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["labels.count=null", "labels.fraction=1.5"], r"labels.fraction=1.5 must be in \(0, 1\]"),
        (["labels.count=null", "labels.fraction=0"], r"labels.fraction=0 must be in \(0, 1\]"),
        (["labels.fraction=0.1"], "labels.count=500 and labels.fraction=0.1 are both set"),
        (["labels.count=-3"], "labels.count=-3 must be a positive integer or 'all'"),
        (["labels.count=many"], "labels.count='many' must be a positive integer or 'all'"),
        (["model.sizes=[]"], r"model.sizes=\[\] must be a non-empty list"),
        (["model.sizes=[100,0]"], "must hold positive integers"),
        (["model.activation=swishy"], "model.activation='swishy' is unknown; allowed: selu"),
        (["data.name=cifar"], "data.name='cifar' is unknown; allowed: cifar10, digits"),
        (["pretrain.learning_rate=-1"], "pretrain.learning_rate=-1 must be a positive number"),
        (["pretrain.optimizer=adagrad"], "pretrain.optimizer='adagrad' is unknown"),
        (["classifier.reuse_layers=3"], r"classifier.reuse_layers=3 must be null \(all\) or 1..2"),
        (["model.tied=maybe"], "model.tied='maybe' must be true or false"),
    ],
)
def test_bad_values_get_one_line_naming_the_key_and_what_is_allowed(overrides, message):
    with pytest.raises(ConfigError, match=message) as error:
        validate(make_config(*overrides))
    assert "\n" not in str(error.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        validate(make_config("model.activation=nope", "pretrain.epochs=0"))
    assert "model.activation" in str(error.value) and "pretrain.epochs" in str(error.value)


def test_method_names_are_table_rows():
    assert method_name(make_config("method=scratch")) == "scratch"
    assert method_name(make_config("method=untied_finetune")) == "untied-autoencoder-finetune"
    assert method_name(make_config()) == "tied-autoencoder-frozen"


def test_pretraining_key_ignores_labels_and_classifier_but_not_model_or_seed():
    base = settings_key(pretrain_settings(make_config()))
    assert base == settings_key(
        pretrain_settings(make_config("labels.count=100", "classifier=finetune"))
    )
    assert base != settings_key(pretrain_settings(make_config("model=untied")))
    assert base != settings_key(pretrain_settings(make_config("seed=1")))
    assert base != settings_key(pretrain_settings(make_config("pretrain.epochs=3")))


def test_scratch_runs_share_one_key_whatever_the_unused_decoder():
    tied = settings_key(run_settings(make_config("method=scratch", "model=tied")))
    assert tied == settings_key(run_settings(make_config("method=scratch", "model=untied")))
    assert tied != settings_key(run_settings(make_config("method=scratch", "labels.count=100")))


def test_help_names_the_program_and_lists_each_config_group_on_one_line():
    out = run_cli("--help").stdout
    assert out.startswith("tiedae: ") and "cli is powered" not in out
    folders = sorted(path for path in CONFIG_DIR.iterdir() if path.is_dir())
    assert len(folders) >= 10
    for folder in folders:
        lines = [line for line in out.splitlines() if line.startswith(f"  {folder.name} ")]
        assert len(lines) == 1, (folder.name, out[:3000])
        purpose, _, options = lines[0].removeprefix(f"  {folder.name} ").partition(". Options: ")
        assert len(purpose.strip()) > 10  # what the group is for, from conf/config.yaml
        expected = sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_"))
        assert options.split(", ") == expected


def test_config_groups_follow_the_conf_folder(tmp_path):
    conf = shutil.copytree(CONFIG_DIR, tmp_path / "conf")
    (conf / "augment").mkdir()
    (conf / "augment" / "flips.yaml").write_text("flips: true\n")
    (conf / "augment" / "none.yaml").write_text("flips: false\n")
    text = (conf / "config.yaml").read_text()
    added = r"\1\n  - augment: none  # how images are varied"
    text = re.sub(r"(\n  - runtime: default[^\n]*)", added, text)
    (conf / "config.yaml").write_text(text)
    (conf / "runtime" / "fast.yaml").write_text("threads: 0\n")
    groups = {name: (purpose, options) for name, purpose, options in config_groups(conf)}
    assert groups["augment"] == ("how images are varied", ["flips", "none"])
    assert groups["runtime"][1] == ["default", "fast"]
    assert "_common" not in groups["objective"][1]  # a shared part, not an option
    assert set(groups) == {path.name for path in conf.iterdir() if path.is_dir()}


def test_config_validates_families_without_importing_models_or_tensorflow():
    """No import cycle: config checks a family through tiedae.families alone (a subprocess,
    so the test's own imports do not count), and every family has its builders too."""
    import subprocess
    import sys

    probe = "import sys, tiedae.config; print(sorted(m for m in ('tiedae.models', 'tensorflow', 'keras') if m in sys.modules))"  # noqa: E501
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    from tiedae.families import FAMILIES
    from tiedae.models import MODEL_FAMILIES

    assert MODEL_FAMILIES.keys() == FAMILIES.keys()
    assert all(MODEL_FAMILIES[name].rules is FAMILIES[name] for name in FAMILIES)
