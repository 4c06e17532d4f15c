"""The benchmark (tiedae.bench), the fast loop's equivalence to a plain loop, pretrain.cache."""

from __future__ import annotations

import csv
import subprocess
import sys
from dataclasses import replace

import keras
import numpy as np
import pytest
import tensorflow as tf
from hydra import compose, initialize_config_dir
from keras import ops

from tiedae import bench
from tiedae.config import CONFIG_DIR, ConfigError, pretrain_settings, settings_key, validate
from tiedae.data import load_digits_splits
from tiedae.loop import fit
from tiedae.models import Autoencoder
from tiedae.models.conv import ConvAutoencoder
from tiedae.training import EpochRunner, FitSettings, use_jit, xla_pays_off


def make_config(tmp_path, *overrides: str):
    store = [
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"tracking.artifact_dir={tmp_path}/art",
    ]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=["data=digits", *store, *overrides])


# --- the fast loop learns what a plain loop learns --------------------------------------------


def plain_loop(model, x, epochs: int, batch_size: int, seed: int) -> list[float]:
    """The seed's recipe written out eagerly: shuffled batches, mean BCE, one SGD step each."""
    optimizer = keras.optimizers.SGD(learning_rate=1.5)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(epochs):
        order, total = rng.permutation(len(x)), 0.0
        for start in range(0, len(x), batch_size):
            batch = x[order[start : start + batch_size]]
            with tf.GradientTape() as tape:
                loss = ops.mean(
                    keras.losses.binary_crossentropy(batch, model(batch, training=True))
                )
            optimizer.apply(
                tape.gradient(loss, model.trainable_variables), model.trainable_variables
            )
            total += float(loss) * len(batch)
        losses.append(total / len(x))
    return losses


