"""``python -m tiedae.bench``: the options (``--help`` lists the registered stages) and the
run: each selected stage's measurements, then ``README.md``, the csv files and any files a
stage writes itself; ``--worker`` runs one stage's worker, in the process a measurement is."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tiedae.bench.measure import (
    RESULT_PREFIX,
    STAGE_REGISTRY,
    Options,
    measurements,
    stage_names,
    stages,
)
from tiedae.bench.write import machine, report, uptime, write_results
from tiedae.config import PROJECT_ROOT

TITLE = (
    "``make bench``: tiedae's training path against the seed's plain Keras ``fit``, side by side."
)
USAGE = """
    python -m tiedae.bench                       # the default (about 16 minutes on 2 idle cores)
    python -m tiedae.bench --quick               # a few minutes: 1 epoch, 1 repetition, no sweep
    python -m tiedae.bench --epochs 10 --repeats 3 --stages pretrain
"""
PROCESSES = """
Every measurement runs in its own process, so its peak RSS (``ru_maxrss``) is its own and no
stage warms another. Wall time is what a user waits; CPU time (user + system) is the work done,
less sensitive to other load on a shared machine. Results go to ``experiments/bench/``
(``--out``): ``measurements.csv`` (every process), ``summary.csv`` and ``README.md``.
"""


def epilog() -> str:
    """--help's text below the options: the usage, every stage's item, the processes."""
    items = "\n".join(stage.help for stage in stages())
    return f"{USAGE}\nStages (``--stages``, default all):\n\n{items}\n{PROCESSES}"


def parse_options(argv: Sequence[str] | None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m tiedae.bench", description=TITLE,
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog(),
    )  # fmt: skip
    parser.add_argument("--data", choices=("fashion_mnist", "digits"), default="fashion_mnist")
    parser.add_argument("--epochs", type=int, help="autoencoder epochs (default 5; --quick: 1)")
    parser.add_argument("--repeats", type=int, help="repetitions (default 2; --quick: 1)")
    parser.add_argument(
        "--classifier-epochs", type=int, nargs=2, metavar=("AT_500", "AT_ALL"),
        help="classifier epochs at 500 and at all labels (default 20 2)",
    )  # fmt: skip
    names = stage_names()
    parser.add_argument("--stages", default=None,
                        help=f"comma-separated, from {','.join(names)} (default all; "
                             "--quick: all but sweep)")  # fmt: skip
    parser.add_argument("--models", default="tied,untied", help="comma-separated autoencoders "
                        "for the pretrain stage (default both)")  # fmt: skip
    parser.add_argument("--objectives", default=",".join(Options.objectives),
                        help="comma-separated conf/method names for the objective stage (all: "
                             "every row that picks an objective)")  # fmt: skip
    parser.add_argument("--objective-steps", type=int, help="steps timed per objective "
                        "(default 550, one epoch; --quick: 50)")  # fmt: skip
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="a tiedae config override for tiedae's path, e.g. --set runtime.threads=1",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a short version (a few "
                        "minutes): 1 epoch, 1 repetition, no sweep")  # fmt: skip
    parser.add_argument("--job-labels", default=",".join(Options.job_labels),
                        help="the jobs stage's labeled counts (default 100,500,1000)")  # fmt: skip
    parser.add_argument("--job-seeds", default=",".join(map(str, Options.job_seeds)),
                        help="the jobs stage's seeds (default 1,2)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Options.out, help="results folder")
    parser.add_argument("--timeout", type=float, default=Options.timeout, help="s per process")
    parser.add_argument("--worker", nargs=2, metavar=("STAGE", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    quick_stages = tuple(stage.name for stage in stages() if stage.quick)
    chosen = tuple(args.stages.split(",")) if args.stages else quick_stages if quick else names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"--stages: {', '.join(unknown)} unknown; choose from {', '.join(names)}")
    models = tuple(args.models.split(","))
    if not models or set(models) - {"tied", "untied"}:
        parser.error(f"--models={args.models}: choose from tied, untied (comma-separated)")
    objectives = tuple(args.objectives.split(","))
    if objectives == ("all",):
        from tiedae.objectives import objective_methods

        objectives = tuple(objective_methods())
    methods = {path.stem for path in (PROJECT_ROOT / "conf" / "method").glob("*.yaml")}
    if set(objectives) - methods:
        parser.error(f"--objectives: {', '.join(sorted(set(objectives) - methods))} unknown; "
                     f"see conf/method/")  # fmt: skip
    objective_steps = args.objective_steps or (50 if quick else Options.objective_steps)
    if objective_steps < 1:
        parser.error(f"--objective-steps={objective_steps} must be at least 1")
    for name in ("epochs", "repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name}={value} must be at least 1")
    options = Options(
        data=args.data,
        epochs=args.epochs or (1 if quick else Options.epochs),
        repeats=args.repeats or (1 if quick else Options.repeats),
        classifier_epochs=tuple(args.classifier_epochs or ((2, 1) if quick else (20, 2))),
        stages=chosen, models=models, objectives=objectives,
        objective_steps=objective_steps, overrides=tuple(args.overrides), out=args.out,
        timeout=args.timeout, job_labels=tuple(args.job_labels.split(",")),
        job_seeds=tuple(int(seed) for seed in args.job_seeds.split(",")),
    )  # fmt: skip
    return options, args


def main(argv: Sequence[str] | None = None) -> int:
    options, args = parse_options(argv)
    if args.worker:
        stage, spec = args.worker
        worker = STAGE_REGISTRY[stage].worker
        assert worker is not None, f"the {stage} stage has no worker"
        result = worker(json.loads(spec))
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    command = shlex.join(
        ["python", "-m", "tiedae.bench", *(sys.argv[1:] if argv is None else argv)]
    )
    info = {**machine(), "date": datetime.datetime.now().isoformat(timespec="seconds")}
    from tiedae.provenance import git_state

    state = git_state()
    info["commit"] = state["commit"][:10] + (" (dirty)" if state["dirty"] == "true" else "")
    load_start = os.getloadavg()[0]
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[bench {time.perf_counter() - started:6.0f}s] {message}", flush=True)

    info["uptime"] = uptime()
    selected = [stage for stage in stages() if stage.name in options.stages]
    writers = [stage.write for stage in selected if stage.write is not None]
    if len(writers) == len(selected):  # alone (--stages jobs): the other stages' files stay
        for write in writers:
            write(options, say, info)
        return 0
    with contextlib.ExitStack() as around:  # e.g. the pretrain stage's matmul peak
        for stage in selected:
            if stage.around is not None:
                around.enter_context(stage.around(say, info))
        rows = list(measurements(options, say))
    info["load"] = f"{load_start:.1f} and {os.getloadavg()[0]:.1f}"
    markdown = report(options, rows, command, info)
    paths = write_results(options.out, rows, markdown, command, info)
    for write in writers:  # e.g. the jobs stage's jobs.csv and jobs.md
        write(options, say, info)
    print("\n" + markdown)
    print(f"written: {', '.join(str(p) for p in paths)}  ({time.perf_counter() - started:.0f} s)")
    return 0
