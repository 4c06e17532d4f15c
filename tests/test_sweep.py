"""The smoke sweep through the real CLI: caching, parent/child runs, resume after a kill, joblib."""

import re
import statistics
from collections import Counter
from pathlib import Path

import pytest
from conftest import run_cli
from mlflow.tracking import MlflowClient

from tiedae.config import PROJECT_ROOT
from tiedae.report.cli import main as report_main
from tiedae.report.write import summary_note

SMOKE = ["experiment=sweep_smoke"]
N_JOBS = 2 * 4 * 2  # seeds x methods x labeled counts in conf/experiment/sweep_smoke.yaml
N_AUTOENCODERS = (
    2 * 2
)  # distinct (model, pretraining, seed): tied/untied x 2 seeds; scratch has none

pytestmark = pytest.mark.slow


def search(client: MlflowClient, query: str) -> list:
    experiment = client.get_experiment_by_name("tiedae")
    return client.search_runs([experiment.experiment_id], query, max_results=1000)


def jobs(client: MlflowClient) -> list:
    return search(client, "tags.`tiedae.role` = 'job' and tags.`tiedae.sweep` = 'smoke'")


def pretrainings(client: MlflowClient) -> list:
    return search(client, "tags.`tiedae.role` = 'pretrain'")


def final_progress(stdout: str) -> dict[str, int]:
    """The counts of the sweep's last progress line (tiedae.sweep.Progress)."""
    lines = re.findall(
        r"sweep smoke: (\d+)/(\d+) jobs \((\d+) done, (\d+) skipped, (\d+) failed, "
        r"(\d+) running\), (\d+) cache hits",
        stdout,
    )
    assert lines, stdout[-3000:]
    names = ("ended", "total", "done", "skipped", "failed", "running", "hits")
    return dict(zip(names, map(int, lines[-1]), strict=True))


def assert_complete(client: MlflowClient, n_jobs: int, n_autoencoders: int) -> None:
    """Every job of the grid FINISHED exactly once; each autoencoder trained once."""
    finished = [run for run in jobs(client) if run.info.status == "FINISHED"]
    assert len(finished) == n_jobs
    assert len({run.data.tags["tiedae.run_key"] for run in finished}) == n_jobs
    assert "RUNNING" not in {run.info.status for run in jobs(client)}
    trained = [run for run in pretrainings(client) if run.info.status == "FINISHED"]
    assert len(trained) == n_autoencoders
    assert len({run.data.tags["tiedae.pretrain_key"] for run in trained}) == n_autoencoders


