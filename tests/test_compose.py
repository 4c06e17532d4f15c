"""The shared composition of the entry points besides ``tiedae``: same config, one-line errors."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from tiedae.compose import compose_config, grid_configs
from tiedae.config import CONFIG_DIR, ConfigError
from tiedae.report import cli as report


def test_the_config_is_the_one_hydra_composes_for_the_same_overrides():
    overrides = ["method=ladder_tied", "labels.count=500", "seed=3"]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        expected = compose("config", overrides=overrides)
    assert compose_config(overrides) == expected


def test_a_sweeps_command_line_composes_without_its_grids():
    cfg = compose_config(["experiment=sweep_smoke", "seed=1,2", "labels.count=7"], drop_grids=True)
    assert cfg.labels.count == 7
    assert cfg.seed == compose_config(["experiment=sweep_smoke"]).seed  # the grid left out


@pytest.mark.parametrize(
    ("override", "named"),
    [("metod=scratch", "metod"), ("method=no_such_row", "no_such_row"), ("seed=[1", "seed")],
)
def test_a_bad_override_is_one_line_naming_it(override, named):
    with pytest.raises(ConfigError) as caught:
        compose_config([override])
    message = str(caught.value)
    assert "\n" not in message and named in message


def test_the_grid_has_one_config_per_point_first_parameter_slowest():
    jobs = grid_configs("sweep_smoke")
    assert len(jobs) == 2 * 4 * 2  # seed x method x labels.count in conf/experiment/sweep_smoke
    points = [(job.seed, job.labels.count) for job in jobs[:3]]
    assert points == [(1, 50), (1, "all"), (1, 50)]
    assert jobs[-1].seed == 2


def test_the_command_lines_overrides_replace_or_sweep_the_grids_keys():
    """As the sweeper: seed=2 replaces the grid's seeds, labels.count=10,20 sweeps its own
    list, an override outside the grid applies to every job."""
    jobs = grid_configs("sweep_smoke", ["seed=2", "labels.count=10,20", "classifier.epochs=3"])
    assert len(jobs) == 1 * 4 * 2
    assert {job.seed for job in jobs} == {2} and {job.classifier.epochs for job in jobs} == {3}
    assert [job.labels.count for job in jobs[:2]] == [10, 20]


def test_the_table_command_says_a_bad_override_in_one_line(capsys):
    assert report.main(["--sweep", "x", "metod=scratch"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tiedae-table: error:") and "metod" in err and "\n" not in err
