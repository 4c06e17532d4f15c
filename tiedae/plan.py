"""``python -m tiedae.plan <a sweep's command line>`` (``make plan ARGS=...``): what a resumable
sweep has done, what is left, and how long the rest takes at the durations its runs measured.

Every job of the grid is composed, checked and keyed as the sweep would (its run key: settings,
data and code); a job is *finished* when the sweep holds a FINISHED run with that key (the sweep
skips it), *finished at other code* when a FINISHED run has the same settings and data digests
but another code digest (a study run from a worktree at another commit: the sweep from this
checkout would run it again), else *left*. A left job's time is the median duration of its
method's FINISHED runs in this sweep, else in the store's other sweeps (marked ``*``: other
launchers and thread counts), else unknown. Nothing is trained and nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from tiedae.run_keys import KEY_PART
from tiedae.tracking.keys import RUN_KEY

RUN_KEY_TAG = f"tags.{RUN_KEY}"
KEY_TAGS = (f"tags.{KEY_PART}settings", f"tags.{KEY_PART}data")  # the key's parts but code


@dataclass(frozen=True)
class PlannedJob:
    method: str
    key: str
    parts: tuple[str, str]  # the settings and data digests of the key


def planned_jobs(experiment: str, overrides: Sequence[str]) -> list[PlannedJob]:
    """The grid's distinct jobs, each keyed as its run will be (``pipeline.job_spec``)."""
    from tiedae.compose import grid_configs
    from tiedae.config import validate
    from tiedae.data import load_dataset
    from tiedae.pipeline import job_spec

    jobs: dict[str, PlannedJob] = {}
    for cfg in grid_configs(experiment, overrides):
        validate(cfg)
        spec = job_spec(cfg, load_dataset(cfg.data))  # the data cached per dataset
        parts = (spec.job.parts["settings"], spec.job.parts["data"])
        jobs.setdefault(spec.job.key, PlannedJob(spec.method, spec.job.key, parts))
    return list(jobs.values())


def job_states(jobs: Sequence[PlannedJob], finished: pd.DataFrame) -> pd.DataFrame:
    """One row a job: method and state (finished, other code, left), from the sweep's FINISHED
    job runs (``Tracker.jobs_frame``)."""
    keys = set(finished.get(RUN_KEY_TAG, pd.Series(dtype=str)))
    same_parts = (
        set(map(tuple, finished[list(KEY_TAGS)].to_numpy()))
        if set(KEY_TAGS) <= set(finished)
        else set()
    )
    states = [
        "finished" if job.key in keys else "other code" if job.parts in same_parts else "left"
        for job in jobs
    ]
    return pd.DataFrame({"method": [job.method for job in jobs], "state": states})


def durations(runs: pd.DataFrame) -> pd.Series:
    """Median minutes of a FINISHED job run per method (``tags.method``)."""
    if runs.empty:
        return pd.Series(dtype=float)
    minutes = (runs["end_time"] - runs["start_time"]).dt.total_seconds() / 60
    return minutes.groupby(runs["tags.method"]).median()


def plan_table(states: pd.DataFrame, here: pd.Series, elsewhere: pd.Series) -> pd.DataFrame:
    """Per method: jobs, finished, finished at other code, left, minutes a run and hours left
    (NaN: no run of the method measured)."""
    counts = pd.crosstab(states["method"], states["state"])
    table = pd.DataFrame(index=pd.Index(dict.fromkeys(states["method"]), name="method"))
    for state in ("finished", "other code", "left"):
        table[state] = counts.get(state, 0)
    table = table.fillna(0).astype(int)
    table.insert(0, "jobs", table.sum(axis=1))
    measured = here.reindex(table.index)
    table["borrowed"] = measured.isna() & elsewhere.reindex(table.index).notna()
    table["min a run"] = measured.fillna(elsewhere.reindex(table.index))
    table["hours left"] = table["left"] * table["min a run"] / 60
    return table


def render(table: pd.DataFrame, sweep: str, workers: int) -> str:
    width = max(len("method"), *map(len, table.index))
    lines = [f"sweep {sweep}: {int(table['jobs'].sum())} distinct jobs"]
    lines.append(
        f"{'method':<{width}} {'jobs':>5} {'finished':>9} {'other code':>11} {'left':>5} "
        f"{'min a run':>10} {'hours left':>11}"
    )
    for method, row in table.iterrows():
        minutes = "?" if pd.isna(row["min a run"]) else f"{row['min a run']:.1f}"
        minutes += "*" if row["borrowed"] else ""
        hours = (
            "-"
            if not row["left"]
            else "?"
            if pd.isna(row["hours left"])
            else (f"{row['hours left']:.1f}")
        )
        lines.append(
            f"{method:<{width}} {row['jobs']:>5} {row['finished']:>9} {row['other code']:>11} "
            f"{row['left']:>5} {minutes:>10} {hours:>11}"
        )
    left = table[table["left"] > 0]
    known = left["hours left"].dropna()
    unknown = int(left.loc[left["hours left"].isna(), "left"].sum())
    total = f"left: {int(left['left'].sum())} jobs, {known.sum():.1f} h of runs"
    total += f" ({unknown} jobs of methods never run: not counted)" if unknown else ""
    total += f"; with {workers} workers about {known.sum() / workers:.1f} h" if workers > 1 else ""
    lines.append(total)
    if table["borrowed"].any():
        lines.append("*: measured in the store's other sweeps (other launchers and threads)")
    if table["other code"].any():
        lines.append(
            "other code: FINISHED with these settings and data at another code digest; this "
            "checkout's sweep would run them again (run it from that commit's worktree)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from tiedae.cli import USER_ERRORS
    from tiedae.compose import compose_config
    from tiedae.config import ConfigError
    from tiedae.tracking import Tracker, TrackingSettings

    parser = argparse.ArgumentParser(prog="python -m tiedae.plan", description=__doc__)
    parser.add_argument("overrides", nargs="+", help="the sweep's command line: experiment=...")
    args = parser.parse_args(argv)
    experiments = [o.split("=", 1)[1] for o in args.overrides if o.startswith("experiment=")]
    others = [o for o in args.overrides if not o.startswith("experiment=")]
    try:
        if len(experiments) != 1:
            raise ConfigError("name the sweep's experiment once, e.g. experiment=reproduction")
        cfg = compose_config(args.overrides, drop_grids=True, hydra_config=True)
        sweep = cfg.sweep.get("name")
        if not sweep:
            raise ConfigError(f"experiment={experiments[0]} names no sweep (sweep.name)")
        jobs = planned_jobs(experiments[0], others)
        tracker = Tracker(TrackingSettings.from_config(cfg.tracking)).connect()
        finished = tracker.jobs_frame(sweep)
        everywhere = tracker.jobs_frame(None)
    except USER_ERRORS as error:
        print(f"tiedae: error: {error}", file=sys.stderr)
        return 2
    table = plan_table(job_states(jobs, finished), durations(finished), durations(everywhere))
    workers = int(cfg.hydra.launcher.get("n_jobs") or 1)
    print(render(table, sweep, workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
