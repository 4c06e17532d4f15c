"""The sweep table from runs as mlflow.search_runs gives them: one cell per setting and
labeled count, n = distinct seeds, rows named by what differs, scratch rows matched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tiedae.report.runs import at_labels, at_seeds, deduplicate, tidy_runs
from tiedae.report.tables import accuracy_table, scratch_rows, summarize
from tiedae.report.write import write_report

WIDE = {"model.sizes": "[500, 200]", "model.kernel_initializer": "lecun_normal"}


def job(method: str, seed: int, accuracy: float, n: int = 100, minute: int = 0, **params):
    """One row of mlflow.search_runs' frame for a FINISHED job."""
    base = {
        "model.sizes": "[100, 30]", "model.activation": "selu", "model.tied": "True",
        "model.kernel_initializer": "glorot_uniform", "pretrain.name": "none",
        "classifier.kind": "keras", "classifier.name": "finetune", "classifier.epochs": "100",
        "classifier.patience": "5", "classifier.batch_size": "32",
        "classifier.optimizer": "nadam", "classifier.learning_rate": "0.001",
        "data.name": "digits", "runtime.threads": "1", "force": "False",
    }  # fmt: skip
    row = {f"params.{k}": v for k, v in {**base, **params}.items()}
    row.update({
        "params.seed": str(seed), "params.labels.n": str(n), "params.labels.count": str(n),
        "tags.method": method, "metrics.test/accuracy": accuracy,
        "run_id": f"{method}-{seed}-{n}-{minute}",
        "start_time": pd.Timestamp("2026-11-28 10:00", tz="UTC") + pd.Timedelta(minutes=minute),
        "tags.tiedae.git.commit": "abc1234", "tags.tiedae.git.dirty": "false",
        "tags.tiedae.code.source": "s1", "tags.tiedae.data.digest": "d1",
    })  # fmt: skip
    return row


def test_a_rerun_of_one_seed_keeps_the_newest_and_does_not_change_n(tmp_path):
    frame = pd.DataFrame([
        job("scratch", 1, 0.70), job("scratch", 2, 0.72),
        job("scratch", 1, 0.90, minute=5, **{"runtime.threads": "2", "force": "True"}),
    ])  # fmt: skip
    tidy = tidy_runs(frame)
    summary = summarize(tidy)
    [cell] = summary.itertuples()
    assert (cell.n, cell.duplicates) == (2, 1)
    assert cell.mean == pytest.approx((0.90 + 0.72) / 2)  # the rerun (newest) replaced seed 1
    kept, dropped = deduplicate(tidy)
    assert list(dropped["accuracy"]) == [0.70]
    write_report(tidy, tmp_path, "t", "python -m tiedae.report", ["tiedae experiment=t"])
    readme = (tmp_path / "README.md").read_text()
    assert "1 older runs" in readme and "`tiedae experiment=t`" in readme
    assert "abc1234 (2 runs)" in readme and "2026-11-28 10:00 to 2026-11-28 10:05" in readme


def test_different_settings_under_one_method_name_are_different_rows_named_by_the_difference():
    frame = pd.DataFrame([
        job("scratch[500]", 1, 0.7, **{"model.sizes": "[500]"}),
        job("scratch[500]", 1, 0.8, **{"model.sizes": "[500]",
                                       "model.kernel_initializer": "lecun_normal"}),
        job("scratch[500]", 2, 0.9, **{"model.sizes": "[500]", "classifier.patience": "10"}),
    ])  # fmt: skip
    summary = summarize(tidy_runs(frame))
    assert len(summary) == 3 and set(summary["n"]) == {1}
    assert "scratch[500] (classifier.patience=10, model.kernel_initializer=glorot_uniform)" in set(
        summary["row"]
    )
    cells = accuracy_table(summary).to_numpy().ravel()
    assert all("±" not in cell and cell.endswith("(n=1)") for cell in cells)


