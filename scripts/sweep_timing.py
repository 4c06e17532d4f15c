"""Read a sweep's timing back from its store (issue 32, experiments/bench/jobs/sweeps.csv):
the parent run's length, when the first job started, the jobs' and pretrainings' MLflow-run
time summed, and the median job per labeled count.

    python scripts/sweep_timing.py path/to/mlflow.db [more stores...]
"""

from __future__ import annotations

import sqlite3
import statistics
import sys

COUNTS = ("100", "500", "1000", "5000", "all")


def timing(db: str) -> dict[str, str]:
    con = sqlite3.connect(db)
    runs = con.execute(
        "select r.run_uuid, r.start_time, r.end_time, t.value from runs r "
        "join tags t on t.run_uuid = r.run_uuid and t.key = 'tiedae.role'"
    ).fetchall()
    labels = dict(con.execute("select run_uuid, value from tags where key = 'labels'"))
    seconds = {run: (end - start) / 1000 for run, start, end, _ in runs}
    by_role: dict[str, list[str]] = {}
    for run, _, _, role in runs:
        by_role.setdefault(role, []).append(run)
    (parent,) = by_role["sweep"]
    parent_start = next(start for run, start, _, _ in runs if run == parent)
    jobs = by_role["job"]
    first = min(start for run, start, _, _ in runs if run in jobs)
    row = {
        "store": db,
        "parent_s": f"{seconds[parent]:.1f}",
        "first_job_s": f"{(first - parent_start) / 1000:.1f}",
        "jobs": str(len(jobs)),
        "jobs_sum_s": f"{sum(seconds[run] for run in jobs):.1f}",
        "pretrain_sum_s": f"{sum(seconds[run] for run in by_role.get('pretrain', [])):.1f}",
    }
    for count in COUNTS:
        values = [seconds[run] for run in jobs if labels.get(run) == count]
        row[f"median_{count}"] = f"{statistics.median(values):.2f}" if values else ""
    return row


if __name__ == "__main__":
    rows = [timing(db) for db in sys.argv[1:]]
    print(",".join(rows[0]))
    for row in rows:
        print(",".join(row.values()))
