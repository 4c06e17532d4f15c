"""The MLflow UI: the experiment's description, the runs-table URL, and the screenshot script."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.parse
import zlib
from pathlib import Path

import pytest

from tiedae.config import PROJECT_ROOT
from tiedae.tracking import EXPERIMENT_KIND, NOTE, ROLE, SWEEP, Tracker, TrackingSettings
from tiedae.ui import find_chromium, runs_url


def tracker_at(root: Path) -> Tracker:
    return Tracker(TrackingSettings(f"sqlite:///{root}/mlflow.db")).connect()


def test_the_experiment_describes_its_runs_and_opens_on_training_runs(tmp_path):
    tracker = tracker_at(tmp_path)
    tags = tracker.client.get_experiment(tracker.experiment_id).tags
    assert "tiedae.role" in tags[NOTE] and "test/accuracy" in tags[NOTE]
    assert tags[EXPERIMENT_KIND] == "custom_model_development"
    tracker.client.set_experiment_tag(tracker.experiment_id, NOTE, "edited by a person")
    again = tracker_at(tmp_path)  # connecting again keeps a description a person edited
    assert again.client.get_experiment(again.experiment_id).tags[NOTE] == "edited by a person"


def test_the_runs_url_opens_a_stored_view_of_the_sweeps_jobs(tmp_path):
    url = runs_url(f"sqlite:///{tmp_path}/mlflow.db", "http://127.0.0.1:5000", sweep="smoke")
    tracker = tracker_at(tmp_path)
    page, _, query = url.partition("?")
    assert page == f"http://127.0.0.1:5000/#/experiments/{tracker.experiment_id}/runs"
    (key,) = urllib.parse.parse_qs(query)["viewStateShareKey"]
    stored = tracker.client.get_experiment(tracker.experiment_id).tags[
        f"mlflow.sharedViewState.{key}"
    ]
    assert stored.startswith("deflate;")  # as the UI's own Share button stores it
    state = json.loads(zlib.decompress(base64.b64decode(stored[len("deflate;") :])))
    assert state["searchFilter"] == f"tags.`{ROLE}` = 'job' and tags.`{SWEEP}` = 'smoke'"
    assert state["orderByKey"] == "metrics.`test/accuracy`"
    assert {"metrics.`test/accuracy`", "tags.`method`", "params.`labels.n`"} <= set(
        state["selectedColumns"]
    )
    assert urllib.parse.parse_qs(query)["workflowType"] == ["machine_learning"]  # not GenAI


def test_the_view_groups_the_jobs_by_method_and_labeled_count_averaging_over_seeds(tmp_path):
    tracker = tracker_at(tmp_path)
    for method, n, seed in (("scratch", 50, 1), ("scratch", 50, 2), ("tied", 50, 1),
                            ("tied", 100, 1)):  # fmt: skip
        tags = {ROLE: "job", SWEEP: "smoke", "method": method}
        with tracker.run(f"{method} n={n} seed={seed}", tags) as run:
            run.log_params({"labels.n": n, "seed": seed})
    url = runs_url(tracker.settings.uri, "http://127.0.0.1:5000", sweep="smoke")
    (key,) = urllib.parse.parse_qs(url.partition("?")[2])["viewStateShareKey"]
    stored = tracker.client.get_experiment(tracker.experiment_id).tags[
        f"mlflow.sharedViewState.{key}"
    ]
    state = json.loads(zlib.decompress(base64.b64decode(stored[len("deflate;") :])))
    assert state["groupBy"] == {"aggregateFunction": "average", "groupByKeys": [
        {"mode": "tag", "groupByData": "method"}, {"mode": "param", "groupByData": "labels.n"},
    ]}  # fmt: skip
    # each (method, count) a folded row showing its seeds' mean
    assert state["groupsExpanded"] == {
        "tag.method.scratch,param.labels.n.50": False,
        "tag.method.tied,param.labels.n.50": False,
        "tag.method.tied,param.labels.n.100": False,
    }
    assert state["columnOrder"][:2] == ["attributes.`Run Name`", "metrics.`test/accuracy`"]
    [chart] = state["compareRunCharts"]
    assert (chart["type"], chart["xaxis"], chart["yaxis"]) == (
        "SCATTER",
        {"key": "labels.n", "type": "PARAM"},
        {"key": "test/accuracy", "type": "METRIC"},
    )
    assert state["compareRunSections"][0]["uuid"] == chart["metricSectionId"]


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(
    find_chromium() is None, reason="no chromium (Debian: apt-get install chromium)"
)
def test_the_screenshot_script_photographs_the_comparison(tmp_path):
    """Job runs made by hand (no training), then scripts/screenshot_ui.py on them, in a real
    browser: the seeds of a method and count folded into one row showing their mean, in
    Model-training mode, no assistant panel, no shared-view banner."""
    tracker = tracker_at(tmp_path)
    for method, accuracies in (("scratch", (0.5, 0.75)), ("tied-autoencoder-frozen", (0.25,))):
        for seed, accuracy in enumerate(accuracies, start=1):
            tags = {ROLE: "job", SWEEP: "tiny", "method": method}
            with tracker.run(f"{method} n=50 seed={seed}", tags) as run:
                run.log_params({"labels.n": 50, "seed": seed})
                run.log_metrics({"test/accuracy": accuracy})
    out = tmp_path / "ui.png"
    result = subprocess.run(
        [sys.executable, "scripts/screenshot_ui.py", "--store", tracker.settings.uri,
         "--sweep", "tiny", "--out", str(out), "--text", str(tmp_path / "page.txt"),
         "--chart-out", str(tmp_path / "chart.png")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1600, 1000)
    assert len(png) > 50_000  # a rendered page, not a blank one
    page = (tmp_path / "page.txt").read_text()
    assert "Group: method: scratch, labels.n: 50" in page and "0.625" in page  # seeds' mean
    assert "Group: method: tied-autoencoder-frozen, labels.n: 50" in page
    assert "scratch n=50 seed=1" not in page  # folded under its group
    assert "viewing a shared view" not in page and "Ask questions about" not in page
    # the chart view: the groups' means against their labeled count, first of its charts
    assert "tiedae: test accuracy by labeled count" in page and "labels.n vs. test/accuracy" in page
    assert (tmp_path / "chart.png").read_bytes()[:8] == png[:8]
