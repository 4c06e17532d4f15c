"""The benchmark's outputs: the machine it ran on, ``README.md`` (a header, then each stage's
section), ``measurements.csv`` (every process) and ``summary.csv``."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tiedae.bench.measure import Measurement, Options, stages
from tiedae.bench.summary import Report, summarize


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS says)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine() -> dict[str, str]:
    def version(*names: str) -> str:
        for name in names:
            try:
                return importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                continue
        return "not installed"

    model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]  # fmt: skip
        model = names[0] if names else model
    return {
        "cores": f"{usable_cores()} usable of {os.cpu_count()}", "cpu": model,
        "python": platform.python_version(),
        "tensorflow": version("tensorflow", "tensorflow-cpu"), "keras": version("keras"),
        "system": f"{platform.system()} {platform.release()}",
    }  # fmt: skip


def uptime() -> str:
    """The load averages (1, 5, 15 min) as ``uptime`` prints them."""
    return "load average: " + ", ".join(f"{load:.2f}" for load in os.getloadavg())


def report(
    options: Options, rows: Sequence[Measurement], command: str, info: dict[str, str]
) -> str:
    text = [
        "# Benchmark: tiedae's training path against the seed's plain Keras `fit`\n",
        f"- command: `{command}`",
        f"- date: {info['date']}, commit {info['commit']}",
        f"- machine: {info['cores']} cores, {info['cpu']}; {info['system']}; Python "
        f"{info['python']}, TensorFlow {info['tensorflow']}, Keras {info['keras']}",
        f"- load average (1 min) at start and end: {info['load']}",
        f"- data: {options.data}; autoencoders {options.epochs} epochs, batch 32, SGD 1.5, "
        f"binary cross-entropy; {options.repeats} repetitions (median and range)",
        f"- tiedae config overrides: {' '.join(options.overrides) or 'none (the defaults)'}",
        "- images/s: training images x epochs / wall seconds of model building + training "
        "(validation each epoch included); images/CPU-s: the same over user + system CPU "
        "seconds, less sensitive to other load. Peak RSS: the whole process (`ru_maxrss`).",
    ]
    for stage in stages():
        if stage.header is not None:
            text.extend(stage.header(info))
    text[-1] += "\n"
    context = Report(options, rows, summarize(rows), info)
    for stage in stages():
        if stage.section is not None:
            text.extend(stage.section(context))
    return "\n".join(text)


def write_results(
    folder: Path, rows: Sequence[Measurement], markdown: str, command: str, info: dict[str, str]
) -> list[Path]:
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    context = {"command": command, **info}
    raw = pd.DataFrame([
        {**asdict(row), "images_per_s": row.images_per_second,
         "images_per_cpu_s": row.images_per_cpu_second}
        for row in rows
    ])  # fmt: skip
    summary = pd.DataFrame(summarize(rows))
    for frame in (raw, summary):
        for key, value in context.items():
            frame[key] = value
    paths = [folder / "measurements.csv", folder / "summary.csv", folder / "README.md"]
    raw.to_csv(paths[0], index=False)
    summary.to_csv(paths[1], index=False)
    paths[2].write_text(markdown)
    return paths
