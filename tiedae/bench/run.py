"""The ``run`` stage: one default ``tiedae`` run as a user runs it, for its peak memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from tiedae.bench.child import measure_cli
from tiedae.bench.measure import Stage, register
from tiedae.bench.summary import Report, markdown_table

if TYPE_CHECKING:
    from tiedae.bench.measure import Measurement, Options, Say

HELP = """\
- ``run``: one default ``tiedae`` run (its pretraining shortened to ``--epochs``): peak memory."""


def plan(options: Options, say: Say) -> Iterator[Measurement]:
    say(f"one default run, pretrain.epochs={options.epochs}")
    overrides = [f"data={options.data}", f"pretrain.epochs={options.epochs}"]
    yield measure_cli("run", "default", [*overrides, *options.overrides], options.timeout)


def section(report: Report) -> list[str]:
    runs, options = report.lines("run"), report.options
    if not runs:
        return []
    return [
        f"## One default run (`tiedae data={options.data} pretrain.epochs={options.epochs}`)\n",
        markdown_table(
            ["wall s", "CPU s", "peak RSS MiB"],
            [[f"{s['seconds']:.1f}", f"{s['cpu_seconds']:.1f}", f"{s['peak_rss_mib']:,.0f}"]
             for s in runs],
        ),
    ]  # fmt: skip


register(Stage("run", 40, HELP, plan=plan, section=section))
