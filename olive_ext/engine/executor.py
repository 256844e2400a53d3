"""Executors: where a candidate's build and evaluation run.

``local`` (the default) runs each candidate here, one after another, when it is submitted. ``ray``
(:mod:`olive_ext.engine.ray_executor`) runs each as a Ray task on a cluster, several at once. The run
loop (:func:`olive_ext.engine.run.execute`) submits candidates and takes their results back in
submission order, so the search sees the same sequence of results whichever executor ran them.
"""

from __future__ import annotations

import contextlib
import platform
import socket
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from olive_ext.engine.results import CandidateResult
from olive_ext.machine_lock import build_share, measure_lock
from olive_ext.recipe.schema import ExecutorSpec
from olive_ext.targets.base import cpu_model

# run_candidate's signature, as the executors call it: (source, candidate, ctx, recipe, reference, race, lock,
# build_lock)
RunCandidate = Callable[..., CandidateResult]

__all__ = ["Executor", "LocalExecutor", "RunCandidate", "build_share", "make_executor", "measure_lock", "node_info"]


class Job(Protocol):
    """A submitted candidate; ``result()`` blocks until it is done."""

    def result(self) -> CandidateResult: ...


class Executor(Protocol):
    """Runs candidates. ``slots``: how many may be in flight before the loop waits for the oldest."""

    slots: int

    def submit(self, run: RunCandidate, *args: Any) -> Job: ...

    def materialize(self, result: CandidateResult) -> None:
        """Make the result's artifact readable here (a no-op unless it was built elsewhere and not shared)."""

    def close(self) -> None: ...


class _Done:
    def __init__(self, result: CandidateResult) -> None:
        self._result = result

    def result(self) -> CandidateResult:
        return self._result


class LocalExecutor:
    """Each candidate runs here, in this process tree, at submission: one at a time."""

    slots = 1

    def submit(self, run: RunCandidate, *args: Any) -> Job:
        """Run the candidate now; the job is already done."""
        result = run(*args)
        result.node = node_info()
        return _Done(result)

    def materialize(self, result: CandidateResult) -> None:
        """Local artifacts are in the local cache already."""

    def close(self) -> None:
        """Nothing to release."""


def make_executor(spec: ExecutorSpec, cache_root: Path) -> Executor:
    """The executor a recipe's ``executor`` section names (Ray is connected to here)."""
    if spec.type == "ray":
        # the Ray executor imports ray (an optional extra): loaded only when a recipe asks for it
        from olive_ext.engine.ray_executor import RayExecutor

        return RayExecutor(spec, cache_root)
    return LocalExecutor()


@contextlib.contextmanager
def opened(spec: ExecutorSpec, cache_root: Path) -> Iterator[Executor]:
    """An executor for the block, closed (Ray disconnected, a Ray started for the run stopped) after it."""
    executor = make_executor(spec, cache_root)
    try:
        yield executor
    finally:
        executor.close()


@lru_cache(maxsize=1)
def node_info() -> dict[str, Any]:
    """Where a candidate ran: hostname and CPU model (the Ray executor adds the Ray node id)."""
    return {"hostname": socket.gethostname(), "cpu": cpu_model(), "machine": platform.machine()}
