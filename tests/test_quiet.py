"""A run that works prints tiedae's lines, not TensorFlow's (issue 28): no C++ log lines,
no tf.function retracing warnings, no oneDNN notice; and what signals a problem still shows."""

import gc
import os
import re
import subprocess
import sys
import weakref

import keras
import numpy as np
import pytest
from clirun import FAST
from conftest import run_cli

from tiedae import training
from tiedae.config import PROJECT_ROOT
from tiedae.quiet import IMPORT_NOISE, stderr_without

NOISE = re.compile(
    r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]"  # TensorFlow's C++ log prefix (absl / tsl)
    r"|retracing|oneDNN|absl::InitializeLog|use_unbounded_threadpool",
    re.MULTILINE,
)


def noise_in(*outputs: str) -> list[str]:
    return [line for text in outputs for line in text.splitlines() if NOISE.search(line)]


def test_the_noise_pattern_catches_what_tensorflow_printed_before():
    seen = [  # from a digits smoke sweep at commit 0104fbb
        "I0000 00:00:1796400170.369493    5574 port.cc:153] oneDNN custom operations are on.",
        "E0000 00:00:1796400182.189702    5574 node_def_util.cc:682] NodeDef mentions "
        "attribute use_unbounded_threadpool which is not in the op definition",
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "[2026-12-04 16:03:05,195][tensorflow][WARNING] - 5 out of the last 10 calls to "
        "<function evaluator.<locals>.per_example at 0x7f15d47dd1c0> triggered tf.function "
        "retracing.",
    ]
    assert noise_in("\n".join(seen)) == seen
    assert not noise_in("sweep smoke: 4/4 jobs (4 done, 0 skipped, 0 failed, 0 running)")


@pytest.mark.slow
def test_a_short_sweep_help_and_library_import_print_no_tensorflow_noise(store, tmp_path):
    # 4 jobs (tied and untied pretrained and probed, a cache hit, scratch): before issue 28
    # they printed the oneDNN notice, tf.data's E0000 line and predict's retracing warning
    sweep = run_cli(
        "experiment=sweep_smoke", *FAST, "seed=1", "labels.count=50", *store,
        f"hydra.sweep.dir={tmp_path}/multirun",
    )  # fmt: skip
    assert "sweep smoke: 4/4 jobs (4 done, 0 skipped, 0 failed, 0 running)" in sweep.stdout
    assert noise_in(sweep.stdout, sweep.stderr) == []
    helped = run_cli("--help")
    assert "tiedae" in helped.stdout
    assert noise_in(helped.stdout, helped.stderr) == []
    # a notebook's import: TensorFlow loads with it
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    imported = subprocess.run(
        [sys.executable, "-c", "import tiedae.pipeline, tensorflow as tf; print(tf.__version__)"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert noise_in(imported.stdout, imported.stderr) == []


def test_the_import_filter_drops_only_the_known_lines(capfd):
    notice = b"WARNING: All log messages before absl::InitializeLog() is called are written"
    notice += b" to STDERR\n"
    onednn = b"I0000 00:00:1796400170.369493    5574 port.cc:153] oneDNN custom operations"
    onednn += b" are on. You may see slightly different numerical results\n"
    error = b"E0000 00:00:1796400182.189702    5574 some_op.cc:12] a real error\n"
    with stderr_without(IMPORT_NOISE):
        os.write(2, notice + onednn + error)
        print("from Python", file=sys.stderr)
    err = capfd.readouterr().err
    assert "a real error" in err and "from Python" in err
    assert "oneDNN" not in err and "InitializeLog" not in err


def test_the_import_filter_lets_an_error_through_when_the_block_fails(capfd):
    with pytest.raises(RuntimeError), stderr_without(IMPORT_NOISE):
        os.write(2, b"F0000 00:00:1.0  1 loader.cc:3] could not load a library\n")
        raise RuntimeError("import failed")
    assert "could not load a library" in capfd.readouterr().err


def test_a_model_is_traced_once_for_inference_and_once_for_evaluation():
    # each call used to build and trace its own function: TensorFlow's retracing warning
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    x = np.random.default_rng(0).random((2500, 8), dtype=np.float32)
    y = np.zeros(2500, dtype=np.int64)
    loss = keras.losses.sparse_categorical_crossentropy
    outputs = [training.predict(model, x), training.predict(model, x[:7], batch_size=5)]
    np.testing.assert_array_equal(outputs[0][:7], outputs[1])
    validate = training.evaluator(model, loss)  # as a fit's validation
    for rows in (2500, 10, 999):  # batches of 1000 and short last ones
        assert validate(x[:rows], y[:rows]) == training.evaluate(model, x[:rows], y[:rows], loss)
    functions = training._TRACED[model]
    assert sorted(key[0] for key in functions) == ["evaluate", "predict"]
    assert [f.experimental_get_tracing_count() for f in functions.values()] == [1, 1]
    held = weakref.ref(model)
    del model, functions, validate
    gc.collect()
    assert held() is None  # its functions do not keep it alive
