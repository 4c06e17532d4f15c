"""python -m tiedae.plan: a sweep's jobs keyed as they will run, their state in the store, and
the hours the rest takes at the durations measured."""

from __future__ import annotations

import pandas as pd

from tiedae import plan


def test_the_grids_jobs_are_keyed_as_their_runs_and_repeats_count_once():
    jobs = plan.planned_jobs("sweep_smoke", ["seed=1"])
    assert len(jobs) == 4 * 2  # conf/experiment/sweep_smoke: 4 methods x 2 labeled counts
    assert len({job.key for job in jobs}) == 8
    assert {job.method for job in jobs} == {
        "tied-autoencoder-frozen", "tied-autoencoder-finetune", "untied-autoencoder-frozen",
        "scratch",
    }  # fmt: skip
    again = plan.planned_jobs("sweep_smoke", ["seed=1", "labels.count=50,50"])
    assert len(again) == 4  # the same job twice in the grid is one job


def frame(*runs: tuple[str, str, str, str, float]) -> pd.DataFrame:
    """FINISHED job runs: (method, run key, settings digest, data digest, minutes)."""
    start = pd.Timestamp("2026-12-06 05:00", tz="UTC")
    return pd.DataFrame([
        {"tags.method": method, "tags.tiedae.run_key": key, "tags.tiedae.key.settings": settings,
         "tags.tiedae.key.data": data, "start_time": start,
         "end_time": start + pd.Timedelta(minutes=minutes)}
        for method, key, settings, data, minutes in runs
    ])  # fmt: skip


def test_finished_other_code_and_left_with_hours_from_the_measured_runs():
    jobs = [
        plan.PlannedJob("ladder", "k1", ("s1", "d")), plan.PlannedJob("ladder", "k2", ("s2", "d")),
        plan.PlannedJob("ladder", "k3", ("s3", "d")), plan.PlannedJob("ladder", "k4", ("s4", "d")),
        plan.PlannedJob("gamma", "k5", ("s5", "d")), plan.PlannedJob("vat", "k6", ("s6", "d")),
    ]  # fmt: skip
    sweep = frame(("ladder", "k1", "s1", "d", 70.0), ("ladder", "old", "s2", "d", 80.0))
    store = frame(("gamma", "x", "sx", "d", 50.0), ("ladder", "y", "sy", "d", 10.0))
    states = plan.job_states(jobs, sweep)
    assert list(states["state"]) == ["finished", "other code", "left", "left", "left", "left"]
    table = plan.plan_table(states, plan.durations(sweep), plan.durations(store))
    assert table.loc["ladder", ["jobs", "finished", "other code", "left"]].tolist() == [4, 1, 1, 2]
    assert table.loc["ladder", "min a run"] == 75.0  # this sweep's median, not the store's 10
    assert table.loc["gamma", "borrowed"] and table.loc["gamma", "hours left"] == 50 / 60
    assert pd.isna(table.loc["vat", "hours left"])
    text = plan.render(table, "s", workers=2)
    assert "left: 4 jobs, 3.3 h of runs (1 jobs of methods never run: not counted)" in text
    assert "with 2 workers about 1.7 h" in text and "50.0*" in text


def test_a_command_line_without_its_experiment_is_one_line(capsys):
    assert plan.main(["seed=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "tiedae: error: name the sweep's experiment once, e.g. experiment=reproduction"
