"""The tiedae sweeper (``hydra/sweeper=tiedae``): jobs composed as Hydra composes them, checked
before any job trains, and one job per pretraining first; and what a worker pays between jobs."""

from __future__ import annotations

import subprocess
import sys

import pytest
from clirun import find_runs, store_overrides, store_tracker
from conftest import run_cli
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.types import RunMode
from omegaconf import OmegaConf

from tiedae import loader
from tiedae.config import CONFIG_DIR, ConfigError
from tiedae.loader import ReusingConfigLoader
from tiedae.schedule import (
    check_job,
    first_of_each,
    job_key,
    order_jobs,
    pretraining_first,
    pretraining_key,
)

SEARCH_PATH = create_config_search_path(str(CONFIG_DIR))
JOBS = [
    ["experiment=sweep_smoke", "seed=1", "method=tied_frozen", "labels.count=50"],
    ["experiment=sweep_smoke", "seed=2", "method=tied_frozen", "labels.count=all"],
    ["experiment=sweep_smoke", "seed=1", "method=scratch", "labels.count=50"],
    ["method=ladder_untied", "+objective.extra=1", "~probes", "model.sizes=[64,32]"],
    ["hydra/launcher=joblib", "hydra.launcher.n_jobs=3", "data=digits", "labels.fraction=0.5",
     "labels.count=null", "hydra.job.chdir=true"],
]  # fmt: skip


def composed(config_loader: ConfigLoaderImpl, overrides: list[str]) -> dict:
    cfg = config_loader.load_configuration("config", overrides, RunMode.RUN)
    return OmegaConf.to_container(cfg, resolve=False)


@pytest.mark.parametrize("overrides", JOBS)
def test_a_reused_composition_is_the_config_hydra_composes(overrides, monkeypatch):
    monkeypatch.setattr(loader, "_COMPOSED", {})
    hydra, reusing = ConfigLoaderImpl(SEARCH_PATH), ReusingConfigLoader(SEARCH_PATH)
    expected = composed(hydra, overrides)
    assert composed(reusing, overrides) == expected  # composed afresh
    assert composed(reusing, overrides) == expected  # from the kept composition
    assert len(loader._COMPOSED) == 1


def test_jobs_that_differ_in_values_only_share_one_composition(monkeypatch):
    monkeypatch.setattr(loader, "_COMPOSED", {})
    reusing, hydra = ReusingConfigLoader(SEARCH_PATH), ConfigLoaderImpl(SEARCH_PATH)
    grid = [["experiment=sweep_smoke", "method=tied_frozen", f"seed={seed}", f"labels.count={n}"]
            for seed in (1, 2, 3) for n in (50, 100, "all")]  # fmt: skip
    for job in grid:
        assert composed(reusing, job) == composed(hydra, job)
    assert len(loader._COMPOSED) == 1
    first = reusing.load_configuration("config", grid[0], RunMode.RUN)
    first.seed = 99  # a job's config is its own copy
    assert composed(reusing, grid[0]) == composed(hydra, grid[0])


def test_pretraining_first_runs_one_job_per_key_then_the_rest_in_order():
    jobs = ["a1", "a2", "s1", "b1", "b2", "a3", "c1", "s2"]
    keys = ["a", "a", None, "b", "b", "a", "c", None]
    assert pretraining_first(jobs, keys) == ["a1", "b1", "c1", "a2", "s1", "b2", "a3", "s2"]
    assert order_jobs(jobs, keys, "grid") == jobs
    with pytest.raises(ConfigError, match="hydra.sweeper.order='fast' is not one of"):
        order_jobs(jobs, keys, "fast")


def test_the_smoke_grid_starts_with_its_four_pretrainings():
    hydra = ConfigLoaderImpl(SEARCH_PATH)
    grid = [[f"seed={s}", f"method={m}", f"labels.count={n}", "experiment=sweep_smoke"]
            for s in (1, 2) for m in ("tied_frozen", "tied_finetune", "untied_frozen", "scratch")
            for n in (50, "all")]  # fmt: skip
    tasks = [check_job(hydra.load_configuration("config", job, RunMode.RUN), job) for job in grid]
    keys = [pretraining_key(task) for task in tasks]
    assert len({key for key in keys if key}) == 4  # tied/untied x 2 seeds; scratch none
    assert keys[0] == keys[2]  # tied-frozen and tied-finetune load one autoencoder
    ordered = order_jobs(list(range(len(grid))), keys, "pretraining_first")
    assert len({keys[i] for i in ordered[:4]}) == 4
    assert ordered[:4] == [0, 4, 8, 12] and sorted(ordered) == list(range(len(grid)))


