"""VAT's ε per labeled count, chosen from validation accuracy only (issue 29).

    .venv/bin/python scripts/vat_epsilon.py                       # the default store
    .venv/bin/python scripts/vat_epsilon.py tracking.uri=sqlite:////path/to/mlflow.db

For each row (``vat``, ``vat+entropy``) and labeled count of the ``vat_epsilon`` sweep
(``tiedae experiment=vat_epsilon``): the budget's validation accuracy of the kept weights
(``clf/val_accuracy_at_best``, mean over seeds) at each ε, and the best ε (a tie: the smaller).
Test accuracy is dropped before anything is read. Copy each count's ε into
conf/objective/vat.yaml's ``by_labels`` (VAT+EntMin inherits it; where the two rows disagree,
each row's own choice goes in ``conf/objective/vat_entmin.yaml``'s ``by_labels``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VALIDATION = "metrics.clf/val_accuracy_at_best"
COLUMNS = {"tags.method": "method", "params.labels.n": "labels",
           "params.objective.epsilon": "epsilon", VALIDATION: "val_accuracy"}  # fmt: skip


def validation_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, labels, ε): the mean validation accuracy, its seeds, and
    ``chosen`` on the best ε of each (method, labels). Reads no test column."""
    runs = runs[[c for c in runs.columns if c in COLUMNS]].rename(columns=COLUMNS)
    runs = runs.astype({"labels": int, "epsilon": float, "val_accuracy": float})
    table = (
        runs.groupby(["method", "labels", "epsilon"])["val_accuracy"]
        .agg(val_accuracy="mean", seeds="count")
        .reset_index()
    )
    best = table.sort_values(["val_accuracy", "epsilon"], ascending=[False, True])
    chosen = best.groupby(["method", "labels"]).head(1).index
    table["chosen"] = table.index.isin(chosen)
    return table


def main(argv: list[str] | None = None) -> int:
    from hydra import compose, initialize_config_dir

    from tiedae.config import CONFIG_DIR
    from tiedae.tracking import Tracker, TrackingSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="vat_epsilon")
    parser.add_argument("overrides", nargs="*", help="e.g. tracking.uri=sqlite:///...")
    args = parser.parse_args(argv)
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=args.overrides)
    tracker = Tracker(TrackingSettings.from_config(cfg.tracking)).connect()
    runs = tracker.jobs_frame(args.sweep)
    if runs.empty:
        print(f"no FINISHED runs in sweep {args.sweep!r}", file=sys.stderr)
        return 2
    table = validation_table(runs)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
