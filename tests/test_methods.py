"""Issue 4's methods on digits: greedy stacking, denoising, the fine-tuning schedule, reuse of
the lowest layers, the scikit-learn baselines, their config validation and their table names."""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from tiedae import classify, pretrain
from tiedae.baselines import candidates, run_baseline
from tiedae.config import (
    CONFIG_DIR,
    DEFAULT_SIZES,
    ConfigError,
    DivergedError,
    is_pretrained,
    is_sklearn,
    method_name,
    on_codes,
    uses_objective,
    validate,
)
from tiedae.data import load_digits_splits, stratified_subset
from tiedae.estimators import ESTIMATORS
from tiedae.families import family_name
from tiedae.loop import fit
from tiedae.models import (
    Autoencoder,
    build_classifier,
    encoder_dense_layers,
    transplant_encoder,
)
from tiedae.training import FitSettings, predict

QUICK = FitSettings(epochs=2, batch_size=32, seed=1, patience=2, verbose=0)
METHODS = sorted(path.stem for path in (CONFIG_DIR / "method").glob("*.yaml"))
# end to end, one run each; the conv bundles differ from the dense ones only in the model, and
# tests/test_conv.py runs the conv pipeline end to end (in seconds, on a smaller conv)
# Conv rows run end to end in test_conv.py, semi-supervised objective rows in
# test_objectives.py: one of each family there keeps the suite's time from growing by a run
# per bundle. The rest run here.
END_TO_END = [
    method for method in METHODS
    if not method.startswith("conv_")
    and "override /objective" not in (CONFIG_DIR / "method" / f"{method}.yaml").read_text()
]  # fmt: skip


def target_classes(method: str) -> list[str]:
    """Transfer needs a target task: digits 5-9, the builtin source learning 0-4."""
    return ["data.classes=[5,6,7,8,9]"] if method.startswith("transfer") else []


# A frozen head learns slowly from a fresh source's codes (large initial logits): more epochs
# and a larger step, so the check below means "learned something", not "ran".
LONGER = {
    "transfer_frozen": {
        "pretrain.epochs": 3, "classifier.epochs": 20, "classifier.learning_rate": 0.01,
    },
}  # fmt: skip


def compose_config(*overrides: str) -> DictConfig:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=["data=digits", *overrides])


@pytest.fixture(scope="module")
def digits():
    return load_digits_splits()


def model_cfg(sizes: list[int], tied: bool) -> DictConfig:
    return OmegaConf.create(
        {"sizes": sizes, "tied": tied, "activation": "selu", "kernel_initializer": "lecun_normal"}
    )


def pretrain_cfg(noise: str = "none", rate: float = 0.0) -> DictConfig:
    return OmegaConf.create(
        {"loss": "binary_crossentropy", "optimizer": "nadam", "learning_rate": 0.01,
         "input_noise": noise, "noise_rate": rate, "code_optimizer": "nadam",
         "code_learning_rate": 0.01}
    )  # fmt: skip


# --- greedy layer-wise pretraining -------------------------------------------------------


@pytest.mark.parametrize("tied", [True, False])
def test_greedy_stages_train_on_the_codes_below_and_stack_into_their_composition(
    digits, tied, monkeypatch
):
    stages: list[tuple[keras.Model, np.ndarray]] = []
    real_fit = pretrain.fit

    def recording_fit(model, x, *args, **kwargs):
        stages.append((model, x))
        return real_fit(model, x, *args, **kwargs)

    monkeypatch.setattr(pretrain, "fit", recording_fit)
    stacked, history = pretrain.pretrain_greedy(
        digits, model_cfg([16, 8], tied), pretrain_cfg(), QUICK
    )

    (first, first_input), (second, second_input) = stages
    assert first_input is digits.x_train  # stage 1: the pixels
    codes = predict(first.encoder, digits.x_train)
    np.testing.assert_allclose(second_input, codes, atol=1e-6)  # stage 2: stage 1's codes
    assert first.config["output_activation"] == "sigmoid"
    assert second.config["output_activation"] == "selu"
    assert isinstance(stacked, Autoencoder) and stacked.tied == tied
    x = digits.x_valid
    composed_codes = predict(second.encoder, predict(first.encoder, x))
    np.testing.assert_allclose(predict(stacked.encoder, x), composed_codes, atol=1e-5)
    composed_images = predict(first.decoder, predict(second.decoder, composed_codes))
    np.testing.assert_allclose(predict(stacked, x), composed_images, atol=1e-5)
    assert len(history.epochs) == 2 * QUICK.epochs
    assert "stage1_val_rounded_accuracy" in history.epochs[0]
    assert "stage2_val_loss" in history.epochs[-1]


def test_a_diverging_loss_stops_training_with_a_clear_error(digits):
    model = build_classifier(digits.image_shape, [8], 10)

    def exploding(y_true, y_pred):  # log of a negative number: nan from the first batch
        return keras.ops.log(y_pred - 2.0)

    with pytest.raises(DivergedError, match="training diverged: loss nan in epoch 1"):
        fit(model, digits.x_train, digits.y_train, (digits.x_valid, digits.y_valid),
            loss=exploding, optimizer=keras.optimizers.SGD(0.1), settings=QUICK)  # fmt: skip


