"""The evaluation worker: runs one candidate in its own process and reports raw measurements.

    python -m olive_ext.evaluate.worker request.json result.json [VERDICT_FD REPORT_FD]

The request names the model and the jobs (``timing``, ``generate``, ``nll``, ``classify``)
with token ids prepared by the parent; the result holds token ids, NLL sums and timings.
Running each candidate in a fresh process keeps peak-memory readings clean and keeps a
crashing runtime from taking the search down with it.

When the parent races candidates (``generate.slices``), it passes two pipe descriptors: after
each slice of rows the worker reports the outputs so far on one and reads "go" or "stop" from
the other; a stopped candidate skips its remaining rows and timing. With ``judge_last`` the rows
are judged once more when all are scored: a candidate below the floor on every row is not timed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

from olive_ext.evaluate.backends import LMBackend, open_backend
from olive_ext.evaluate.teacher_forcing import greedy_rows
from olive_ext.machine_lock import timing_lock
from olive_ext.memory import peak_rss_mb

# A first timed run more than this fraction off the last warm-up run is taken as warm-up too.
WARM_AGREEMENT = 0.10
MAX_EXTRA_WARMUP = 3


class Channel:
    """The worker's side of the racing pipes: report the outputs so far, read the verdict."""

    def __init__(self, verdict_fd: int, report_fd: int) -> None:
        self.verdicts: IO[str] = os.fdopen(verdict_fd, "r")
        self.reports: IO[str] = os.fdopen(report_fd, "w")

    def keep_going(self, outputs: list[list[int]]) -> bool:
        self.reports.write(json.dumps({"outputs": outputs}) + "\n")
        self.reports.flush()
        return self.verdicts.readline().strip() == "go"


def run_jobs(request: dict[str, Any], channel: Channel | None = None) -> dict[str, Any]:
    """Open the model once and run each requested job on it."""
    model = request["model"]
    started = time.perf_counter()
    backend = open_backend(
        model["kind"],
        model["path"],
        model.get("adapter_path"),
        request["provider"],
        request["threads"],
        model.get("adapter_name"),
        model.get("gguf_file"),
    )
    result: dict[str, Any] = {"load_seconds": time.perf_counter() - started, "threads": request["threads"]}
    jobs = request["jobs"]
    if "generate" in jobs:  # first: a candidate stopped by racing needs no timing
        result["generate"] = _generate(backend, jobs["generate"], channel)  # type: ignore[arg-type]
        if result["generate"].get("stopped_after") is not None:
            return result
    if "timing" in jobs:
        with timing_alone():
            result["timing"] = _timing(backend, jobs["timing"])  # type: ignore[arg-type]
    if "nll" in jobs:
        pairs = jobs["nll"]["pairs"]
        result["nll"] = {
            "nll": [backend.continuation_nll(p, c) for p, c in pairs],  # type: ignore[attr-defined]
            "tokens": [len(c) for _, c in pairs],
        }
    if "classify" in jobs:
        with timing_alone():
            result["classify"] = _classify(backend, jobs["classify"])
    return result


def _generate(backend: LMBackend, job: dict[str, Any], channel: Channel | None) -> dict[str, Any]:
    """Greedy answers row by row in slices (teacher-forced where ``answers`` are given)."""
    prompts, answers = job["prompts"], job.get("answers")
    bounds = [b for b in job.get("slices") or [] if 0 < b < len(prompts)] + [len(prompts)]
    out: dict[str, Any] = {"outputs": [], "forced": 0, "decoded": 0, "stopped_after": None}
    started, start = time.perf_counter(), 0
    for end in sorted(set(bounds)):
        rows = greedy_rows(backend, prompts[start:end], answers[start:end] if answers else None, job["max_new_tokens"])
        out["outputs"] += rows.outputs
        out["forced"] += rows.forced
        out["decoded"] += rows.decoded
        start = end
        judged = end < len(prompts) or job.get("judge_last")
        if channel is not None and judged and not channel.keep_going(out["outputs"]):
            out["stopped_after"] = end
            break
    out["seconds"] = time.perf_counter() - started
    return out


