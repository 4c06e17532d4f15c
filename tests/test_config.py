import pytest
from conftest import make_config

from tiedae.config import (
    ConfigError,
    method_name,
    pretrain_settings,
    run_settings,
    settings_key,
    validate,
)


def test_default_and_experiment_configs_validate():
    for overrides in ([], ["experiment=seed"], ["experiment=sweep"], ["experiment=sweep_smoke"]):
        validate(make_config(*overrides))


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
        (["data.name=cifar"], "data.name='cifar' is unknown; allowed: fashion_mnist, mnist"),
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