def test_jobs_whose_settings_repeat_are_one_job():
    hydra = ConfigLoaderImpl(SEARCH_PATH)
    grid = [[f"seed={s}", f"method={m}", f"unlabeled.size={n}", "experiment=sweep_smoke"]
            for s in (1, 2) for m in ("scratch", "tied_frozen") for n in (100, 200)]  # fmt: skip
    tasks = [check_job(hydra.load_configuration("config", job, RunMode.RUN), job) for job in grid]
    kept = first_of_each([job_key(task) for task in tasks])
    # scratch reads no pool: one job per seed; the autoencoder reads it: one per size
    assert [grid[i][1:3] for i in kept] == [
        ["method=scratch", "unlabeled.size=100"],
        ["method=tied_frozen", "unlabeled.size=100"],
        ["method=tied_frozen", "unlabeled.size=200"],
    ] * 2
    assert first_of_each(["a", "b", "a", "c", "b"]) == [0, 1, 3]
    into_two_stores = [
        check_job(hydra.load_configuration("config", job, RunMode.RUN), job)
        for job in (["method=scratch", f"tracking.uri=sqlite:////tmp/{name}.db"] for name in "ab")
    ]
    assert len({job_key(task) for task in into_two_stores}) == 2  # the same job, two stores


def test_a_sweep_launches_a_repeated_job_once_and_counts_it_once(tmp_path):
    sweep = ["experiment=sweep_smoke", "seed=1", "method=scratch", "labels.count=50",
             "unlabeled.size=100,200,300", "hydra/launcher=basic"]  # fmt: skip
    result = run_cli(*sweep, *store_overrides(tmp_path))
    assert "2 of the grid's jobs repeat another job's settings" in result.stdout, result.stdout
    assert "1/1 jobs (1 done, 0 skipped, 0 failed, 0 running)" in result.stdout, result.stdout
    assert "#0 : " not in result.stdout + result.stderr  # the launcher's job list: not shown
    jobs = find_runs(store_tracker(tmp_path), "tags.`tiedae.role` = 'job'")
    assert [run.info.status for run in jobs] == ["FINISHED"]


def test_a_bad_value_in_a_later_job_stops_the_sweep_before_any_job(tmp_path):
    sweep = ["experiment=sweep_smoke", "seed=1", "method=scratch", "labels.count=50,-3",
             "hydra/launcher=basic"]  # fmt: skip
    result = run_cli(*sweep, *store_overrides(tmp_path), check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("tiedae: ")]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1 and errors[0].startswith(
        "tiedae: error: sweep job seed=1 method=scratch labels.count=-3"
    ), result.stderr
    assert "Traceback" not in result.stderr
    runs = find_runs(store_tracker(tmp_path))
    assert [run.data.tags["tiedae.role"] for run in runs] == ["sweep"]  # no job ran
    assert runs[0].info.status == "FAILED"


def test_the_first_job_of_a_process_freezes_what_the_imports_made():
    """After ``configure_runtime``, a full collection no longer walks the ~500,000 objects of
    TensorFlow, Keras and MLflow (in a fresh process: the test's own is not frozen)."""
    code = (
        "import gc; from omegaconf import OmegaConf; import mlflow\n"
        "from tiedae.compose import compose_config\n"
        "from tiedae.runtime import configure_runtime\n"
        "before = len(gc.get_objects()); configure_runtime(compose_config(['data=digits']))\n"
        "print(before, gc.get_freeze_count(), len(gc.get_objects()))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    before, frozen, after = map(int, result.stdout.split())
    assert frozen > 100_000 and frozen >= 0.9 * before
    assert after < 0.05 * before
