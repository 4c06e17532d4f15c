"""Does the ladder learn as well in bfloat16? ``ladder_tied`` under
``runtime.precision=mixed_bfloat16`` against the study's float32 runs, paired by seed (the same
labeled images), at one labeled count.

The float32 rows are the study's (sweep ``semi_supervised``); the bfloat16 rows are sweep
``semi_supervised_precision``, which also reruns the float32 row on seed 1 at its own commit:
the check that the float32 code is the study's (equal test accuracy to the last digit).

    PYTHONPATH=. .venv/bin/python experiments/semi_supervised/precision/compare.py \
        --uri sqlite:////work/wt/study/mlflow.db [--labels 500] [--method ladder_tied]
"""

from __future__ import annotations

import argparse

import pandas as pd
from hydra import compose, initialize_config_dir

from tiedae.config import CONFIG_DIR, method_name
from tiedae.report import at_labels, tidy_runs
from tiedae.report.stats import paired_test
from tiedae.tracking import Tracker, TrackingSettings

MIXED = "runtime.precision=mixed_bfloat16"


def row_names(method: str) -> tuple[str, str]:
    """The table rows of ``method`` in float32 and in mixed bfloat16, as runs name them."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        full = compose("config", overrides=[f"method={method}"])
        mixed = compose("config", overrides=[f"method={method}", MIXED])
    return method_name(full), method_name(mixed)


def runs(tracker: Tracker, sweep: str, labels: int) -> pd.DataFrame:
    frame = at_labels(tracker.jobs_frame(sweep), [labels])
    tidy = tidy_runs(frame)[["method", "seed", "accuracy", "commit"]]
    tidy["best_epoch"] = frame["metrics.clf/best_epoch"].to_numpy()
    tidy["minutes"] = ((frame.end_time - frame.start_time).dt.total_seconds() / 60).to_numpy()
    return tidy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument("--method", default="ladder_tied")
    args = parser.parse_args()
    tracker = Tracker(TrackingSettings(uri=args.uri)).connect()
    study = runs(tracker, "semi_supervised", args.labels)
    precision = runs(tracker, "semi_supervised_precision", args.labels)
    full_row, mixed_row = row_names(args.method)
    full = study[study.method == full_row].set_index("seed")
    mixed = precision[precision.method == mixed_row].set_index("seed")
    seeds = sorted(set(full.index) & set(mixed.index))
    print(f"{args.labels} labels, budget protocol; {full_row}; test accuracy (%) per seed\n")
    print("| seed | float32 | bfloat16 | best epoch float32 / bfloat16 | run minutes (shared "
          "cores) float32 / bfloat16 |")  # fmt: skip
    print("|---|---|---|---|---|")
    for seed in seeds:
        a, b = full.loc[seed], mixed.loc[seed]
        print(
            f"| {seed} | {100 * a.accuracy:.1f} | {100 * b.accuracy:.1f} | "
            f"{a.best_epoch:.0f} / {b.best_epoch:.0f} | {a.minutes:.1f} / {b.minutes:.1f} |"
        )
    test = paired_test(100 * (mixed.accuracy[seeds] - full.accuracy[seeds]))
    print(
        f"\nbfloat16 - float32 over seeds {','.join(map(str, seeds))}: "
        f"{test['mean_diff']:+.2f} points (95% CI {test['ci_low']:+.2f}, {test['ci_high']:+.2f}), "
        f"paired t-test p = {test['t_p']:.2f}"
    )
    print("\ncommit check (the float32 row rerun in the precision sweep):")
    for _, run in precision[precision.method == full_row].iterrows():
        for _, first in study[(study.method == full_row) & (study.seed == run.seed)].iterrows():
            same = "same" if first.accuracy == run.accuracy else "DIFFERENT"
            print(
                f"  seed {run.seed}: {first.accuracy:.4f} at {first.commit[:7]}, "
                f"{run.accuracy:.4f} at {run.commit[:7]} ({same})"
            )


if __name__ == "__main__":
    main()