# --- denoising: noise in pretraining only ------------------------------------------------


@pytest.mark.parametrize("noise", ["gaussian", "dropout"])
def test_input_noise_acts_in_training_only_and_never_reaches_the_classifier(digits, noise):
    keras.utils.set_random_seed(0)
    autoencoder = pretrain.build_autoencoder(
        digits.image_shape, model_cfg([16, 8], True), pretrain_cfg(noise, 0.5)
    )
    x = digits.x_valid[:64]
    clean = autoencoder.decoder(autoencoder.encoder(x)).numpy()
    np.testing.assert_array_equal(autoencoder(x, training=False).numpy(), clean)
    np.testing.assert_array_equal(autoencoder(x, training=False).numpy(), clean)
    assert not np.allclose(autoencoder(x, training=True).numpy(), clean, atol=1e-4)

    layers = pretrain.pretrained_layers(autoencoder)
    classifier = build_classifier(digits.image_shape, [16, 8], 10)
    transplant_encoder(classifier, layers, trainable=True)
    noisy = (keras.layers.GaussianNoise, keras.layers.Dropout)
    assert not any(isinstance(layer, noisy) for layer in classifier.layers)
    np.testing.assert_array_equal(predict(classifier, x), predict(classifier, x))


# --- fine-tuning schedules ---------------------------------------------------------------


def test_gradual_trains_the_head_on_a_frozen_encoder_then_everything_more_slowly(
    digits, monkeypatch
):
    phases: list[tuple[list[bool], float]] = []
    real_fit = classify._fit

    def recording_fit(classifier, splits, labeled, cfg, learning_rate, settings, on_epoch_end):
        trainable = [layer.trainable for layer in encoder_dense_layers(classifier)]
        phases.append((trainable, learning_rate))
        return real_fit(classifier, splits, labeled, cfg, learning_rate, settings, on_epoch_end)

    monkeypatch.setattr(classify, "_fit", recording_fit)
    cfg = compose_config("classifier=gradual", "classifier.frozen_epochs=2").classifier
    autoencoder = pretrain.build_autoencoder(
        digits.image_shape, model_cfg([16, 8], True), pretrain_cfg()
    )
    labeled = stratified_subset(digits.y_train, 100, 1)
    classifier, history = classify.train_classifier(
        digits, labeled, model_cfg([16, 8], True), cfg, QUICK,
        pretrained=pretrain.pretrained_layers(autoencoder),
    )  # fmt: skip

    assert phases == [
        ([False, False, True], cfg.learning_rate),
        ([True, True, True], cfg.finetune_learning_rate),
    ]
    assert cfg.finetune_learning_rate < cfg.learning_rate
    assert len(history.epochs) > 2 and history.best_epoch is not None


@pytest.mark.parametrize("freeze", [True, False])
def test_reuse_layers_copies_only_the_lowest_k_encoder_layers(digits, freeze):
    autoencoder = pretrain.build_autoencoder(
        digits.image_shape, model_cfg([16, 8], True), pretrain_cfg()
    )
    layers = pretrain.pretrained_layers(autoencoder)
    cfg = OmegaConf.create(
        {"freeze": freeze, "optimizer": "nadam", "learning_rate": 1e-3, "frozen_epochs": None}
    )
    labeled = stratified_subset(digits.y_train, 100, 1)
    classifier, _ = classify.train_classifier(
        digits, labeled, model_cfg([16, 8], True), cfg, QUICK, pretrained=layers, reuse=1
    )
    hidden, head = encoder_dense_layers(classifier)
    assert hidden.kernel.shape == (64, 16) and head.kernel.shape == (16, 10)
    assert hidden.trainable is not freeze
    same = np.allclose(hidden.kernel.numpy(), layers[0].kernel.numpy())
    assert same is freeze  # frozen: the pretrained kernel as is; fine-tuned: moved from it


# --- scikit-learn baselines --------------------------------------------------------------


@pytest.mark.parametrize("name", ["logreg", "pca_logreg", "label_spreading"])
def test_baselines_learn_digits_choosing_regularisation_on_validation(digits, name):
    cfg = compose_config(f"classifier={name}", "pretrain=none", "classifier.components=16")
    labeled = stratified_subset(digits.y_train, 100, 1)
    result = run_baseline(digits, labeled, cfg.classifier, seed=1)

    assert result.test["accuracy"] > 0.7  # chance is 0.1; 100 labeled 8x8 digits suffice
    key = ESTIMATORS[cfg.classifier.name].regularization
    assert result.chosen in candidates(cfg.classifier[key])
    for value in candidates(cfg.classifier[key]):
        other = OmegaConf.merge(cfg.classifier, {key: value})
        assert run_baseline(digits, labeled, other, seed=1).val_accuracy <= result.val_accuracy
    assert (result.features is None) == (cfg.classifier.features == "pixels")


