"""The smoke sweep through Hydra's Ray launcher, on a small Ray cluster started on this machine.

The launcher's own ``ray.init`` starts the cluster (2 CPUs); each job runs as a Ray task in a
worker process, logs to the same sqlite store, and the cache lock (a file on this machine)
still makes the two tied jobs train one autoencoder.
"""

from __future__ import annotations

import pytest
from clirun import FAST, find_runs, store_overrides, store_tracker
from conftest import images_right, run_cli

from tiedae.tracking import PID, ROLE

pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="make setup installs the ray extra")

RAY = ["hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2",
       "+hydra.launcher.ray.init.include_dashboard=false"]  # fmt: skip
GRID = ["seed=1", "method=tied_frozen,tied_finetune,scratch", "labels.count=50"]


@pytest.mark.slow
@pytest.mark.integration
def test_smoke_sweep_on_a_local_ray_cluster(tmp_path, monkeypatch):
    overrides = ["experiment=sweep_smoke", "sweep.name=on-ray", *GRID, *FAST, *RAY,
                 *store_overrides(tmp_path)]  # fmt: skip
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    result = run_cli(*overrides, timeout=500)
    assert "Ray Launcher is launching 3 jobs" in result.stderr + result.stdout

    runs = find_runs(store_tracker(tmp_path))
    by_role: dict[str, list] = {}
    for run in runs:
        by_role.setdefault(run.data.tags[ROLE], []).append(run)
    (parent,) = by_role["sweep"]
    jobs, pretrainings = by_role["job"], by_role["pretrain"]
    assert {run.info.status for run in runs} == {"FINISHED"}
    assert len(jobs) == 3 and len(pretrainings) == 1
    assert {run.data.tags["mlflow.parentRunId"] for run in jobs} == {parent.info.run_id}
    # three epochs on 50 labels stay near chance: each accuracy counts digits' 360 test images
    assert all(0 < images_right(run.data.metrics["test/accuracy"]) < 360 for run in jobs)
    caches = sorted(run.data.tags.get("pretrain.cache", "-") for run in jobs)
    assert caches == ["-", "hit", "miss"]  # scratch uses none
    # the jobs ran in Ray's worker processes, not in the sweep's own
    assert parent.data.tags[PID] not in {run.data.tags[PID] for run in jobs}
