"""Adaptive timing: warm-up while runs still change, more timed runs only while the median is uncertain."""

from __future__ import annotations

from olive_ext.evaluate.backends import Generation, LMBackend
from olive_ext.evaluate.worker import _timing, median_half_width


class ScriptedRuns(LMBackend):
    """A runtime whose runs take scripted times (seconds per step), so the repeat logic can be checked."""

    def __init__(self, per_step: list[float]) -> None:
        self.eos_ids: set[int] = set()
        self.per_step = list(per_step)
        self.calls = 0

    def generate(self, prompt: list[int], max_new_tokens: int, min_new_tokens: int = 0) -> Generation:
        step = self.per_step[min(self.calls, len(self.per_step) - 1)]
        self.calls += 1
        return Generation(tokens=[1] * max_new_tokens, step_seconds=[step] * max_new_tokens)

    def continuation_nll(self, prompt: list[int], continuation: list[int]) -> float:
        raise NotImplementedError

    def forced_predictions(self, rows):  # type: ignore[no-untyped-def]
        raise NotImplementedError


JOB = {"prompt": [1, 2, 3], "new_tokens": 4, "warmup": 1, "repeats": 3, "max_repeats": 8, "tolerance": 0.05}


def test_steady_runs_stop_at_the_minimum() -> None:
    backend = ScriptedRuns([0.010] * 20)
    out = _timing(backend, JOB)
    assert len(out["runs"]) == 3 and out["warmup_runs"] == 1 and backend.calls == 4


def test_slow_first_runs_count_as_warm_up() -> None:
    backend = ScriptedRuns([0.050, 0.030, 0.010] + [0.010] * 20)
    out = _timing(backend, JOB)
    assert out["warmup_runs"] == 3, "runs that still change are warm-up, not timing"
    assert all(r[0] == 0.010 for r in out["runs"]) and len(out["runs"]) == 3


def test_noisy_runs_take_more_repeats_up_to_the_cap() -> None:
    noisy = [0.010, 0.010, 0.020, 0.010, 0.030, 0.010, 0.020, 0.015, 0.010, 0.025]
    out = _timing(ScriptedRuns(noisy), JOB)
    assert len(out["runs"]) == 8
    fixed = _timing(ScriptedRuns(noisy), {**JOB, "tolerance": None})
    assert len(fixed["runs"]) == 3, "without a tolerance, exactly `repeats` runs"


def test_median_interval_narrows_with_more_agreeing_values() -> None:
    assert median_half_width([1.0, 2.0]) == float("inf")
    wide = median_half_width([1.0, 1.5, 2.0, 2.5])
    assert 0 < median_half_width([1.0, 1.5, 2.0, 2.5] * 4) < wide