def test_an_objective_settled_per_count_is_one_row_a_sweep_over_its_value_is_several():
    """VAT's ε from by_labels (8 at 100 labels, 12 at 500) is one row; the ε sweep, every ε at
    every count, keeps a row per ε."""
    vat = {"objective.name": "vat"}
    settled = pd.DataFrame([
        job("vat", seed, 0.6 + n / 10_000, n=n, **vat, **{"objective.epsilon": eps})
        for seed in (1, 2) for n, eps in ((100, "8.0"), (500, "12.0"))
    ])  # fmt: skip
    tidy = tidy_runs(settled)
    assert set(tidy["row"]) == {"vat"} and tidy["setting"].nunique() == 1
    assert tidy.attrs["settings"][tidy["setting"].iloc[0]]["objective.epsilon"] == (
        "8.0@100, 12.0@500"
    )
    assert list(summarize(tidy)["n"]) == [2, 2]
    swept = pd.DataFrame([
        job("vat", 1, 0.6, n=n, **vat, **{"objective.epsilon": eps})
        for n in (100, 500) for eps in ("8.0", "12.0")
    ])  # fmt: skip
    assert set(tidy_runs(swept)["row"]) == {
        "vat (objective.epsilon=8.0)", "vat (objective.epsilon=12.0)"
    }  # fmt: skip
    other = settled.assign(**{"params.model.sizes": ["[100, 30]", "[50]"] * 2})
    assert tidy_runs(other)["row"].nunique() == 2  # not only objective.*: two rows


def test_a_baseline_drops_the_network_it_does_not_use_but_not_on_a_networks_codes():
    sklearn = {"classifier.kind": "sklearn", "classifier.name": "label_spreading"}
    pixels = {**sklearn, "classifier.features": "pca"}
    codes = {**sklearn, "classifier.features": "codes", "pretrain.name": "greedy"}
    frame = pd.DataFrame([
        job("label_spreading-pca30", 1, 0.7, **pixels),
        job("label_spreading-pca30", 2, 0.7, **pixels, **WIDE),  # its model.* play no part
        job("tied-greedy-label_spreading", 1, 0.8, **codes),
        job("tied-greedy-label_spreading", 1, 0.8, **codes, **{"model.activation": "relu"}),
    ])  # fmt: skip
    rows = summarize(tidy_runs(frame)).set_index("row")["n"]
    assert rows["label_spreading-pca30"] == 2
    assert len(rows) == 3  # the encoder's activation makes other codes: another row


def test_runs_of_other_code_or_data_are_other_rows():
    frame = pd.DataFrame([
        job("scratch", 1, 0.7), job("scratch", 2, 0.7, **{}),
    ])  # fmt: skip
    frame.loc[1, "tags.tiedae.code.source"] = "s2"
    assert set(summarize(tidy_runs(frame))["row"]) == {"scratch (code=s1)", "scratch (code=s2)"}


def test_each_pretrained_row_names_the_scratch_row_with_its_architecture_and_schedule(tmp_path):
    greedy = {**WIDE, "pretrain.name": "greedy", "classifier.name": "gradual"}
    frame = pd.DataFrame([
        job("scratch", 1, 0.70), job("scratch[500,200]", 1, 0.75, **WIDE),
        job("tied[500,200]-greedy-gradual", 1, 0.78, **greedy),
        job("tied-autoencoder-frozen", 1, 0.6, **{"pretrain.name": "autoencoder",
                                                   "classifier.patience": "7"}),
    ])  # fmt: skip
    tidy = tidy_runs(frame)
    assert scratch_rows(tidy) == {
        "tied[500,200]-greedy-gradual": "scratch[500,200]",
        "tied-autoencoder-frozen": "none in this sweep",  # its patience differs from scratch's
    }
    write_report(tidy, tmp_path, "t", "python -m tiedae.report")
    table = (tmp_path / "table.md").read_text()
    assert "`tied[500,200]-greedy-gradual` compares to `scratch[500,200]`" in table
    assert "(difference in points: 100 labels +3.0)" in table


