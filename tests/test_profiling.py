"""make profile (tiedae.profiling): op time by kind, from TensorFlow's profiler."""

from __future__ import annotations

import pytest

from tiedae.profiling import OTHER, StepProfile, main, op_seconds


def test_op_time_is_summed_by_type_without_the_events_that_contain_ops():
    events = [
        ("dense/MatMul:_MklMatMul", 0.5), ("grad/MatMul_1:_MklMatMul", 0.25),
        ("noise/normal:StatelessRandomNormalV2", 0.125), ("bn/truediv:RealDiv", 0.0625),
        ("Run: __inference_run_42", 9.0), ("ExecutorState::Process", 9.0), ("Process", 9.0),
    ]  # fmt: skip
    seconds = op_seconds(events)
    assert seconds == {"_MklMatMul": 0.75, "StatelessRandomNormalV2": 0.125, "RealDiv": 0.0625}
    kinds = StepProfile(10, 1.0, seconds).by_kind
    assert kinds == {"matrix products": 0.75, "random numbers": 0.125, OTHER: 0.0625}


@pytest.mark.slow
def test_a_ladder_step_is_profiled_on_digits(capsys):
    overrides = ["data=digits", "method=ladder_tied", "model.sizes=[32,16]",
                 "objective.costs=[1.0,1.0,0.1,0.1]", "runtime.threads=1"]  # fmt: skip
    assert main(["--steps", "3", *overrides]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ladder (") and "ms a step" in out
    assert "| matrix products |" in out and "| random numbers |" in out
    assert "The matrix products take" in out and "no loop gets an epoch under" in out


def test_a_config_without_an_objective_is_refused_before_anything_runs(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--steps", "3", "data=digits"])
    assert stop.value.code == 2
    assert "trains no objective" in capsys.readouterr().err