def _timing(backend: LMBackend, job: dict[str, Any]) -> dict[str, Any]:
    """Warm up as long as runs still change, then time runs until the median is known well enough.

    Warm-up: ``warmup`` untimed runs; while the first timed run differs from the run before it by
    more than :data:`WARM_AGREEMENT`, it counts as warm-up too (at most :data:`MAX_EXTRA_WARMUP`
    more). Timing: ``repeats`` runs, then more while :func:`median_half_width` of the runs' median
    step times exceeds ``tolerance`` of their median, up to ``max_repeats`` runs.
    """
    prompt, n = job["prompt"], job["new_tokens"]
    warm = [sum(backend.generate(prompt, n, n).step_seconds) for _ in range(job["warmup"])]
    extra_warmup = 0
    least = job["repeats"]
    most = max(least, job.get("max_repeats") or least)
    runs: list[list[float]] = []
    while len(runs) < most:
        steps = backend.generate(prompt, n, n).step_seconds
        took = sum(steps)
        if not runs and warm and extra_warmup < MAX_EXTRA_WARMUP and abs(took - warm[-1]) > WARM_AGREEMENT * warm[-1]:
            warm.append(took)  # still warming up (caches, allocator, CPU clock)
            extra_warmup += 1
            continue
        runs.append(steps)
        tolerance = job.get("tolerance")
        if len(runs) >= least and (tolerance is None or _relative_half_width(runs) <= tolerance):
            break
    return {"runs": runs, "prompt_tokens": len(prompt), "warmup_runs": len(warm)}


def median_half_width(values: list[float]) -> float:
    """Half-width of an approximate 95% interval of the median: 1.58 x IQR / sqrt(n) (McGill, Tukey and
    Larsen 1978, the notches of a box plot); infinite below 3 values, where it says nothing."""
    if len(values) < 3:
        return math.inf
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return 1.58 * (q3 - q1) / math.sqrt(len(values))


def _relative_half_width(runs: list[list[float]]) -> float:
    """The interval of the median per-token step time (decode steps; the first step if only one), relative."""
    per_run = [statistics.median(r[1:] or r) for r in runs if r]
    centre = statistics.median(per_run) if per_run else 0.0
    return median_half_width(per_run) / centre if centre > 0 else math.inf


def _classify(backend: Any, job: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    for features in job["features"][: job["warmup"]]:
        backend.run(features)
    predictions, seconds = [], []
    for features in job["features"]:
        out, took = backend.run(features)
        predictions.append(int(np.asarray(out).reshape(-1, np.asarray(out).shape[-1])[0].argmax()))
        seconds.append(took)
    return {"predictions": predictions, "seconds": seconds}


PARENT_ENV = "OLIVE_EXT_EVAL_PARENT"


def die_with_parent(parent: int | None = None) -> None:
    """End this process when the process that started it dies (Linux: PR_SET_PDEATHSIG).

    A Ray task killed mid-evaluation would otherwise leave its worker running beside the retry, and the
    retry's timing would share the CPUs with it (a background build, likewise, would build on for nobody).
    The parent's pid (``parent``, else the environment's) covers a parent that died before the signal was set."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    expected = str(parent) if parent else os.environ.get(PARENT_ENV)
    if expected and expected.isdigit() and os.getppid() != int(expected):
        os._exit(1)


# The run's background build (engine/background.py) names its process group here: timing pauses it.
PAUSE_ENV = "OLIVE_EXT_PAUSE_GROUP"


@contextlib.contextmanager
def timing_alone() -> Iterator[None]:
    """This machine's timing lock held (another olive-ext run's timing is not beside this one: two identical
    auto-opt runs side by side chose different candidates), and the run's background build stopped (SIGSTOP to
    its group) while this block times a model."""
    group = os.environ.get(PAUSE_ENV, "")
    with timing_lock(), _paused(int(group)) if group.isdigit() else contextlib.nullcontext():
        yield


@contextlib.contextmanager
def _paused(group: int) -> Iterator[None]:
    """The process group ``group`` stopped for the block (SIGSTOP), continued after in any case."""
    import signal

    stopped = False
    with contextlib.suppress(OSError):
        os.killpg(group, signal.SIGSTOP)
        stopped = True
    try:
        yield
    finally:
        if stopped:
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGCONT)


def main(argv: list[str]) -> int:
    die_with_parent()
    request_path, result_path, *fds = argv
    with open(request_path) as f:
        request = json.load(f)
    channel = Channel(int(fds[0]), int(fds[1])) if fds else None
    try:
        result = run_jobs(request, channel)
    except Exception as e:  # reported to the parent, which records it on the candidate
        result = {"error": f"{type(e).__name__}: {e}"}
    result["peak_rss_mb"] = peak_rss_mb()
    with open(result_path, "w") as f:
        json.dump(result, f)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    from olive_ext.quiet import hide_library_noise

    # this process's own filters and no library progress bars (importing olive_ext changes none); its stderr
    # goes to the parent, which shows the last line when the worker fails: plain logging suits that
    hide_library_noise(rich_logging=False)
    raise SystemExit(main(sys.argv[1:]))
