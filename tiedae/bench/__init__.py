"""``make bench``: tiedae's training path against the seed's plain Keras ``fit``, side by side
(``python -m tiedae.bench --help`` for the options and the stages).

One module per stage (``pretrain``, ``classify``, ``objective``, ``run``, ``sweep``, ``jobs``),
each registering a ``Stage`` with ``measure.register``: its item in ``--help``, its
measurements, its worker (``--worker <stage>``), its section of the report. Shared: ``measure``
(options, a measurement, the registry), ``paths`` (the training paths compared, a worker's
spec), ``child`` (a process per measurement), ``seed`` (the seed's recipe), ``summary``
(medians, ratios, their tables), ``write`` (README.md and the csv files) and ``cli`` (the
options and the run). Every module here is imported below, so a new stage is its module alone.
"""

from __future__ import annotations

from tiedae.registry import import_modules

import_modules(__name__, __path__)  # each stage registers itself

from tiedae.bench.child import CHILD_ENV, Child, measure_cli, measure_in_child, run_child  # noqa: E402
from tiedae.bench.classify import classify_worker  # noqa: E402
from tiedae.bench.cli import main, parse_options  # noqa: E402
from tiedae.bench.jobs import (  # noqa: E402
    job_shapes,
    jobs_breakdown,
    jobs_report,
    jobs_worker,
    measure_jobs,
    write_jobs,
)
from tiedae.bench.measure import (  # noqa: E402
    RESULT_PREFIX,
    STAGE_REGISTRY,
    Clock,
    Measurement,
    Options,
    Stage,
    compose_config,
    measurements,
    register,
    stage_names,
    stages,
)
from tiedae.bench.objective import keras_objective_fit, objective_worker  # noqa: E402
from tiedae.bench.paths import (  # noqa: E402
    BF16_PATH,
    KERAS_PATH,
    NO_JIT_PATH,
    PRECISION,
    SEED_PATH,
    TIEDAE_PATH,
    alternating,
    rotating,
    worker_spec,
)
from tiedae.bench.pretrain import (  # noqa: E402
    JIT,
    peak_worker,
    pretrain_worker,
    training_flops_per_image,
)
from tiedae.bench.seed import seed_autoencoder  # noqa: E402
from tiedae.bench.summary import comparisons, markdown_table, summarize  # noqa: E402
from tiedae.bench.sweep import study_estimate, sweep_jobs  # noqa: E402
from tiedae.bench.write import machine, report, uptime, usable_cores, write_results  # noqa: E402

STAGES = stage_names()  # every stage's name, in order
WORKERS = {stage.name: stage.worker for stage in stages() if stage.worker is not None}

__all__ = [
    "BF16_PATH", "CHILD_ENV", "JIT", "KERAS_PATH", "NO_JIT_PATH", "PRECISION", "RESULT_PREFIX",
    "SEED_PATH", "STAGES", "STAGE_REGISTRY", "TIEDAE_PATH", "WORKERS", "Child", "Clock",
    "Measurement", "Options", "Stage", "alternating", "classify_worker", "comparisons",
    "compose_config", "job_shapes", "jobs_breakdown", "jobs_report", "jobs_worker",
    "keras_objective_fit", "machine", "main", "markdown_table", "measure_cli", "measure_in_child",
    "measure_jobs", "measurements", "objective_worker", "parse_options", "peak_worker",
    "pretrain_worker", "register", "report", "rotating", "run_child", "seed_autoencoder",
    "stage_names", "stages", "study_estimate", "summarize", "sweep_jobs",
    "training_flops_per_image", "uptime", "usable_cores", "worker_spec", "write_jobs",
    "write_results",
]  # fmt: skip