def test_smoke_sweep_trains_each_autoencoder_once_then_tables_and_resumes(store, tmp_path):
    first = run_cli(*SMOKE, *store)
    client = MlflowClient(store[0].split("=", 1)[1])
    assert_complete(client, N_JOBS, N_AUTOENCODERS)
    # one progress line every few jobs, its final counts those of the store; no epoch lines
    progress = final_progress(first.stdout)
    cache_hits = sum(run.data.tags.get("pretrain.cache") == "hit" for run in jobs(client))
    assert progress == {"ended": N_JOBS, "total": N_JOBS, "done": len(jobs(client)),
                        "skipped": 0, "failed": 0, "running": 0, "hits": cache_hits}  # fmt: skip
    assert "epoch 1/" not in first.stdout and "test accuracy:" not in first.stdout
    some_job = jobs(client)[0].info.run_id
    job_log = client.download_artifacts(some_job, "logs/train.log", str(tmp_path))
    assert "test accuracy:" in Path(job_log).read_text()
    [parent] = search(client, "tags.`tiedae.role` = 'sweep'")
    assert parent.info.status == "FINISHED" and parent.info.run_name == "sweep smoke"
    children = jobs(client)
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parent.info.run_id}
    assert "tied-autoencoder-frozen n=50 seed=1" in {run.info.run_name for run in children}
    hits = Counter(run.data.tags.get("pretrain.cache") for run in children)
    assert hits == {"miss": N_AUTOENCODERS, "hit": 12 - N_AUTOENCODERS, None: 4}  # 4 scratch jobs
    # the parent's description: accuracy by method and count, in percent to one decimal
    note = parent.data.tags["mlflow.note.content"]
    assert "test accuracy (%), mean ± std over seeds" in note and note.count("(n=2)") == 4 * 2
    assert re.findall(r"\| [\d.]+ ± [\d.]+ \(n=2\)", note) == re.findall(
        r"\| \d+\.\d ± \d+\.\d \(n=2\)", note
    )  # no more digits than the paper's table
    scratch_50 = [
        run.data.metrics["test/accuracy"] for run in children
        if run.data.tags["method"] == "scratch" and run.data.params["labels.n"] == "50"
    ]  # fmt: skip
    assert f"| scratch | {100 * statistics.mean(scratch_50):.1f} ± " in note

    # as make sweep calls it: the sweep's own overrides (grids ignored) name the sweep
    report = ["--out", str(tmp_path / "report"), *SMOKE, "seed=1,2", *store]
    assert report_main(report) == 0
    table = (tmp_path / "report" / "table.md").read_text()
    for method in (
        "scratch",
        "tied-autoencoder-frozen",
        "tied-autoencoder-finetune",
        "untied-autoencoder-frozen",
    ):
        assert f"| {method} |" in table
    assert table.count("(n=2)") == 4 * 2
    for name in ("table.tex", "table.csv", "accuracy.png", "README.md"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "sweep commands: `tiedae experiment=sweep_smoke" in readme
    assert "`tied-autoencoder-frozen` compares to `scratch`" in table  # same shape, schedule
    assert {f.path for f in client.list_artifacts(parent.info.run_id, "report")} >= {
        "report/table.md"
    }
    # ... which the report replaces with its table, marks and notes
    assert client.get_run(parent.info.run_id).data.tags["mlflow.note.content"] == summary_note(
        "smoke", table
    )

    # --labels keeps the counts asked for: one column, each row's two seeds
    only_50 = ["--labels", "50", "--out", str(tmp_path / "report-50"), *SMOKE, *store]
    assert report_main(only_50) == 0
    table_50 = (tmp_path / "report-50" / "table.md").read_text()
    assert table_50.splitlines()[0] == "| method | 50 labels |" and table_50.count("(n=2)") == 4
    # --seeds keeps the seeds asked for (a seed still being run left out)
    seed_2 = ["--seeds", "2", "--out", str(tmp_path / "report-seed-2"), *SMOKE, *store]
    assert report_main(seed_2) == 0
    table_seed_2 = (tmp_path / "report-seed-2" / "table.md").read_text()
    assert table_seed_2.count("(n=1)") == 4 * 2 and "(n=2)" not in table_seed_2
    with pytest.raises(SystemExit, match="2"):  # argparse: "'1,x': give seeds, e.g. 1,2,3"
        report_main(["--seeds", "1,x", *SMOKE, *store])
    # two sweeps in one table: scratch again, under protocol=fixed, as sweep smoke_fixed
    run_cli(*SMOKE, "method=scratch", "labels.count=50", "protocol=fixed",
            "sweep.name=smoke_fixed", *store)  # fmt: skip
    both = ["--sweep", "smoke,smoke_fixed", "--labels", "50", "--out", str(tmp_path / "both")]
    assert report_main([*both, *SMOKE, *store]) == 0
    table_both = (tmp_path / "both" / "table.md").read_text()
    assert "| scratch [fixed] |" in table_both and "| scratch [oracle] |" in table_both
    assert "| scratch | 50 | fixed − oracle:" in table_both  # paired over seeds 1 and 2
    assert "smoke_fixed" in (tmp_path / "both" / "README.md").read_text()  # its sweep command
    assert report_main(["--sweep", "smoke,nope", *SMOKE, *store]) == 2

    again = run_cli(*SMOKE, *store)
    assert final_progress(again.stdout)["skipped"] == N_JOBS  # every job skipped as FINISHED
    assert final_progress(again.stdout)["done"] == 0
    assert len(jobs(client)) == N_JOBS


def test_joblib_launcher_with_two_workers_logs_every_run(store):
    parallel = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "runtime.threads=1"]
    result = run_cli(*SMOKE, "seed=1", *store, *parallel)  # half the grid: 8 jobs, 2 autoencoders
    assert "database is locked" not in result.stdout + result.stderr
    assert_complete(MlflowClient(store[0].split("=", 1)[1]), N_JOBS // 2, N_AUTOENCODERS // 2)
    progress = final_progress(result.stdout)
    assert (progress["ended"], progress["done"], progress["total"]) == (8, 8, 8)
    # the workers' jobs share the launching process's folder (its name carries that pid)
    [folder] = re.findall(r"sweep output dir : (\S+)", result.stdout + result.stderr)
    assert re.search(r"_\d+$", folder), folder
    jobs_there = sorted(p.parent.name for p in (PROJECT_ROOT / folder).glob("*/train.log"))
    assert jobs_there == [str(n) for n in range(8)]
    # the workers were started (and imported TensorFlow) while the jobs were checked; the
    # launcher then ran every job in them, not in new ones
    [warmed] = re.findall(
        r"joblib workers ([\d, ]+) started and warm", result.stdout + result.stderr
    )
    pids = {run.data.tags["tiedae.pid"] for run in jobs(MlflowClient(store[0].split("=", 1)[1]))}
    assert pids == set(warmed.split(", ")) and len(pids) == 2
