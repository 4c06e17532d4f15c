"""Does a prediction term help a reconstruction objective? Each row with and without
``objective.penalty``, paired by seed (same labeled images), at one labeled count.

The plain rows are the study's (sweep ``semi_supervised``); the rows with a penalty are sweep
``semi_supervised_penalties``, which also reruns each plain row on seed 1 at its own commit: the
check that the plain rows' code is the same (equal test accuracy to the last digit).

    PYTHONPATH=. .venv/bin/python experiments/semi_supervised/penalties/compare.py \
        --uri sqlite:////work/wt/study/mlflow.db [--labels 100] [--penalty entropy]
"""

from __future__ import annotations

import argparse

import pandas as pd
from hydra import compose, initialize_config_dir

from tiedae.config import CONFIG_DIR, method_name
from tiedae.report import at_labels, tidy_runs
from tiedae.report.stats import paired_test
from tiedae.tracking import Tracker, TrackingSettings

METHODS = ("ladder_tied", "joint_tied")


def row_names(method: str, penalty: str) -> tuple[str, str]:
    """The table rows of ``method`` without and with ``penalty``, as runs name them."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        plain = compose("config", overrides=[f"method={method}"])
        added = compose("config", overrides=[f"method={method}", f"objective.penalty={penalty}"])
    return method_name(plain), method_name(added)


def accuracies(tracker: Tracker, sweep: str, labels: int) -> pd.DataFrame:
    tidy = tidy_runs(at_labels(tracker.jobs_frame(sweep), [labels]))
    return tidy[["method", "seed", "accuracy", "commit"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--penalty", default="entropy")
    args = parser.parse_args()
    tracker = Tracker(TrackingSettings(uri=args.uri)).connect()
    study = accuracies(tracker, "semi_supervised", args.labels)
    added = accuracies(tracker, "semi_supervised_penalties", args.labels)
    print(f"{args.labels} labels, budget protocol; test accuracy (%) per seed\n")
    print("| row | seeds | plain | + " + args.penalty + " | difference (95% CI) | t-test p |")
    print("|---|---|---|---|---|---|")
    rows = [row_names(method, args.penalty) for method in METHODS]
    for row, row_with_penalty in rows:
        plain = study[study.method == row].set_index("seed").accuracy
        other = added[added.method == row_with_penalty].set_index("seed").accuracy
        seeds = sorted(set(plain.index) & set(other.index))
        test = paired_test(100 * (other[seeds] - plain[seeds]))
        cells = " / ".join(f"{100 * other[s]:.1f}" for s in seeds)
        base = " / ".join(f"{100 * plain[s]:.1f}" for s in seeds)
        print(
            f"| {row} | {','.join(map(str, seeds))} | {base} | {cells} | "
            f"{test['mean_diff']:+.1f} ({test['ci_low']:+.1f}, {test['ci_high']:+.1f}) | "
            f"{test['t_p']:.2f} |"
        )
    print("\ncommit check (plain rows rerun in the penalties sweep):")
    for row, _ in rows:
        rerun = added[added.method == row]
        for _, run in rerun.iterrows():
            original = study[(study.method == row) & (study.seed == run.seed)]
            for _, first in original.iterrows():
                same = "same" if first.accuracy == run.accuracy else "DIFFERENT"
                print(
                    f"  {row} seed {run.seed}: {first.accuracy:.4f} at {first.commit[:7]}, "
                    f"{run.accuracy:.4f} at {run.commit[:7]} ({same})"
                )


if __name__ == "__main__":
    main()
