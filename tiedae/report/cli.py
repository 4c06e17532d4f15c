"""``python -m tiedae.report`` (``make table``): the command line of the report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from tiedae.report import published
from tiedae.report.axes import AXES
from tiedae.report.runs import at_labels, at_seeds, deduplicate, tidy_runs
from tiedae.report.write import summary_note, write_report


def main(argv: list[str] | None = None) -> int:
    from tiedae.compose import compose_config
    from tiedae.config import PROJECT_ROOT, ConfigError
    from tiedae.tracking import NOTE, SWEEP_COMMANDS, Tracker, TrackingError, TrackingSettings

    parser = argparse.ArgumentParser(prog="tiedae-table", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sweep", metavar="NAME[,NAME...]",
        help="sweep name (default: sweep.name of the overrides, else the latest); several, "
             "comma-separated, table their runs together (e.g. one protocol each)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="folder (default: experiments/<sweep>)")
    parser.add_argument(
        "--published", type=Path, metavar="CSV",
        help="published figures to compare with (columns method, n_labels, accuracy in %%, "
             "source), e.g. experiments/reproduction/published.csv",
    )  # fmt: skip
    parser.add_argument(
        "--axis", choices=sorted(AXES), default="labels",
        help="what the columns count: labels (labels.n), pool (unlabeled.n: images in the "
             "unlabeled pool) or mismatch (unlabeled.mismatch); runs that read no pool stand "
             "at every value of a pool axis",
    )  # fmt: skip
    parser.add_argument(
        "--labels", type=_numbers("labeled counts, e.g. 500 or 100,500"), metavar="N[,N...]",
        help="only these labeled counts, e.g. 500 or 100,500 (a count still being run left out)",
    )  # fmt: skip
    parser.add_argument(
        "--seeds", type=_numbers("seeds, e.g. 1,2,3", least=0), metavar="S[,S...]",
        help="only these seeds, e.g. 1,2,3 (seeds still being run left out)",
    )  # fmt: skip
    parser.add_argument(
        "overrides", nargs="*",
        help="the sweep's overrides, e.g. experiment=benchmark tracking=server (grids ignored)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        figures = published.read_published(args.published) if args.published else None
    except published.PublishedError as error:
        print(f"tiedae-table: error: {error}", file=sys.stderr)
        return 2
    # A sweep's own command line works here too: its grids (a=1,2) are dropped, the rest
    # (experiment, sweep.name, tracking) say which sweep and which store.
    try:
        cfg = compose_config(args.overrides, drop_grids=True)
        tracker = Tracker(TrackingSettings.from_config(cfg.tracking)).connect()
    except (ConfigError, TrackingError) as error:
        print(f"tiedae-table: error: {error}", file=sys.stderr)
        return 2
    sweeps = tracker.sweep_names()
    sweep = args.sweep or cfg.sweep.get("name") or (sweeps[0] if sweeps else None)
    names = [name.strip() for name in (sweep or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in sweeps]
    if unknown or not names:
        known = ", ".join(dict.fromkeys(sweeps)) or "none yet; run make sweep"
        missing = ", ".join(map(repr, unknown)) or "given"
        print(f"tiedae-table: error: no sweep named {missing}; known: {known}", file=sys.stderr)
        return 2
    sweep = ",".join(names)
    runs = pd.concat([tracker.jobs_frame(name) for name in names], ignore_index=True)
    runs = at_labels(runs, args.labels) if args.labels else runs
    axis = AXES[args.axis]
    tidy = tidy_runs(at_seeds(runs, args.seeds) if args.seeds else runs, axis)
    if tidy.empty:
        counts = f" at labels {args.labels}" if args.labels else ""
        counts += f" of seeds {args.seeds}" if args.seeds else ""
        print(f"tiedae-table: error: sweep {sweep!r} has no FINISHED runs{counts} yet",
              file=sys.stderr)  # fmt: skip
        return 2
    folder = args.out or PROJECT_ROOT / "experiments" / "+".join(names)
    command = " ".join(["python -m tiedae.report", *(argv if argv is not None else sys.argv[1:])])
    parents = [p for p in (tracker.sweep_parent(name, create=False) for name in names) if p]
    commands = [
        line for p in parents for line in tracker.run_tags(p).get(SWEEP_COMMANDS, "").splitlines()
    ]  # fmt: skip
    paths = write_report(tidy, folder, sweep, command, commands, figures, axis)
    if parents:
        from tiedae.tracking import RunLog

        for parent in parents:
            report_log = RunLog(tracker.client, parent)
            for path in paths:
                report_log.log_artifact(path, "report")
            report_log.set_tags({NOTE: summary_note(sweep, (folder / "table.md").read_text())})
    n_kept = len(deduplicate(tidy)[0])
    print(f"sweep {sweep}: {n_kept} runs; test accuracy (%), mean ± std over seeds\n")
    print((folder / "table.md").read_text())
    print(f"written to {folder}")
    return 0


def _numbers(what: str, least: int = 1) -> Callable[[str], list[int]]:
    """An argparse type: comma-separated integers >= ``least``, or an error naming ``what``."""

    def parse(text: str) -> list[int]:
        try:
            numbers = [int(part) for part in text.split(",")]
        except ValueError:
            numbers = []
        if not numbers or min(numbers) < least:
            raise argparse.ArgumentTypeError(f"{text!r}: give {what}")
        return numbers

    return parse
