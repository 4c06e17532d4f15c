"""pretrain=transfer on digits: a source trained on digits 0-4, a target task on digits 5-9."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import make_config, run_cli

from tiedae import config as C
from tiedae.config import ConfigError
from tiedae.data import load_dataset
from tiedae.models import Autoencoder, build_classifier
from tiedae.pipeline import prepare, run_experiment
from tiedae.tracking import Tracker, TrackingSettings, load_keras_model
from tiedae.transfer import expected_kernels, hidden_layers, matching_layers

TARGET = "data.classes=[5,6,7,8,9]"


def store_overrides(store: Path) -> list[str]:
    return [f"tracking.uri=sqlite:///{store}/mlflow.db", f"tracking.artifact_dir={store}/art"]


def make_cfg(store: Path, *overrides: str):
    """A small digits config logging into ``store``; the source learns for up to 20 epochs."""
    return make_config(
        "data=digits", "labels.count=50", "seed=1", "runtime.verbose=0", "++pretrain.epochs=20",
        "classifier.epochs=20", "classifier.patience=3", *store_overrides(store), *overrides,
    )  # fmt: skip


def connect(store: Path) -> Tracker:
    return Tracker(TrackingSettings.from_config(make_cfg(store).tracking)).connect()


def runs(tracker: Tracker, role: str) -> list:
    return tracker.client.search_runs(
        [tracker.experiment_id], f"tags.`tiedae.role` = '{role}'", order_by=["start_time ASC"]
    )


def save_model(model: keras.Model, path: Path) -> str:
    model.save(path)
    return str(path)


def two_layer_source(image_shape=(8, 8), sizes=(100, 30), activation="selu") -> keras.Model:
    return build_classifier(image_shape, list(sizes), 5, activation=activation)


# --- shape matching, no training ---------------------------------------------------------


def test_expected_kernels_follow_the_flat_image_and_sizes():
    assert expected_kernels((8, 8), [100, 30]) == [(64, 100), (100, 30)]
    assert expected_kernels((28, 28), [300]) == [(784, 300)]


def test_hidden_layers_leave_out_the_head_and_look_inside_nested_models():
    classifier = two_layer_source()
    assert [layer.name for layer in hidden_layers(classifier)] == ["hidden_1", "hidden_2"]
    untied = Autoencoder((8, 8), [100, 30], tied=False)
    model_cfg = make_cfg(Path("/tmp")).model
    matched = matching_layers(untied, "ae.keras", (8, 8), model_cfg, reuse=2)
    assert matched == untied.encoder.layers[1:]  # its encoder's Dense layers, not the decoder's


def test_matching_takes_the_lowest_reuse_layers_only():
    model_cfg = make_cfg(Path("/tmp")).model
    matched = matching_layers(two_layer_source(), "src", (8, 8), model_cfg, reuse=1)
    assert [layer.name for layer in matched] == ["hidden_1"]


@pytest.mark.parametrize(
    ("source", "sizes", "reuse", "message"),
    [
        (dict(sizes=(100,)), [100, 30], 2, "has 1 hidden Dense layer(s)"),
        (dict(sizes=(100, 30)), [64, 30], 2, "layer 1 (hidden_1) has kernel (64, 100) but encoder "
                                             "layer 1 needs (64, 64)"),
        (dict(sizes=(100, 20)), [100, 30], 2, "layer 2 (hidden_2) has kernel (100, 20)"),
        (dict(sizes=(100, 30), activation="relu"), [100, 30], 1, "uses relu but the encoder uses"),
    ],
)  # fmt: skip
def test_mismatches_name_the_source_and_the_layer(source, sizes, reuse, message):
    model_cfg = make_cfg(Path("/tmp"), f"model.sizes=[{','.join(map(str, sizes))}]").model
    with pytest.raises(ConfigError, match="pretrain.source=my.keras") as error:
        matching_layers(two_layer_source(**source), "my.keras", (8, 8), model_cfg, reuse)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


# --- config: names, keys, validation ------------------------------------------------------


def test_transfer_rows_are_named_by_freezing_and_ignore_tied(tmp_path):
    frozen = make_cfg(tmp_path, "method=transfer_frozen", TARGET)
    untied = make_cfg(tmp_path, "method=transfer_frozen", TARGET, "model=untied")
    assert C.method_name(frozen) == "transfer-frozen"
    assert C.method_name(make_cfg(tmp_path, "method=transfer_finetune", TARGET)) == (
        "transfer-finetune"
    )
    assert C.settings_key(C.run_settings(frozen)) == C.settings_key(C.run_settings(untied))


def test_builtin_source_key_ignores_the_target_but_not_the_source_classes(tmp_path):
    base = make_cfg(tmp_path, "pretrain=transfer", TARGET)
    other_target = make_cfg(tmp_path, "pretrain=transfer", "data.classes=[5,6]",
                            "pretrain.source_classes=[0,1,2,3,4]")  # fmt: skip
    fewer = make_cfg(tmp_path, "pretrain=transfer", TARGET, "pretrain.source_classes=[0,1]")
    assert C.source_classes(base) == [0, 1, 2, 3, 4]
    key = C.settings_key(C.source_settings(base))
    assert C.settings_key(C.source_settings(other_target)) == key
    assert C.settings_key(C.source_settings(fewer)) != key


def test_autoencoder_on_all_images_is_its_own_row(tmp_path):
    assert C.method_name(make_cfg(tmp_path, "method=tied_allimages_frozen", TARGET)) == (
        "tied-autoencoder-allimages-frozen"
    )
    assert C.method_name(make_cfg(tmp_path, "method=tied_frozen", TARGET)) == (
        "tied-autoencoder-frozen"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["pretrain=transfer"], "pretrain.source=builtin needs data.classes"),
        (["pretrain=transfer", TARGET, "pretrain.source_classes=[4,5]"],
         "shares classes [5] with data.classes"),
        (["pretrain=transfer", TARGET, "pretrain.source_classes=[1,12]"],
         "pretrain.source_classes=[1, 12] must list at least two distinct class ids in 0..9"),
        (["pretrain=transfer", TARGET, "pretrain.source=''"], "pretrain.source='' must be"),
        (["data.classes=[3]"], "data.classes=[3] must list at least two"),
    ],
)  # fmt: skip
def test_bad_transfer_config_is_refused_in_one_line(tmp_path, overrides, message):
    with pytest.raises(ConfigError) as error:
        C.validate(make_cfg(tmp_path, *overrides))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


# --- bad sources: refused in prepare(), before any run or training ----------------------


@pytest.fixture(scope="module")
def bad_sources(tmp_path_factory) -> Path:
    """A store, and beside it a file that is no model and two models that do not fit."""
    folder = tmp_path_factory.mktemp("bad-sources")
    (folder / "not-a-model.keras").write_text("not a zip file")
    save_model(two_layer_source(sizes=(100,)), folder / "shallow.keras")
    save_model(two_layer_source(sizes=(100, 30)), folder / "wide.keras")
    return folder


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{tmp}/missing.keras", "{tmp}/missing.keras: file not found"),
        ("runs:/0123456789abcdef0123456789abcdef/models/pretrained.keras",
         "Run with id=0123456789abcdef0123456789abcdef not found"),
        ("models:/no-such-model/1", "Registered Model with name=no-such-model not found"),
        ("models:/no-version", "not of the form models:/<name>/<version>"),
        ("{tmp}/not-a-model.keras", "is not a loadable Keras model"),
        ("{tmp}/shallow.keras", "has 1 hidden Dense layer(s) (its last Dense layer is the output "
                                "head), fewer than classifier.reuse_layers=2"),
        ("{tmp}/wide.keras", "has kernel (64, 100) but encoder layer 1 needs (64, 50)"),
    ],
)  # fmt: skip
def test_bad_source_fails_before_any_run(bad_sources, source, message):
    sizes = ["model.sizes=[50,30]"] if "wide" in source else []
    source = source.format(tmp=bad_sources)
    cfg = make_cfg(
        bad_sources, "method=transfer_frozen", TARGET, f"pretrain.source={source}", *sizes
    )
    with pytest.raises(ConfigError) as error:
        prepare(cfg)
    text = str(error.value)
    assert f"pretrain.source={source}" in text and message.format(tmp=bad_sources) in text
    assert "\n" not in text
    assert runs(connect(bad_sources), "job") == []


@pytest.mark.slow
def test_cli_prints_a_bad_source_as_one_line(tmp_path):
    missing = tmp_path / "missing.keras"
    result = run_cli(
        "data=digits", "method=transfer_frozen", TARGET, f"pretrain.source={missing}",
        *store_overrides(tmp_path), f"hydra.run.dir={tmp_path}/out", timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("tiedae: error:")]
    assert errors == [
        f"tiedae: error: pretrain.source={missing}: file not found; give a .keras file, "
        "runs:/<run id>/<path>, models:/<name>/<version> or builtin"
    ]


# --- end to end: builtin source, then the same source from a file and from MLflow URIs ---


@pytest.fixture(scope="module")
def builtin_store(tmp_path_factory):
    """One store where a builtin source (digits 0-4) was trained by a frozen transfer run."""
    store = tmp_path_factory.mktemp("transfer")
    results = run_experiment(make_cfg(store, "method=transfer_frozen", TARGET))
    return store, results


def job_classifier(tracker: Tracker, run_id: str, folder: Path) -> keras.Model:
    return load_keras_model(tracker.download_model(f"runs:/{run_id}/classifier", folder))


@pytest.mark.slow
def test_builtin_source_is_trained_on_source_classes_once(builtin_store):
    store, first = builtin_store
    tracker = connect(store)
    (source_run,) = runs(tracker, "pretrain")
    assert source_run.data.params["source.classes"] == "[0, 1, 2, 3, 4]"
    labels = load_dataset(make_cfg(store).data).y_train  # every class: count the source's by hand
    assert source_run.data.metrics["source/n_images"] == np.isin(labels, range(5)).sum()
    assert source_run.data.metrics["source/test_accuracy"] > 0.5  # 5 classes: chance is 0.2
    finetuned = run_experiment(make_cfg(store, "method=transfer_finetune", TARGET))
    assert len(runs(tracker, "pretrain")) == 1
    last_job = runs(tracker, "job")[-1]
    assert last_job.data.tags["pretrain.cache"] == "hit"
    assert last_job.data.tags["method"] == "transfer-finetune"
    # one epoch: fine-tuned well above chance (0.2), and above the frozen head (~chance)
    assert finetuned["test/accuracy"] > max(0.5, first["test/accuracy"] + 0.2)
    assert last_job.data.metrics["test/accuracy"] == pytest.approx(finetuned["test/accuracy"])


@pytest.mark.slow
def test_file_and_mlflow_uris_give_the_builtin_run_exactly(builtin_store, tmp_path):
    store, builtin = builtin_store
    tracker = connect(store)
    source_run = runs(tracker, "pretrain")[0].info.run_id
    logged = f"runs:/{source_run}/pretrained"  # the run's logged model
    local = tracker.download_model(logged, tmp_path / "source")  # an MLflow model folder
    version = tracker.register_model("digits-0-4", logged, alias="champion")
    sources = [str(local), logged, f"models:/digits-0-4/{version}", "models:/digits-0-4@champion"]
    source_model = load_keras_model(local)
    for source in sources:
        results = run_experiment(
            make_cfg(store, "method=transfer_frozen", TARGET, f"pretrain.source={source}")
        )
        assert results["test/accuracy"] == builtin["test/accuracy"], source
        job = runs(tracker, "job")[-1]
        assert job.data.tags["transfer.source"] == source
        classifier = job_classifier(tracker, job.info.run_id, tmp_path / job.info.run_id)
        for mine, theirs in zip(
            hidden_layers(classifier), hidden_layers(source_model), strict=True
        ):
            np.testing.assert_array_equal(mine.kernel.numpy(), theirs.kernel.numpy())
    assert len(runs(tracker, "pretrain")) == 1  # a given source trains nothing


@pytest.mark.slow
def test_autoencoder_on_all_images_sees_every_class(tmp_path):
    cfg = make_cfg(tmp_path, "method=tied_allimages_frozen", TARGET, "pretrain.epochs=1")
    run_experiment(cfg)
    (pretraining,) = runs(connect(tmp_path), "pretrain")
    every_class = load_dataset(make_cfg(tmp_path).data)
    assert pretraining.data.params["pretrain.n_images"] == str(len(every_class.x_train))
