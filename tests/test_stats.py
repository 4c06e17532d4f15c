"""tiedae.report.stats against scipy on hand-made inputs, and the marks of a table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from tiedae.report import stats
from tiedae.report.write import write_report


def test_paired_test_matches_scipy():
    a = np.array([0.81, 0.79, 0.84, 0.80, 0.83, 0.78, 0.82, 0.85])
    b = np.array([0.78, 0.79, 0.80, 0.77, 0.81, 0.79, 0.78, 0.80])
    result = stats.paired_test(a - b)
    d = a - b
    low, high = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    assert result["n_pairs"] == 8
    assert result["mean_diff"] == pytest.approx(d.mean())
    assert (result["ci_low"], result["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert result["t_p"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert result["wilcoxon_p"] == pytest.approx(sps.wilcoxon(a, b).pvalue)


def test_wilcoxon_needs_six_pairs_and_a_constant_difference_has_no_t_test():
    five = stats.paired_test([0.01, 0.02, 0.03, 0.01, 0.02])
    assert np.isfinite(five["t_p"]) and np.isnan(five["wilcoxon_p"])
    constant = stats.paired_test([0.02] * 5)
    assert np.isnan(constant["t_p"]) and constant["ci_low"] == pytest.approx(0.02)
    assert np.isnan(stats.paired_test([0.1])["t_p"])


def test_holm_by_hand():
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005, np.nan])
    np.testing.assert_allclose(adjusted[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(adjusted[4])


SYMMETRIC = (0.01, -0.01, 0.008, -0.008, 0.0)


def as_report_runs(tidy: pd.DataFrame) -> pd.DataFrame:
    """The frame as ``tiedae.report.runs.tidy_runs`` gives it: a row and a setting per method and
    protocol, and the provenance columns."""
    return tidy.assign(
        row=tidy["method"], setting=tidy["method"] + "/" + tidy["protocol"],
        run_id=[f"run{i}" for i in range(len(tidy))], start=pd.Timestamp("2026-11-29", tz="UTC"),
        commit="abc", dirty="false", command="tiedae experiment=demo",
    )  # fmt: skip


def tidy_frame(seeds: int = 5) -> pd.DataFrame:
    """scratch; 'gain' 5 points above it, 'loss' 5 below, 'same' at scratch ± 1 point; a
    non-pretrained 'logreg-pixels' 3 points above scratch; at two labeled counts."""
    rng = np.random.default_rng(0)
    rows = []
    for n_labels in (100, 500):
        for seed in range(1, seeds + 1):
            base = 0.70 + 0.03 * rng.standard_normal()
            offsets = {"scratch": (0.0, False), "gain": (0.05, True), "loss": (-0.05, True),
                       "same": (0.0, True), "logreg-pixels": (0.03, False)}  # fmt: skip
            for method, (offset, pretrained) in offsets.items():
                noise = 0.002 * rng.standard_normal()
                if method == "same":  # differences from scratch of mean 0 and sd 0.01
                    noise = SYMMETRIC[(seed - 1) % len(SYMMETRIC)]
                accuracy = base + offset + noise
                rows.append((method, n_labels, seed, accuracy, pretrained))
    return pd.DataFrame(rows, columns=["method", "n_labels", "seed", "accuracy", "pretrained"])


def test_a_known_difference_is_marked_and_no_difference_is_not():
    tidy = tidy_frame()
    comparisons = stats.compare(tidy)
    marks = comparisons.groupby(["method", "n_labels"])["mark"].agg(" ".join).str.strip()
    assert marks[("gain", 100)] == "†s †b" and marks[("gain", 500)] == "†s †b"
    assert marks[("loss", 100)] == "‡s ‡b"
    assert "s" not in marks[("same", 100)] + marks[("same", 500)]  # noise: no mark vs scratch
    assert set(comparisons["reference"]) == {"scratch", "logreg-pixels"}
    assert (comparisons["holm_p"] >= comparisons["t_p"]).all()
    markdown = stats.to_markdown(stats.marked_cells(tidy, comparisons))
    [gain_row] = [line for line in markdown.splitlines() if line.startswith("| gain ")]
    assert gain_row.count("**") == 4 and "†s †b" in gain_row  # best of both columns
    [same_row] = [line for line in markdown.splitlines() if line.startswith("| same ")]
    assert "†" not in same_row and "‡s" not in same_row and "**" not in same_row
    latex = stats.to_latex(stats.marked_cells(tidy, comparisons))
    assert r"\textbf{" in latex and r"$^{\text{\dag s \dag b}}$" in latex


def test_same_seeds_but_noise_only_is_never_marked():
    tidy = tidy_frame()
    tidy = tidy[tidy["method"].isin(["scratch", "same"])]
    assert (stats.compare(tidy)["mark"] == "").all()


def test_protocols_compare_within_themselves_and_the_report_writes_everything(tmp_path):
    budget = tidy_frame().assign(protocol="budget")
    oracle = tidy_frame().assign(protocol="oracle")
    oracle.loc[oracle["method"] == "scratch", "accuracy"] += 0.10  # scratch gains under oracle
    tidy = pd.concat([budget, oracle], ignore_index=True)
    comparisons = stats.compare(tidy)
    gain = comparisons[(comparisons["method"] == "gain") & (comparisons["against"] == "scratch")]
    assert set(gain.loc[gain["protocol"] == "budget", "mark"]) == {"†s"}
    assert set(gain.loc[gain["protocol"] == "oracle", "mark"]) == {"‡s"}
    paths = write_report(as_report_runs(tidy), tmp_path, "demo", "test")
    names = {p.name for p in paths}
    assert {"significance.csv", "payoff.png", "table.md", "table.tex"} <= names
    table = (tmp_path / "table.md").read_text()
    assert "gain [budget]" in table and "gain [oracle]" in table
    assert "gain [oracle]" in (tmp_path / "table.csv").read_text()  # not averaged together
    csv = pd.read_csv(tmp_path / "significance.csv")
    assert len(csv) == len(comparisons)


def test_a_method_under_two_protocols_is_compared_with_itself_paired_by_seed(tmp_path):
    budget = tidy_frame().assign(protocol="budget")
    fixed = tidy_frame().assign(protocol="fixed")
    gain = fixed["method"] == "gain"  # 3 points more under fixed, ± 1 point over the seeds
    fixed.loc[gain, "accuracy"] += 0.03 + fixed.loc[gain, "seed"].map(lambda s: SYMMETRIC[s - 1])
    fixed = fixed[fixed["method"] != "loss"]  # run under budget only: nothing to pair
    tidy = pd.concat([budget, fixed], ignore_index=True)
    table = stats.compare_protocols(tidy)
    assert set(table["method"]) == {"scratch", "gain", "same", "logreg-pixels"}
    assert set(table["protocol"]) == {"fixed"} and set(table["against_protocol"]) == {"budget"}

    def gain_at_100(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[(frame["method"] == "gain") & (frame["n_labels"] == 100)]

    row = gain_at_100(table).iloc[0]
    expected = sps.ttest_rel(gain_at_100(fixed)["accuracy"], gain_at_100(budget)["accuracy"]).pvalue
    assert row["mean_diff"] == pytest.approx(0.03) and row["n_pairs"] == 5
    assert row["t_p"] == pytest.approx(expected)
    assert row["holm_p"] == pytest.approx(min(1.0, 2 * expected))  # two tests: gain at 100, 500
    assert table.loc[table["method"] != "gain", "mean_diff"].abs().max() < 1e-12
    oracle_and_fixed = pd.concat([fixed, tidy_frame().assign(protocol="oracle")])
    assert set(stats.compare_protocols(oracle_and_fixed)["against_protocol"]) == {"oracle"}
    assert stats.compare_protocols(budget).empty
    paths = write_report(as_report_runs(tidy), tmp_path, "demo", "test")
    assert tmp_path / "protocols.csv" in paths
    assert len(pd.read_csv(tmp_path / "protocols.csv")) == len(table)
    markdown = (tmp_path / "table.md").read_text()
    assert "**Protocol against protocol**" in markdown
    assert "| gain | 100 | fixed − budget: +3.0 |" in markdown
    write_report(as_report_runs(budget), tmp_path / "one", "demo", "test")
    assert not (tmp_path / "one" / "protocols.csv").exists()


def test_a_semi_supervised_objective_row_is_under_test_not_a_baseline():
    tidy = tidy_frame().assign(objective="none")
    ladder = tidy[tidy["method"] == "gain"].assign(method="ladder", pretrained=False,
                                                   objective="ladder")  # fmt: skip
    tidy = pd.concat([tidy, ladder], ignore_index=True)
    assert stats.baseline_methods(tidy) == {"scratch", "logreg-pixels"}
    comparisons = stats.compare(tidy)
    assert set(comparisons["reference"]) == {"scratch", "logreg-pixels"}
    marks = comparisons.groupby(["method", "n_labels"])["mark"].agg(" ".join).str.strip()
    assert marks[("ladder", 500)] == "†s †b"


def test_the_detectable_difference_has_the_asked_power_by_simulation():
    """At the returned difference a paired t-test at α = 0.05 rejects in about 80% of draws."""
    from tiedae.report.stats import detectable_difference

    rng = np.random.default_rng(0)
    delta = detectable_difference(2.0, 5)
    draws = rng.normal(delta, 2.0, size=(4000, 5))
    power = np.mean([sps.ttest_1samp(d, 0.0).pvalue < 0.05 for d in draws])
    assert 0.74 < power < 0.86
    assert detectable_difference(2.0, 10) < delta and np.isnan(detectable_difference(2.0, 1))


def test_every_table_says_what_its_seeds_can_detect():
    """Per labeled count, from the paired differences' spread against scratch, in points."""
    rng = np.random.default_rng(1)
    rows = [
        {"method": m, "n_labels": n, "seed": s, "accuracy": 0.7 + rng.normal(0, 0.02)}
        for m in ("scratch", "ladder") for n in (100, 500) for s in range(1, 6)
    ]  # fmt: skip
    tidy = pd.DataFrame(rows)
    note = stats.power_note(stats.compare(tidy, baselines={"scratch"}))
    for n in (100, 500):
        cell = tidy[tidy["n_labels"] == n].pivot(index="seed", columns="method", values="accuracy")
        spread = 100 * (cell["ladder"] - cell["scratch"]).std(ddof=1)
        expected = stats.detectable_difference(spread, 5)
        assert f"{n} labels: {expected:.1f} points (5 seeds)" in note
        assert 2.0 < expected < 10.0  # a 2-point spread per method: ~2.8 per difference
    assert stats.power_note(stats.compare(tidy[tidy["method"] == "ladder"], baselines=set())) == ""