def test_label_spreading_uses_the_unlabeled_images(digits):
    cfg = compose_config("classifier=label_spreading", "pretrain=none", "classifier.components=16")
    labeled = stratified_subset(digits.y_train, 50, 1)
    result = run_baseline(digits, labeled, cfg.classifier, seed=1)
    assert len(result.estimator.transduction_) == len(digits.x_train)


# --- config: validation and names --------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["classifier.kind=torch"], "classifier.kind='torch' is unknown; allowed: keras, sklearn"),
        (["pretrain.name=layerwise"], "allowed: autoencoder, greedy, none, transfer"),
        (["pretrain=greedy", "pretrain.code_optimizer=lbfgs"],
         "pretrain.code_optimizer='lbfgs' is unknown; allowed: sgd, adam, nadam, rmsprop"),
        (["pretrain=greedy", "pretrain.code_learning_rate=0"],
         "pretrain.code_learning_rate=0 must be a positive number"),
        (["classifier=gradual", "classifier.freeze=true"], "classifier.freeze=true keeps it"),
        (["classifier=gradual", "classifier.frozen_epochs=0"], "classifier.frozen_epochs=0 must"),
        (["classifier=gradual", "classifier.finetune_learning_rate=null"],
         "classifier.finetune_learning_rate=None must be a positive number"),
        (["classifier=logreg"], "classifier.kind=sklearn uses no pretrained encoder"),
        (["classifier=logreg", "pretrain=none", "classifier.features=hog"],
         "classifier.features='hog' is unknown; allowed: pixels, pca"),
        (["classifier=logreg", "pretrain=none", "classifier.C=[0.1,-1]"], "classifier.C="),
        (["classifier=pca_logreg", "pretrain=none", "classifier.components=0"],
         "classifier.components=0 must be a positive integer"),
        (["classifier=label_spreading", "pretrain=none", "classifier.alpha=1.5"],
         "classifier.alpha=1.5 must be a number in (0, 1)"),
        (["classifier=label_spreading", "pretrain=none", "classifier.features=pixels"],
         "allowed: pca"),
    ],
)  # fmt: skip
def test_invalid_new_keys_fail_with_one_line_naming_key_and_allowed(overrides, expected):
    with pytest.raises(ConfigError) as error:
        validate(compose_config(*overrides))
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_bundle_validates_and_names_its_row(method):
    """The row's name says what trains: the objective, the baseline, the pretraining and the
    classifier stage, or scratch; and the widths when they are not the seed's."""
    cfg = compose_config(f"method={method}", *target_classes(method))
    validate(cfg)
    name = method_name(cfg)
    assert " " not in name
    if uses_objective(cfg):
        assert name.startswith(cfg.objective.name), name
    elif is_pretrained(cfg):
        assert {cfg.pretrain.name, cfg.classifier.name} <= set(re.split(r"[-+\[\]]", name)), name
    elif is_sklearn(cfg):
        assert name.startswith(f"{cfg.classifier.name}-"), name
    else:
        assert "scratch" in name, name
    sizes = tuple(cfg.model.sizes)
    pixels_only = is_sklearn(cfg) and not on_codes(cfg)
    if family_name(cfg.model) == "dense" and sizes != DEFAULT_SIZES and not pixels_only:
        assert f"[{','.join(map(str, sizes))}]" in name, name


def test_method_names_tell_the_rows_apart():
    names = {m: method_name(compose_config(f"method={m}")) for m in METHODS}
    assert len(set(names.values())) == len(METHODS), names
    assert names["logreg_pixels"] == "logreg-pixels"
    assert method_name(compose_config("pretrain=greedy", "classifier=gradual")) == (
        "tied-greedy-gradual"
    )
    wide_denoising = compose_config(
        "model=untied", "model.sizes=[300,100]", "pretrain.input_noise=dropout",
        "pretrain.noise_rate=0.2", "classifier.reuse_layers=1",
    )  # fmt: skip
    assert method_name(wide_denoising) == "untied[300,100]-autoencoder+dropout0.2-frozen-reuse1"


SHRINK = {  # key -> value, for the keys a method has: seconds on digits; a larger step so
    # that 3 epochs learn something (with 1e-3 some frozen heads stay at chance)
    "pretrain.epochs": 1, "classifier.epochs": 3, "classifier.patience": 1,
    "classifier.frozen_epochs": 1, "classifier.components": 16, "classifier.learning_rate": 0.01,
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("method", END_TO_END)
def test_every_method_runs_end_to_end_and_logs_test_accuracy(method, tmp_path: Path):
    from tiedae import pipeline

    cfg = compose_config(
        f"method={method}", *target_classes(method), "labels.count=100", "runtime.verbose=0",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"tracking.artifact_dir={tmp_path}/art",
    )  # fmt: skip
    for key, value in {**SHRINK, **LONGER.get(method, {})}.items():
        if OmegaConf.select(cfg, key) is not None:
            OmegaConf.update(cfg, key, value)
    results = pipeline.run_experiment(cfg)
    chance = 1 / len(cfg.data.classes or range(10))
    assert results["test/accuracy"] > chance + 0.1  # learned something (the least: 0.25)
    assert results["clf/val_accuracy_at_best"] > chance + 0.1