def test_a_table_of_some_counts_ignores_settings_run_only_at_other_counts(tmp_path):
    """``--labels 100``: scratch rerun at 1000 labels by other code is neither a second
    scratch row (named by its code) nor a setting without a row."""
    greedy = {**WIDE, "pretrain.name": "greedy", "classifier.name": "gradual"}
    newer = {"tags.tiedae.code.source": "s2"}
    frame = pd.DataFrame([
        job("scratch", 1, 0.70), job("scratch[500,200]", 1, 0.75, **WIDE),
        job("tied[500,200]-greedy-gradual", 1, 0.78, **greedy),
        {**job("scratch", 1, 0.80, n=1000), **newer},
        {**job("scratch[500,200]", 1, 0.81, n=1000, **WIDE), **newer},
    ])  # fmt: skip
    assert len(tidy_runs(frame)["row"].unique()) == 5  # both counts: each code its own row
    tidy = tidy_runs(at_labels(frame, [100]))
    assert sorted(tidy["row"]) == ["scratch", "scratch[500,200]", "tied[500,200]-greedy-gradual"]
    assert scratch_rows(tidy) == {"tied[500,200]-greedy-gradual": "scratch[500,200]"}
    write_report(tidy, tmp_path, "t", "python -m tiedae.report --labels 100")
    assert "| method | 100 labels |" in (tmp_path / "table.md").read_text()


@pytest.fixture
def drawn_lines(monkeypatch) -> dict[str, set[tuple[str, str]]]:
    """Each plotted line's label and its (colour, dash), over every plot drawn in the test."""
    from matplotlib.axes import Axes

    drawn: dict[str, set[tuple[str, str]]] = {}
    errorbar = Axes.errorbar

    def record(self, *args, label=None, color=None, linestyle=None, **kwargs):
        drawn.setdefault(label, set()).add((color, linestyle))
        return errorbar(self, *args, label=label, color=color, linestyle=linestyle, **kwargs)

    monkeypatch.setattr(Axes, "errorbar", record)
    return drawn


def test_a_row_has_one_line_style_in_the_accuracy_and_payoff_plots(tmp_path, drawn_lines):
    """The payoff plot has no scratch line; its other rows keep the accuracy plot's colours."""
    frame = pd.DataFrame([
        job(method, seed, accuracy + 0.01 * seed, **{"objective.name": method})
        for method, accuracy in [("scratch", 0.70), ("entropy", 0.74), ("ladder", 0.78)]
        for seed in (1, 2, 3)
    ])  # fmt: skip
    write_report(tidy_runs(frame), tmp_path, "t", "python -m tiedae.report")
    assert set(drawn_lines) == {"scratch", "entropy", "ladder"}
    assert all(len(styles) == 1 for styles in drawn_lines.values())  # entropy, ladder: both plots
    assert len({style for styles in drawn_lines.values() for style in styles}) == 3


def test_a_methods_budget_and_oracle_lines_share_a_colour_and_differ_in_dash(tmp_path, drawn_lines):
    frame = pd.DataFrame([
        {**job(method, seed, accuracy + 0.01 * seed, **{"objective.name": method}),
         "tags.protocol": protocol, "run_id": f"{method}-{seed}-{protocol}"}
        for method, accuracy in [("scratch", 0.70), ("entropy", 0.74)]
        for protocol in ("budget", "oracle")
        for seed in (1, 2, 3)
    ])  # fmt: skip
    write_report(tidy_runs(frame), tmp_path, "t", "python -m tiedae.report")
    assert drawn_lines["scratch [budget]"] == {("C0", "-")}  # only the accuracy plot has scratch
    assert drawn_lines["scratch [oracle]"] == {("C0", "--")}
    assert drawn_lines["entropy [budget]"] == {("C1", "-")}  # the same in both plots
    assert drawn_lines["entropy [oracle]"] == {("C1", "--")}


def test_a_column_whose_rows_have_different_seeds_says_so_and_which_seeds_they_share(tmp_path):
    entropy = {"objective.name": "entropy"}
    frame = pd.DataFrame([
        *[job("scratch", seed, 0.70, n=n) for n in (100, 500) for seed in (1, 2, 3)],
        *[job("entropy", seed, 0.74, n=100, **entropy) for seed in (1, 2)],
        *[job("entropy", seed, 0.80, n=500, **entropy) for seed in (1, 2, 3)],
    ])  # fmt: skip
    write_report(tidy_runs(frame), tmp_path, "t", "python -m tiedae.report")
    table = (tmp_path / "table.md").read_text()
    assert "**Uneven seeds**" in table
    assert "- 100 labels: rows have 2 to 3 seeds; seeds 1,2 are in every row" in table
    assert "500 labels: rows" not in table  # both rows have seeds 1-3 there
    latex = (tmp_path / "table.tex").read_text()
    assert latex.index(r"\end{tabular}") < latex.index("Uneven seeds")
    assert r"seeds 1,2 are in every row (\texttt{-{}-seeds 1,2} tables only those)" in latex
    write_report(tidy_runs(at_seeds(frame, [1, 2])), tmp_path, "t", "python -m tiedae.report")
    assert "Uneven seeds" not in (tmp_path / "table.md").read_text()
    assert "Uneven seeds" not in (tmp_path / "table.tex").read_text()


