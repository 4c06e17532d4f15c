"""The ``sweep`` stage: the smoke sweep with the pretraining cache and without, and what the
cache saves in the default study (its grid, the pretraining measured)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from tiedae.bench.child import measure_cli
from tiedae.bench.measure import Stage, register
from tiedae.bench.paths import TIEDAE_PATH
from tiedae.bench.summary import Report, markdown_table, median

if TYPE_CHECKING:
    from tiedae.bench.measure import Measurement, Options, Say

HELP = """\
- ``sweep``: the smoke sweep (``experiment=sweep_smoke``) with the pretraining cache, and with
  ``pretrain.cache=false`` (every job pretrains its own autoencoder)."""


def plan(options: Options, say: Say) -> Iterator[Measurement]:
    for variant, extra in (("cache on", []), ("cache off", ["pretrain.cache=false"])):
        say(f"smoke sweep, pretraining {variant}")
        overrides = ["experiment=sweep_smoke", "runtime.verbose=0", *options.overrides, *extra]
        yield measure_cli("sweep", variant, overrides, options.timeout)


def sweep_jobs(experiment: str) -> list:
    """The composed config of every job in a sweep experiment's grid (``a,b,c`` lists)."""
    from tiedae.compose import grid_configs

    return grid_configs(experiment)


def study_estimate(options: Options, rows: Sequence[Measurement]) -> str:
    """What the cache saves in the default study, from its grid and the pretraining measured.

    The smoke sweep's autoencoders (digits, 2 epochs) cost about a second each, so the cache
    barely shows there; the default study's are the seed's, 10 epochs on Fashion-MNIST.
    """
    from tiedae.config import is_pretrained, pretrain_settings, settings_key

    jobs = sweep_jobs("sweep")
    pretraining = [job for job in jobs if is_pretrained(job)]
    distinct = len({settings_key(pretrain_settings(job)) for job in pretraining})
    epochs, data = pretraining[0].pretrain.epochs, pretraining[0].data.name
    line = (
        f"The default study (`experiment=sweep`): {len(pretraining)} of its {len(jobs)} jobs "
        f"pretrain, sharing {distinct} distinct autoencoders ({epochs} epochs on {data}); "
        f"with the cache it trains {distinct}, without it {len(pretraining)}."
    )
    measured = [row.seconds / options.epochs for row in rows
                if row.stage == "pretrain" and row.path == TIEDAE_PATH]  # fmt: skip
    if measured and options.data == data:
        saved = (len(pretraining) - distinct) * epochs * median(measured)
        line += (
            f" At the {median(measured):.1f} s an epoch measured above, the cache saves about "
            f"{saved / 60:.0f} minutes of pretraining (an estimate, not a measurement)."
        )
    return line + "\n"


def section(report: Report) -> list[str]:
    sweeps, ratio = report.lines("sweep"), report.ratios("sweep")
    if not sweeps:
        return []
    return [
        "## The smoke sweep (`tiedae experiment=sweep_smoke`), whole process\n",
        markdown_table(
            ["pretraining", "wall s", "CPU s", "peak RSS MiB"],
            [[s["variant"], f"{s['seconds']:.1f}", f"{s['cpu_seconds']:.1f}",
              f"{s['peak_rss_mib']:,.0f}"] for s in sweeps]
            + [["without / with the cache", f"{c['speedup']:.2f}x", f"{c['speedup_cpu']:.2f}x", ""]
               for c in ratio],
        ),
        study_estimate(report.options, report.rows),
    ]  # fmt: skip


register(Stage("sweep", 50, HELP, plan=plan, section=section, quick=False))
