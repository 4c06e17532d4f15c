"""The MLflow UI's comparison view of the job runs (grouped by method and labeled count, test
accuracy averaged over seeds), stored in the experiment as the UI's Share button stores one."""

from __future__ import annotations

import base64
import hashlib
import json
import zlib

from tiedae.tracking.keys import ROLE, SWEEP
from tiedae.tracking.store import TrackerBase

COMPARISON_SECTION = "tiedae-comparison"  # the view's chart section
RUN_NAME_COLUMN = "attributes.`Run Name`"  # the runs table's first column, as the UI names it
SHARED_VIEW, SHARE_KEY = "mlflow.sharedViewState.", "viewStateShareKey"  # the UI's Share


class RunsViews(TrackerBase):
    """The ``Tracker``'s shared views of the runs table."""

    def runs_url(self, base: str, sweep: str | None = None) -> str:
        """The UI page of this experiment's runs table in Model-training mode (MLflow 3 may
        otherwise open on GenAI), showing the job runs (one sweep's, if named) grouped by
        method and labeled count, test accuracy averaged over each group's seeds, best first:
        a view stored in the experiment, as MLflow's Share button stores one."""
        key = self.share_runs_view(sweep)
        query = f"workflowType=machine_learning&{SHARE_KEY}={key}"  # not the GenAI pages
        return f"{base.rstrip('/')}/#/experiments/{self.experiment_id}/runs?{query}"

    def share_runs_view(self, sweep: str | None = None) -> str:
        """Store the comparison view of the runs table as a shared view state; its key."""
        where = f"tags.`{ROLE}` = 'job'" + (f" and tags.`{SWEEP}` = '{sweep}'" if sweep else "")
        groups, metric_prefixes = self._job_groups(where)
        state = {
            "searchFilter": where, "orderByKey": "metrics.`test/accuracy`", "orderByAsc": False,
            "startTime": "ALL", "lifecycleFilter": "Active", "modelVersionFilter": "All Runs",
            "datasetsFilter": [], "runsExpanded": {}, "runsPinned": [], "runsHidden": [],
            "runListHidden": False, "viewMaximized": False,
            "selectedColumns": [
                "metrics.`test/accuracy`", "tags.`method`", "params.`labels.n`", "params.`seed`",
                "attributes.`Dataset`",
            ],
            # the comparison: a row per method and labeled count, its runs (the seeds)
            # folded under it, test accuracy their mean
            "groupBy": {"aggregateFunction": "average", "groupByKeys": [
                {"mode": "tag", "groupByData": "method"},
                {"mode": "param", "groupByData": "labels.n"},
            ]},
            "groupsExpanded": {group: False for group in groups},
            "useGroupedValuesInCharts": True,
            # the group's name (method, labeled count) whole, its mean next to it
            "columnOrder": [RUN_NAME_COLUMN, "metrics.`test/accuracy`", "tags.`method`",
                            "params.`labels.n`", "params.`seed`"],
            "columnWidths": {RUN_NAME_COLUMN: 460, "metrics.`test/accuracy`": 130},
            # the chart view (compareRunsMode=CHART): each group's mean against its count
            "compareRunSections": [{
                "uuid": COMPARISON_SECTION, "name": "tiedae: test accuracy by labeled count",
                "display": True, "isReordered": False, "deleted": False, "isGenerated": False,
            }] + [  # the UI's own sections, one per metric prefix, below it and folded
                {"uuid": f"tiedae-{prefix}", "name": prefix, "display": False,
                 "isReordered": False, "deleted": False, "isGenerated": True}
                for prefix in metric_prefixes
            ],
            "isAccordionReordered": True,
            "compareRunCharts": [{
                "uuid": "tiedae-accuracy-by-labels", "type": "SCATTER", "deleted": False,
                "isGenerated": False, "metricSectionId": COMPARISON_SECTION,
                "runsCountToCompare": 100,
                "displayName": "test accuracy (mean over seeds) against labeled count",
                "xaxis": {"key": "labels.n", "type": "PARAM"},
                "yaxis": {"key": "test/accuracy", "type": "METRIC"},
            }],
            "hideEmptyCharts": True,
        }  # fmt: skip
        text = json.dumps(state, sort_keys=True)
        key = hashlib.sha256(text.encode()).hexdigest()[:32]
        packed = "deflate;" + base64.b64encode(zlib.compress(text.encode())).decode()
        self.client.set_experiment_tag(self.experiment_id, f"{SHARED_VIEW}{key}", packed)
        return key

    def _job_groups(self, where: str) -> tuple[list[str], list[str]]:
        """The UI's ids of the view's groups (one per method and labeled count) among the
        runs matching ``where`` (``tag.method.<method>,param.labels.n.<count>``), and the
        prefixes of their metrics' names (the UI's chart sections)."""
        runs = self._search(where, max_results=50000)
        pairs = {(r.data.tags.get("method"), r.data.params.get("labels.n")) for r in runs}
        prefixes = {key.split("/")[0] for r in runs for key in r.data.metrics if "/" in key}
        return sorted(f"tag.method.{m},param.labels.n.{n}" for m, n in pairs), sorted(prefixes)