def test_a_reproduction_table_sets_ours_beside_the_published_figures(tmp_path):
    from tiedae.report.published import PublishedError, read_published

    frame = pd.DataFrame(
        [job("ladder", s, a) for s, a in enumerate((0.80, 0.81, 0.79, 0.82, 0.80), start=1)]
        + [job("ladder", 1, 0.85, n=1000)]
    )  # fmt: skip
    figures_csv = tmp_path / "published.csv"
    figures_csv.write_text(
        "method,n_labels,accuracy,source\nladder,100,81.5,Paper\nladder,1000,86.5,Paper\n"
        "ladder,500,85.2,Paper\n"
    )
    write_report(tidy_runs(frame), tmp_path, "r", "cmd", figures=read_published(figures_csv))
    table = pd.read_csv(tmp_path / "reproduction.csv")
    assert list(table["n_labels"]) == [100, 1000]  # no runs at 500: no line
    first = table.iloc[0]
    assert first["mean"] == pytest.approx(80.4) and first["difference"] == pytest.approx(-1.1)
    half = 2.776 * np.std([80, 81, 79, 82, 80], ddof=1) / np.sqrt(5)  # t(0.975, 4) = 2.776
    assert (first["ci_low"], first["ci_high"]) == pytest.approx((80.4 - half, 80.4 + half), 1e-3)
    assert bool(first["inside"])  # 81.5 < 80.4 + 1.42
    readme = (tmp_path / "README.md").read_text()
    assert readme.index("Against the published figures") < readme.index("mean ± std")
    assert "| `ladder` | 1000 | 86.5 | 85.0 (one seed) (n=1) | -1.5 | – |" in readme
    (tmp_path / "bad.csv").write_text("method,labels,accuracy\nladder,100,81.5\n")
    with pytest.raises(PublishedError, match="columns n_labels, source missing"):
        read_published(tmp_path / "bad.csv")
    (tmp_path / "commas.csv").write_text("method,n_labels,accuracy,source\nl[1,2],100,81.5,P\n")
    with pytest.raises(PublishedError, match="line 2 has 5 fields, the header 4; quote a name"):
        read_published(tmp_path / "commas.csv")


def test_a_pool_axis_makes_the_columns_and_scratch_stands_at_every_value(tmp_path):
    """Columns by pool size; scratch (which reads no pool, run once per seed) is the reference
    at each; the pool's own params do not split a method into rows."""
    from tiedae.report.axes import AXES

    pool = {"objective.name": "entropy", "unlabeled.size": "1000"}
    frame = pd.DataFrame(
        [job("scratch", s, 0.70 + s / 100, **{"unlabeled.size": "1000"}) for s in (1, 2, 3)]
        + [job("entropy", s, 0.72 + s / 100 + n / 1e6, **{**pool, "unlabeled.n": str(n),
               "unlabeled.size": str(n)}) for s in (1, 2, 3) for n in (1000, 5000)]
    )  # fmt: skip
    tidy = tidy_runs(frame, AXES["pool"])
    assert set(tidy["row"]) == {"scratch", "entropy"}
    assert sorted(tidy[tidy["row"] == "scratch"]["n_labels"]) == [1000] * 3 + [5000] * 3
    write_report(tidy, tmp_path, "amount", "cmd", axis=AXES["pool"])
    table = (tmp_path / "table.md").read_text()
    assert "1000 unlabeled" in table and "5000 unlabeled" in table and "labels" not in table
    significance = pd.read_csv(tmp_path / "significance.csv")
    assert set(significance.loc[significance["method"] == "entropy", "n_labels"]) == {1000, 5000}


