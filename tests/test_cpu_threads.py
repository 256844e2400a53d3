"""Thread count and wait policy from the CPUs actually free (olive_ext/cpu_threads.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from olive_ext.cpu_threads import apply_wait_policy, plan_threads


@pytest.fixture(autouse=True)
def _no_thread_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLIVE_EXT_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)


def test_quiet_machine_uses_every_core_and_the_libraries_default_waiting() -> None:
    plan = plan_threads(load=0.2, cores=8)
    assert (plan.threads, plan.passive) == (8, False)
    apply_wait_policy(plan)
    assert "OMP_WAIT_POLICY" not in os.environ


@pytest.mark.parametrize(("load", "cores", "threads"), [(1.0, 2, 1), (16.0, 2, 1), (2.6, 8, 5), (0.7, 4, 3)])
def test_busy_machine_leaves_the_busy_cores_and_waits_passively(load: float, cores: int, threads: int) -> None:
    plan = plan_threads(load=load, cores=cores)
    assert (plan.threads, plan.passive) == (threads, True)
    assert f"load {load:.1f}" in plan.reason
    apply_wait_policy(plan)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_the_users_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLIVE_EXT_THREADS", "3")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    plan = plan_threads(load=16.0, cores=2)
    assert (plan.threads, plan.passive, plan.reason) == (3, False, "OLIVE_EXT_THREADS")
    apply_wait_policy(plan)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_omp_num_threads_fixes_the_count_when_ours_is_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    plan = plan_threads(load=0.0, cores=8)
    assert (plan.threads, plan.reason) == (1, "OMP_NUM_THREADS")
    monkeypatch.setenv("OLIVE_EXT_THREADS", "4")
    assert plan_threads(load=0.0, cores=8).threads == 4
    monkeypatch.delenv("OLIVE_EXT_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "auto")  # not a count: the plan decides
    assert plan_threads(load=0.0, cores=8).threads == 8


def test_training_threads_follow_the_plan() -> None:
    code = "from olive_ext.train.device import use_all_cores as u; import torch; print(u(), torch.get_num_threads())"
    env = {**os.environ, "OLIVE_EXT_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]


def test_the_machine_is_read_once_per_process_and_the_override_at_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    first = plan_threads()
    assert first.load >= 0 and first.threads >= 1
    monkeypatch.setenv("OLIVE_EXT_THREADS", "5")
    assert (plan_threads().threads, plan_threads().load) == (5, first.load)
