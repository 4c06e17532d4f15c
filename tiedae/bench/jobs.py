"""The ``jobs`` stage: where a sweep job's time goes (issue 32). The default study's job shapes
run one after the other in one process, each job's wall time split into phases; written to
``jobs.csv`` and ``jobs.md``."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from tiedae.bench.child import run_worker
from tiedae.bench.measure import Options, Say, Stage, register
from tiedae.bench.summary import markdown_table
from tiedae.bench.write import uptime

HELP = """\
- ``jobs``: where a sweep job's time goes (issue 32). The default study's job shapes
  (``experiment=sweep``: every method at ``--job-labels`` for ``--job-seeds``) run one after
  the other in one process, as a sweep worker runs them, into a throw-away store; each job's
  wall time is split into phases (``tiedae.timing``: load data, build, load cache, pretrain,
  train, evaluate, log model, log figures, other logging, and the rest) beside its MLflow-run
  time (end - start of its run, what issue 32 counts). Written to ``jobs.csv`` and ``jobs.md``
  (alone: ``--stages jobs``, which leaves the other files as they are)."""


def job_shapes(options: Options, folder: str) -> list:
    """The composed config of each timed job: the default study's methods at the stage's
    labeled counts and seeds, in the sweep's order, into the store in ``folder``."""
    from hydra import compose, initialize_config_dir

    from tiedae.config import CONFIG_DIR

    store = [f"tracking.uri=sqlite:///{folder}/mlflow.db", f"tracking.artifact_dir={folder}/art"]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        grid = compose("config", ["experiment=sweep"], return_hydra_config=True)
        methods = str(grid.hydra.sweeper.params.method).split(",")
        return [
            compose("config", ["experiment=sweep", f"seed={seed}", f"method={method}",
                               f"labels.count={labels}", *store, *options.overrides])
            for seed in options.job_seeds for method in methods for labels in options.job_labels
        ]  # fmt: skip


def jobs_worker(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the jobs stage's jobs one after the other in this process; a record per job: its
    method, labels, seed, wall seconds, MLflow-run seconds, pretraining cache tag and phases."""
    from tiedae import timing
    from tiedae.config import method_name, run_name
    from tiedae.pipeline import run_experiment
    from tiedae.tracking import Tracker, TrackingSettings

    options = Options(**{key: tuple(value) if isinstance(value, list) else value
                         for key, value in spec["options"].items()})  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tiedae-bench-jobs-") as folder:
        records = []
        for cfg in job_shapes(options, folder):
            timing.reset()
            started = time.perf_counter()
            run_experiment(cfg)
            seconds = time.perf_counter() - started
            phases = timing.phases()
            phases["rest"] = max(0.0, seconds - sum(phases.values()))
            records.append({
                "name": run_name(cfg),
                "method": method_name(cfg),
                "labels": str(cfg.labels.count), "seed": cfg.seed,
                "seconds": seconds, **{f"phase/{k}": v for k, v in phases.items()},
            })  # fmt: skip
        tracker = Tracker(TrackingSettings.from_config(cfg.tracking)).connect()
        frame = tracker.jobs_frame(cfg.sweep.name)
        run_seconds = {
            row["tags.mlflow.runName"]: (row["end_time"] - row["start_time"]).total_seconds()
            for _, row in frame.iterrows()
        }
        cache = dict(zip(frame["tags.mlflow.runName"], frame["tags.pretrain.cache"], strict=True))
    for record in records:
        record["run_seconds"] = run_seconds.get(record["name"], float("nan"))
        tag = cache.get(record["name"])
        record["pretrain_cache"] = tag if isinstance(tag, str) and tag else "n/a"
    return records


def measure_jobs(options: Options, timeout: float) -> list[dict[str, Any]]:
    spec = {"options": {key: value for key, value in asdict(options).items() if key != "out"}}
    records, _ = run_worker("jobs", spec, timeout, "bench jobs worker")
    return records


def jobs_breakdown(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per labeled count, the median seconds of each phase over the jobs that loaded their
    autoencoder from the cache or pretrain nothing (the sweep's common case: 90 of 125 jobs
    hit, 25 are scratch), and of all jobs' MLflow-run time."""
    import pandas as pd

    frame = pd.DataFrame(records).fillna({c: 0.0 for c in _phase_columns(records)})
    common = frame[frame["pretrain_cache"].isin(["hit", "n/a"])]
    rows = []
    for labels, group in common.groupby("labels", sort=False):
        row = {"labels": labels, "jobs": len(group),
               "run_seconds": group["run_seconds"].median(),
               "seconds": group["seconds"].median()}  # fmt: skip
        row.update({c: group[c].median() for c in _phase_columns(records)})
        row["all_jobs_run_seconds"] = frame[frame["labels"] == labels]["run_seconds"].median()
        rows.append(row)
    return rows


def _phase_columns(records: Sequence[dict[str, Any]]) -> list[str]:
    from tiedae.timing import PHASES

    present = {key for record in records for key in record if key.startswith("phase/")}
    return [f"phase/{name}" for name in (*PHASES, "rest") if f"phase/{name}" in present]


def jobs_report(options: Options, records: Sequence[dict[str, Any]], info: dict[str, str]) -> str:
    rows = jobs_breakdown(records)
    phases = _phase_columns(records)
    names = [column.split("/", 1)[1] for column in phases]
    header = ["labels", "jobs", "MLflow-run s", "job wall s", *names, "all jobs' MLflow-run s"]
    body = [[row["labels"], row["jobs"], f"{row['run_seconds']:.2f}", f"{row['seconds']:.2f}",
             *(f"{row[column]:.2f}" for column in phases),
             f"{row['all_jobs_run_seconds']:.2f}"] for row in rows]  # fmt: skip
    return "\n".join(
        [
            "## Where a sweep job's time goes (issue 32)\n",
            f"- date: {info['date']}, commit {info['commit']}; load: {info['uptime']}",
            f"- jobs: `experiment=sweep`'s methods x labels.count={','.join(options.job_labels)} x "
            f"seed={','.join(map(str, options.job_seeds))}, one after the other in one process (a "
            "sweep worker's life), one TensorFlow thread, a throw-away sqlite store",
            "- median seconds per job over the jobs whose autoencoder came from the cache or that "
            "pretrain nothing (the sweep's common case); *rest*: the job's wall time outside the "
            "timed phases (config, keys, Python); the last column: every job, pretrainings "
            "included\n",
            markdown_table(header, body),
            "",
        ]
    )


def write_jobs(options: Options, say: Say, info: dict[str, str]) -> int:
    """Run the jobs stage; write ``jobs.csv`` (a row per job) and ``jobs.md`` to ``--out``."""
    import pandas as pd

    say(f"jobs: the default study's shapes at labels {','.join(options.job_labels)}")
    records = measure_jobs(options, options.timeout)
    info = {**info, "uptime": f"{info['uptime']} at start, {uptime()} at end"}
    markdown = jobs_report(options, records, info)
    options.out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(records)
    for key, value in info.items():
        frame[key] = value
    frame.to_csv(options.out / "jobs.csv", index=False)
    (options.out / "jobs.md").write_text(markdown)
    print("\n" + markdown)
    print(f"written: {options.out / 'jobs.csv'}, {options.out / 'jobs.md'}")
    return 0


register(Stage("jobs", 60, HELP, worker=jobs_worker, write=write_jobs, quick=False))