def test_a_pool_asked_as_a_share_is_one_column_whatever_each_method_drew():
    """unlabeled.size=1.0: an objective draws every training image, a pretraining under budget
    holds its validation images out; both stand in one column, the larger count."""
    from tiedae.report.axes import AXES

    every = {"unlabeled.size": "1.0"}
    frame = pd.DataFrame(
        [job("entropy", s, 0.75, **every, **{"objective.name": "entropy",
                                              "unlabeled.n": "55000"}) for s in (1, 2)]
        + [job("greedy", s, 0.74, **every, **{"pretrain.name": "greedy",
                                              "unlabeled.n": "52250"}) for s in (1, 2)]
        + [job("greedy", s, 0.73, **{"unlabeled.size": "1000", "pretrain.name": "greedy",
                                     "unlabeled.n": "1000"}) for s in (1, 2)]
    )  # fmt: skip
    tidy = tidy_runs(frame, AXES["pool"])
    assert sorted(set(tidy["n_labels"])) == [1000, 55000]
    assert sorted(tidy.loc[tidy["row"] == "greedy", "n_labels"]) == [1000, 1000, 55000, 55000]


def test_a_pretrained_job_reports_the_pool_its_pretraining_drew(tmp_path):
    """A job that loads a cached encoder logs no pool of its own; its table row stands at the
    pool of the pretraining run with its key. A job's own pool params are kept."""
    from clirun import store_tracker

    from tiedae.tracking import PRETRAIN_KEY, ROLE, SWEEP

    tracker = store_tracker(tmp_path)
    with tracker.run("pretrain", {ROLE: "pretrain", PRETRAIN_KEY: "k"}) as run:
        run.log_params({"unlabeled.n": 52250, "unlabeled.n_outside": 0})
    with tracker.run("greedy", {ROLE: "job", SWEEP: "s", PRETRAIN_KEY: "k"}):
        pass
    with tracker.run("entropy", {ROLE: "job", SWEEP: "s"}) as run:
        run.log_params({"unlabeled.n": 55000})
    frame = tracker.jobs_frame("s").set_index("tags.mlflow.runName")
    assert frame.loc["greedy", "params.unlabeled.n"] == "52250"
    assert frame.loc["greedy", "params.unlabeled.n_outside"] == "0"
    assert frame.loc["entropy", "params.unlabeled.n"] == "55000"


def test_annotate_puts_the_reports_power_line_under_a_table_made_without_it(tmp_path, capsys):
    """python -m tiedae.report.annotate: from significance.csv alone, the same line in the
    same places as write_report; a second run changes nothing; no significance.csv: one line."""
    from tiedae.report import annotate

    frame = pd.DataFrame([
        job(method, seed, base + 0.01 * seed * (method == "joint") + 0.003 * seed**2, n=n,
            **({"objective.name": "joint"} if method == "joint" else {}))
        for method in ("scratch", "joint") for seed in (1, 2, 3)
        for n, base in ((100, 0.6), (500, 0.75))
    ])  # fmt: skip
    made = tmp_path / "made"
    write_report(tidy_runs(frame), made, "t", "python -m tiedae.report")
    original = {name: (made / name).read_text() for name in ("table.md", "README.md", "table.tex")}
    assert annotate.LEAD in original["table.md"] and "100 labels:" in original["table.md"]
    old = tmp_path / "old"  # the folder as a report made before the line existed
    old.mkdir()
    (old / "significance.csv").write_text((made / "significance.csv").read_text())
    for name, text in original.items():
        kept = [line for line in text.split("\n") if annotate.LEAD not in line]
        (old / name).write_text("\n".join(kept).replace("|\n\n\n", "|\n\n"))
    assert annotate.main([str(old)]) == 0
    for name in ("table.md", "table.tex"):
        assert (old / name).read_text() == original[name]
    lines = original["table.md"].split("\n")
    power = next(line for line in lines if annotate.LEAD in line)
    last_row = [line for line in lines if line.startswith("|")][-1]
    assert f"{last_row}\n\n{power}\n" in (old / "README.md").read_text()
    assert annotate.annotate(old) == []
    assert annotate.main([str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.strip().endswith(f"no significance.csv in {tmp_path / 'none'}")