@pytest.mark.parametrize(("tied", "jit"), [(True, True), (False, False)])
def test_fit_learns_what_a_plain_loop_learns(tied, jit):
    x = load_digits_splits().x_train[:150]  # 150 = 4 full batches of 32 and one of 22
    models = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        models.append(Autoencoder(x.shape[1:], [16, 4], tied=tied))
    fast, plain = models
    settings = FitSettings(
        epochs=3, batch_size=32, seed=5, steps_per_execution=3, verbose=0, jit=jit
    )  # 3: one call of 3 full batches, one of 1, then the short one
    history = fit(
        fast, x, x, (x[:40], x[:40]), loss=keras.losses.binary_crossentropy,
        optimizer=keras.optimizers.SGD(learning_rate=1.5), settings=settings,
    )  # fmt: skip
    expected = plain_loop(plain, x, epochs=3, batch_size=32, seed=5)
    assert [epoch["loss"] for epoch in history.epochs] == pytest.approx(expected, rel=1e-5)
    for ours, theirs in zip(fast.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    assert history.epochs[0]["loss"] != history.epochs[-1]["loss"]  # it did learn


@pytest.mark.parametrize("jit", [True, False])
def test_epoch_runner_takes_any_step_and_sees_every_example_once(jit):
    """A custom objective's step: every example once an epoch, in order's batches, counted."""
    x = tf.constant(np.arange(70, dtype=np.float32)[:, None])  # 2 full batches of 32 and one of 6
    y = tf.constant(np.arange(70, dtype=np.float32) * 2)
    seen, steps = tf.Variable(tf.zeros(70)), tf.Variable(0)

    def step(x_batch, y_batch):  # records what it saw; its "loss" is the batch's mean y
        seen.scatter_nd_add(tf.cast(x_batch, tf.int32), tf.ones(tf.shape(x_batch)[:1]))
        steps.assign_add(1)
        return ops.mean(y_batch)

    runner = EpochRunner(step, x, y, batch_size=32, steps_per_execution=1, jit=jit)
    order = tf.constant(np.random.default_rng(0).permutation(70), dtype=tf.int32)
    progress = []
    assert runner(order, progress.append) == pytest.approx(2 * 70 * 69 / 2)
    assert progress == [1, 2, 3] and int(steps.numpy()) == 3
    np.testing.assert_array_equal(seen.numpy(), np.ones(70))


def test_same_config_and_seed_give_the_same_test_numbers_with_jit(tmp_path):
    """runtime.jit=true: pretraining, fine-tuning and test twice afresh agree to the last digit."""
    from tiedae.classify import evaluate_on_test, train_classifier
    from tiedae.config import reuse_layers
    from tiedae.data import stratified_subset
    from tiedae.pipeline import fit_settings
    from tiedae.pretrain import pretrain_autoencoder, pretrained_layers

    cfg = make_config(tmp_path, "runtime.jit=true", "runtime.verbose=0", "method=tied_finetune",
                      "pretrain.epochs=1", "classifier.epochs=2", "seed=3")  # fmt: skip
    splits = load_digits_splits()
    labeled = stratified_subset(splits.y_train, 60, cfg.seed)

    def one_run() -> dict[str, float]:
        settings = fit_settings(cfg, cfg.pretrain, None)
        assert settings.jit is True
        autoencoder, _ = pretrain_autoencoder(splits, cfg.model, cfg.pretrain, settings)
        classifier, _ = train_classifier(
            splits, labeled, cfg.model, cfg.classifier, fit_settings(cfg, cfg.classifier, 2),
            pretrained=pretrained_layers(autoencoder), reuse=reuse_layers(cfg),
        )  # fmt: skip
        return evaluate_on_test(classifier, splits)

    first, second = one_run(), one_run()
    assert first == second
    assert 0.1 < first["accuracy"] < 1.0  # it trained: better than chance (and no error)


def test_runtime_jit_is_validated_and_auto_picks_xla_for_long_fits(tmp_path):
    with pytest.raises(ConfigError, match="runtime.jit"):
        validate(make_config(tmp_path, "runtime.jit=sometimes"))
    validate(make_config(tmp_path, "runtime.jit=auto"))
    auto = FitSettings(epochs=10, jit="auto")
    assert use_jit(auto, 55_000) and not use_jit(auto, 500)  # pretraining; 500 labels
    assert use_jit(FitSettings(epochs=1, jit=True), 10) and not use_jit(FitSettings(epochs=99), 1e6)
    assert not use_jit(auto, 55_000, xla_suits_model=False)
    assert xla_pays_off(Autoencoder((8, 8), [4])) and xla_pays_off(
        Autoencoder((8, 8), [4], tied=False)
    )
    assert not xla_pays_off(Autoencoder((8, 8), [4], input_noise="dropout", noise_rate=0.3))
    assert not xla_pays_off(ConvAutoencoder((8, 8), [4], [4]))  # 10x slower under XLA here


# --- the seed's recipe beside tiedae's, in process, on digits ----------------------------------


def test_seed_recipe_has_the_seed_shape_and_learns_like_tiedae():
    for tied, params in ((True, 82_414), (False, 163_814)):
        assert bench.seed_autoencoder(tied).count_params() == params  # the seed's 784-100-30
    options = bench.Options(data="digits", overrides=("pretrain.learning_rate=0.05",))

    def pretrain(path: str, overrides: tuple[str, ...] = ()) -> dict[str, float]:
        spec = bench.worker_spec(replace(options, overrides=overrides), path, "tied", 8)
        return bench.pretrain_worker(spec)

    seed, ours = pretrain(bench.SEED_PATH), pretrain(bench.TIEDAE_PATH)
    assert seed["images"] == ours["images"] == 8 * len(load_digits_splits().x_train)
    assert ours["val_loss"] == pytest.approx(seed["val_loss"], rel=0.02)
    assert ours["val_metric"] == pytest.approx(seed["val_metric"], abs=0.01)
    # --set overrides reach tiedae's path, and only it: a 30x smaller step learns less
    assert bench.worker_spec(options, bench.SEED_PATH, "tied", 8)["overrides"] == []
    slower = pretrain(bench.TIEDAE_PATH, options.overrides)
    assert slower["val_loss"] > 1.1 * ours["val_loss"]


def test_the_bfloat16_path_trains_under_mixed_precision_unless_set_says_otherwise():
    options = bench.Options(data="digits")
    spec = bench.worker_spec(options, bench.BF16_PATH, "tied", 8)
    assert spec["overrides"] == ["runtime.precision=mixed_bfloat16"]
    chosen = replace(options, overrides=("runtime.precision=float32",))
    assert bench.worker_spec(chosen, bench.BF16_PATH, "tied", 8)["overrides"] == [
        "runtime.precision=float32"
    ]
    try:
        full = bench.pretrain_worker(bench.worker_spec(options, bench.TIEDAE_PATH, "tied", 8))
        mixed = bench.pretrain_worker(spec)
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    finally:
        keras.config.set_dtype_policy("float32")
    assert mixed["val_loss"] != full["val_loss"]
    assert mixed["val_loss"] == pytest.approx(full["val_loss"], rel=0.02)


def test_summary_compares_medians_and_the_sweep_cache():
    def row(path, repeat, seconds, val_loss, stage="pretrain", variant="tied"):
        return bench.Measurement(
            stage, variant, path, repeat, images=1000, seconds=seconds, cpu_seconds=2 * seconds,
            val_loss=val_loss, peak_rss_mib=100.0,
        )  # fmt: skip

    rows = [
        row(bench.SEED_PATH, 0, 4.0, 0.30), row(bench.SEED_PATH, 1, 5.0, 0.30),
        row(bench.SEED_PATH, 2, 6.0, 0.30), row(bench.TIEDAE_PATH, 0, 1.0, 0.33),
        row(bench.TIEDAE_PATH, 1, 2.0, 0.33), row(bench.TIEDAE_PATH, 2, 9.0, 0.33),
        row(bench.NO_JIT_PATH, 0, 4.0, 0.33), row(bench.NO_JIT_PATH, 1, 4.0, 0.33),
        row(bench.BF16_PATH, 0, 1.0, 0.363), row(bench.BF16_PATH, 1, 1.0, 0.363),
        row("tiedae CLI", 0, 10.0, float("nan"), "sweep", "cache on"),
        row("tiedae CLI", 0, 30.0, float("nan"), "sweep", "cache off"),
    ]  # fmt: skip
    ratios = {c["stage"]: c for c in bench.comparisons(bench.summarize(rows))}
    assert ratios["pretrain"]["speedup"] == pytest.approx((1000 / 2.0) / (1000 / 5.0))
    assert ratios["pretrain"]["val_loss_rel_diff"] == pytest.approx(0.1)
    assert ratios["sweep"]["speedup"] == pytest.approx(3.0)
    assert ratios["pretrain jit"]["speedup"] == pytest.approx((1000 / 2.0) / (1000 / 4.0))
    assert ratios["pretrain bfloat16"]["speedup"] == pytest.approx((1000 / 1.0) / (1000 / 2.0))
    assert ratios["pretrain bfloat16"]["val_loss_rel_diff"] == pytest.approx(0.1)
    info = {**bench.machine(), "date": "today", "commit": "abc", "load": "1 and 1"}
    info["matmul_peak_gflops"] = "1.0"  # 1 GFLOP/s: the median 500 images/s x 0.977 MFLOP
    text = bench.report(bench.Options(data="digits"), rows, "python -m tiedae.bench", info)
    assert "2.50x" in text and "3.00x" in text and "+10.00%" in text and "TensorFlow" in text
    assert "| tied | tiedae | 500 (111–1,000) | 250 | 0.5 | 49% |" in text
    assert "| tied | 2.00x | 2.00x | 0.3300 | 0.3630 | +10.00% |" in text  # bfloat16 / float32
    assert bench.training_flops_per_image() == 3 * 2 * 2 * (784 * 100 + 100 * 30)


def test_stages_are_registered_in_order_and_quick_leaves_the_sweeps_out():
    assert bench.STAGES == ("pretrain", "classify", "objective", "run", "sweep", "jobs")
    assert bench.Options().stages == bench.STAGES
    assert set(bench.WORKERS) == {"pretrain", "classify", "objective", "jobs"}
    quick, _ = bench.parse_options(["--quick"])
    assert quick.stages == ("pretrain", "classify", "objective", "run")
    epilog = bench.cli.epilog()  # --help lists every stage, in order
    assert [epilog.index(f"- ``{name}``:") for name in bench.STAGES] == sorted(
        epilog.index(f"- ``{name}``:") for name in bench.STAGES
    )


@pytest.mark.slow
@pytest.mark.integration
def test_bench_quick_runs_end_to_end_on_digits(tmp_path):
    command = [sys.executable, "-m", "tiedae.bench", "--quick", "--data", "digits",
               "--stages", "pretrain", "--models", "tied", "--out", str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "tiedae / seed images/s" in done.stdout
    readme = (tmp_path / "README.md").read_text()
    assert "--quick --data digits" in readme and "TensorFlow" in readme
    with open(tmp_path / "measurements.csv") as table:
        rows = list(csv.DictReader(table))
    assert sorted((row["variant"], row["path"]) for row in rows) == sorted(
        (model, path)
        for model in ("tied",)
        for path in (bench.SEED_PATH, bench.TIEDAE_PATH, bench.NO_JIT_PATH, bench.BF16_PATH)
    )
    assert "jit=true / jit=false images/s" in done.stdout and "GFLOP/s" in readme
    assert "bfloat16 / float32 images/s" in readme
    assert all(float(row["images_per_s"]) > 0 and float(row["peak_rss_mib"]) > 0 for row in rows)


# --- pretrain.cache -----------------------------------------------------------------------------


def test_pretrain_cache_flag_is_validated_and_not_part_of_the_key(tmp_path):
    on, off = make_config(tmp_path), make_config(tmp_path, "pretrain.cache=false")
    assert settings_key(pretrain_settings(on)) == settings_key(pretrain_settings(off))
    with pytest.raises(ConfigError, match="pretrain.cache"):
        validate(make_config(tmp_path, "pretrain.cache=sometimes"))


@pytest.mark.slow
def test_pretrain_cache_off_trains_again(tmp_path):
    from tiedae.pipeline import run_experiment
    from tiedae.tracking import Tracker, TrackingSettings

    short = ["pretrain.epochs=1", "classifier.epochs=2", "runtime.verbose=0", "labels.count=50"]
    for extra in ([], ["pretrain.cache=false"], []):
        run_experiment(make_config(tmp_path, *short, *extra))
    tracker = Tracker(TrackingSettings.from_config(make_config(tmp_path).tracking)).connect()
    jobs = tracker.client.search_runs(
        [tracker.experiment_id], "tags.`tiedae.role` = 'job'", order_by=["attributes.start_time"]
    )
    assert [job.data.tags["pretrain.cache"] for job in jobs] == ["miss", "off", "hit"]
    assert tracker.count_runs("pretrain") == 2


# --- the objective stage: the same objective trained the plain Keras way -------------------------


def test_keras_fit_of_an_objective_takes_its_steps_and_learns(tmp_path):
    from tiedae.data import stratified_subset
    from tiedae.objectives import build_objective

    cfg = make_config(
        tmp_path,
        "method=joint_tied",
        "model.sizes=[16]",
        "objective.steps_per_epoch=4",
        "classifier.learning_rate=0.01",
    )
    splits = load_digits_splits()
    labeled = stratified_subset(splits.y_train, 100, cfg.seed)
    objective = build_objective(cfg, splits.image_shape, splits.n_classes, len(splits.x_train))
    before = [v.numpy().copy() for v in objective.trainable_variables]
    scores = bench.keras_objective_fit(
        objective, cfg, (splits.x_train[labeled], splits.y_train[labeled]), splits.x_train,
        (splits.x_valid, splits.y_valid), epochs=2,
    )  # fmt: skip
    assert int(objective.step.numpy()) == 8  # 2 epochs of 4 steps, each one update
    after = objective.trainable_variables
    assert all(not np.array_equal(b, a.numpy()) for b, a in zip(before, after, strict=True))
    assert scores["val_accuracy"] > 0.2 and np.isfinite(scores["val_loss"])  # chance is 0.1


def test_objective_stage_compares_tiedae_with_keras_fit():
    rows = [
        bench.Measurement("objective", "joint_tied", path, 0, images=2000, seconds=seconds,
                          cpu_seconds=seconds, val_loss=0.5, val_metric=0.8)
        for path, seconds in ((bench.KERAS_PATH, 4.0), (bench.TIEDAE_PATH, 1.0))
    ]  # fmt: skip
    (ratio,) = [c for c in bench.comparisons(bench.summarize(rows)) if c["stage"] == "objective"]
    assert ratio["speedup"] == pytest.approx(4.0)
    text = bench.report(bench.Options(objective_steps=10), rows, "cmd", {
        "date": "d", "commit": "c", "cores": "2", "cpu": "x", "system": "s", "python": "3",
        "tensorflow": "t", "keras": "k", "load": "0 and 0"})  # fmt: skip
    assert "| joint_tied | 4.00x |" in text and "| joint_tied | Keras fit | 220.0 |" in text