def test_a_table_along_mismatch_says_where_each_method_stops_beating_scratch():
    from tiedae.report.axes import AXES

    gains = {
        "steady": (0.05, 0.05, 0.05),
        "fading": (0.06, 0.03, -0.02),
        "never": (-0.01, -0.02, -0.03),
    }
    rng = np.random.default_rng(2)
    rows = [
        {"method": m, "n_labels": share, "seed": s,
         "accuracy": 0.7 + (gains[m][i] if m in gains else 0.0) + rng.normal(0, 0.002)}
        for m in ("scratch", *gains) for i, share in enumerate((0.0, 0.5, 1.0))
        for s in range(1, 6)
    ]  # fmt: skip
    note = stats.crossover_note(stats.compare(pd.DataFrame(rows)), AXES["mismatch"])
    assert (
        "`steady`: ahead at every value; significant gain at mismatch 0, mismatch 0.5, "
        "mismatch 1" in note
    )
    assert (
        "`fading`: ahead up to mismatch 0.5, not at mismatch 1; significant gain at "
        "mismatch 0, mismatch 0.5;" in note
    )
    assert "`never`: not ahead from the first (mismatch 0); significant gain at none" in note
    assert stats.crossover_note(stats.compare(pd.DataFrame(rows)), stats.LABELS) == ""
