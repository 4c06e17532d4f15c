"""From measurements to numbers and tables: medians over repetitions, one path's speed over
another's, and the markdown tables the stages' sections of the report are made of."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tiedae.bench.measure import Measurement, Options
from tiedae.bench.paths import BF16_PATH, KERAS_PATH, NO_JIT_PATH, SEED_PATH, TIEDAE_PATH


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(rows: Sequence[Measurement]) -> list[dict[str, Any]]:
    """One line per (stage, variant, path): medians over repetitions, the range of speeds."""
    groups: dict[tuple[str, str, str], list[Measurement]] = {}
    for row in rows:
        groups.setdefault((row.stage, row.variant, row.path), []).append(row)
    summary = []
    for (stage, variant, path), group in groups.items():
        speeds = [row.images_per_second for row in group]
        summary.append({
            "stage": stage, "variant": variant, "path": path, "repeats": len(group),
            "seconds": median([row.seconds for row in group]),
            "cpu_seconds": median([row.cpu_seconds for row in group]),
            "images_per_s": median(speeds), "images_per_s_min": min(speeds),
            "images_per_s_max": max(speeds),
            "images_per_cpu_s": median([row.images_per_cpu_second for row in group]),
            "val_loss": median([row.val_loss for row in group]),
            "val_loss_min": min(row.val_loss for row in group),
            "val_loss_max": max(row.val_loss for row in group),
            "val_metric": median([row.val_metric for row in group]),
            "peak_rss_mib": max(row.peak_rss_mib for row in group),
        })  # fmt: skip
    return summary


def _ratios(ours: dict[str, Any], other: dict[str, Any], quality: str) -> dict[str, Any]:
    """Our speed over ``other``'s (wall and CPU), and both final validation ``quality`` values
    (``loss``: as ``val_loss_seed``/``val_loss_tiedae`` and the relative difference;
    ``metric``: as ``val_metric_keras``/``val_metric_tiedae``)."""
    ratios = {
        "speedup": ours["images_per_s"] / other["images_per_s"],
        "speedup_cpu": ours["images_per_cpu_s"] / other["images_per_cpu_s"],
    }
    if quality == "metric":
        return {**ratios, "val_metric_keras": other["val_metric"],
                "val_metric_tiedae": ours["val_metric"]}  # fmt: skip
    return {
        **ratios, "val_loss_seed": other["val_loss"], "val_loss_tiedae": ours["val_loss"],
        "val_loss_rel_diff": (ours["val_loss"] - other["val_loss"]) / other["val_loss"],
    }  # fmt: skip


def comparisons(summary: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """tiedae against the seed's fit per variant; the sweep without the cache against with."""
    by_key = {(s["stage"], s["variant"], s["path"]): s for s in summary}
    found = []
    for (stage, variant, path), ours in by_key.items():
        if path != TIEDAE_PATH:
            continue
        seed, keras_fit, no_jit, bfloat16 = (
            by_key.get((stage, variant, other))
            for other in (SEED_PATH, KERAS_PATH, NO_JIT_PATH, BF16_PATH)
        )
        if seed:
            found.append({"stage": stage, "variant": variant, **_ratios(ours, seed, "loss")})
        if keras_fit:
            found.append({"stage": stage, "variant": variant, **_ratios(ours, keras_fit, "metric")})
        if no_jit:
            found.append({"stage": f"{stage} jit", "variant": variant,
                          **_ratios(ours, no_jit, "loss")})  # fmt: skip
        if bfloat16:  # bfloat16 against float32, both tiedae's; as "tiedae" against "seed"
            quality = "metric" if stage == "objective" else "loss"
            found.append({"stage": f"{stage} bfloat16", "variant": variant,
                          **_ratios(bfloat16, ours, quality)})  # fmt: skip
    on, off = (
        by_key.get(("sweep", "cache on", "tiedae CLI")),
        by_key.get(("sweep", "cache off", "tiedae CLI")),
    )
    if on and off:
        found.append({
            "stage": "sweep", "variant": "cache off / cache on",
            "speedup": off["seconds"] / on["seconds"],
            "speedup_cpu": off["cpu_seconds"] / on["cpu_seconds"],
        })  # fmt: skip
    return found


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def ratio_table(
    ratios: Sequence[dict[str, Any]],
    over: str,
    names: tuple[str, str],
    quality: str = "loss",
    first: str = "variant",
) -> str:
    """A row per comparison (``comparisons``): the speed-ups ``over`` names, and the final
    validation ``quality`` of both paths (``names``: the other's, ours) as ``_ratios`` gives it."""
    if quality == "metric":
        header = [f"val accuracy {names[0]}", f"val accuracy {names[1]}"]
        cells = [[f"{c['val_metric_keras']:.4f}", f"{c['val_metric_tiedae']:.4f}"] for c in ratios]
    else:
        header = [f"val loss {names[0]}", f"val loss {names[1]}", "relative difference"]
        cells = [[f"{c['val_loss_seed']:.4f}", f"{c['val_loss_tiedae']:.4f}",
                  f"{100 * c['val_loss_rel_diff']:+.2f}%"] for c in ratios]  # fmt: skip
    return markdown_table(
        [first, f"{over} images/s", "per CPU-s", *header],
        [[c["variant"], f"{c['speedup']:.2f}x", f"{c['speedup_cpu']:.2f}x", *cell]
         for c, cell in zip(ratios, cells, strict=True)],
    )  # fmt: skip


