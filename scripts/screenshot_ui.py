"""Remake docs/mlflow-ui-runs.png: the MLflow UI comparing the digits smoke sweep's runs.

    .venv/bin/python scripts/screenshot_ui.py                  # runs the smoke sweep (~2 min)
    .venv/bin/python scripts/screenshot_ui.py --store sqlite:////tmp/x/mlflow.db --sweep smoke

Without ``--store`` it runs ``tiedae experiment=sweep_smoke`` (digits, 16 jobs) into a
throwaway sqlite store, then photographs its runs table with headless Chromium (Debian:
``apt-get install chromium``) through ``tiedae.ui.screenshot``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tiedae.ui import screenshot  # noqa: E402

# the smoke sweep with fewer epochs and one thread a job, as tests/clirun.py FAST
FAST = ["pretrain.epochs=2", "classifier.epochs=3", "runtime.threads=1", "runtime.verbose=0"]


def smoke_sweep(folder: Path) -> str:
    """Run the digits smoke sweep into a sqlite store under ``folder``; its URI."""
    uri = f"sqlite:///{folder}/mlflow.db"
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    subprocess.run(
        [sys.executable, "-m", "tiedae", "experiment=sweep_smoke", *FAST, f"tracking.uri={uri}",
         f"tracking.artifact_dir={folder}/artifacts", f"hydra.sweep.dir={folder}/multirun"],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return uri


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", help="a tracking URI that holds the sweep (default: run it)")
    parser.add_argument("--sweep", default="smoke", help="the sweep whose jobs are shown")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "mlflow-ui-runs.png")
    parser.add_argument(
        "--chart-out",
        type=Path,
        default=ROOT / "docs" / "mlflow-ui-chart.png",
        help="the same view's chart: mean test accuracy against labeled count",
    )
    parser.add_argument("--text", type=Path, help="also write the pages' text here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        uri = args.store or smoke_sweep(Path(folder))
        path, text = screenshot(uri, args.out, args.sweep, chart_out=args.chart_out)
        print(f"screenshot: {path}")
        if args.text:
            args.text.write_text(text)


if __name__ == "__main__":
    main()