@dataclass(frozen=True)
class Report:
    """What a stage's section of README.md is written from: the options, every measurement,
    their summary (``summarize``) and the run's context (``cli.main``'s info)."""

    options: Options
    rows: Sequence[Measurement]
    summary: Sequence[dict[str, Any]]
    info: dict[str, str]

    def lines(self, stage: str) -> list[dict[str, Any]]:
        """The summary's lines of ``stage``."""
        return [s for s in self.summary if s["stage"] == stage]

    def ratios(self, stage: str) -> list[dict[str, Any]]:
        """The comparisons (``comparisons``) of ``stage``, e.g. ``pretrain jit``."""
        return [c for c in comparisons(self.summary) if c["stage"] == stage]


def precision_table(report: Report, stage: str, quality: str) -> list[str]:
    """The bfloat16 path against tiedae's float32 one (same loop, same shuffles), if timed."""
    ratios = report.ratios(f"{stage} bfloat16")
    if not ratios:
        return []
    return [ratio_table(ratios, "bfloat16 / float32", ("float32", "bfloat16"), quality)]


def _val_loss_cell(line: dict[str, Any]) -> str:
    if line["val_loss_min"] == line["val_loss_max"]:
        return f"{line['val_loss']:.4f}"
    return f"{line['val_loss']:.4f} ({line['val_loss_min']:.4f}–{line['val_loss_max']:.4f})"


def paths_section(
    report: Report, stage: str, title: str, flops_per_image: float | None = None
) -> list[str]:
    """A stage's paths side by side, tiedae's against the seed's fit (and without XLA, and
    under bfloat16, where timed); GFLOP/s against the run's matrix-multiply peak where
    ``flops_per_image`` is given."""
    lines = report.lines(stage)
    peak = float(report.info.get("matmul_peak_gflops", "nan"))
    if not lines:
        return []
    text = [f"## {title}\n"]
    flops = flops_per_image is not None
    gflops = [s["images_per_s"] * (flops_per_image or 0.0) / 1e9 for s in lines]
    text.append(markdown_table(
        ["variant", "path", "images/s (range)", "images/CPU-s"]
        + (["GFLOP/s", "of peak"] if flops else [])
        + ["final val loss (range)", "final val metric", "peak RSS MiB"],
        [[s["variant"], s["path"],
          f"{s['images_per_s']:,.0f} "
          f"({s['images_per_s_min']:,.0f}–{s['images_per_s_max']:,.0f})",
          f"{s['images_per_cpu_s']:,.0f}"]
         + ([f"{g:.1f}", f"{100 * g / peak:.0f}%" if peak == peak else "–"] if flops else [])
         + [_val_loss_cell(s), f"{s['val_metric']:.4f}", f"{s['peak_rss_mib']:,.0f}"]
         for s, g in zip(lines, gflops, strict=True)],
    ))  # fmt: skip
    text.append(ratio_table(report.ratios(stage), "tiedae / seed", ("seed", "tiedae")))
    jit = report.ratios(f"{stage} jit")
    if jit:
        text.append(ratio_table(jit, "jit=true / jit=false", ("jit=false", "jit=true")))
    text.extend(precision_table(report, stage, "loss"))
    return text
