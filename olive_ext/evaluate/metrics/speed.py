"""Speed and memory: time to first token, per-token decode latency, decode throughput, peak RSS.

Timed runs come after ``warmup`` untimed ones (more while runs still change); each timed run
decodes exactly ``new_tokens`` tokens after a fixed ``prompt_tokens``-token prompt, and there are
``repeats`` of them, or more (up to ``max_repeats``) until the median is known within
``timing_tolerance``; ``latency.runs`` and ``latency.warmup_runs`` record how many it took. Min/median/max are
kept so run-to-run noise is visible; the thread count is recorded with the numbers.
"""

from __future__ import annotations

import statistics

from olive_ext.artifacts import LM_ROLES, eval_role
from olive_ext.evaluate.context import MetricInput
from olive_ext.evaluate.registry import register_metric


def _runs(inp: MetricInput) -> list[list[float]]:
    return [r for r in inp.raw["timing"]["runs"] if r]


def _spread(name: str, values: list[float], digits: int = 3) -> dict[str, float]:
    return {
        name: round(statistics.median(values), digits),
        f"{name}.min": round(min(values), digits),
        f"{name}.max": round(max(values), digits),
    }


@register_metric(
    "ttft",
    "ms",
    higher_is_better=False,
    kinds=LM_ROLES,
    needs={"timing"},
    description="time to first token for the fixed prompt (prefill + one token)",
)
def ttft(inp: MetricInput) -> dict[str, float]:
    """Time to first token: prefill of a ``prompt_tokens`` prompt, median in ms."""
    values = [run[0] * 1000 for run in _runs(inp)]
    return {**_spread("ttft", values), "ttft.prompt_tokens": inp.raw["timing"]["prompt_tokens"]}


@register_metric(
    "latency",
    "ms",
    higher_is_better=False,
    kinds=LM_ROLES | {"onnx"},
    needs={"timing"},
    description="per-token decode latency (p50; p90, min and max as details)",
)
def latency(inp: MetricInput) -> dict[str, float]:
    """Per-token decode latency, median in ms."""
    if eval_role(inp.artifact) == "onnx":
        steps = [s * 1000 for s in inp.raw["classify"]["seconds"]]
    else:
        steps = [s * 1000 for run in _runs(inp) for s in run[1:]]
    steps.sort()
    p90 = steps[min(len(steps) - 1, round(0.9 * (len(steps) - 1)))]
    timing = inp.raw.get("timing", {})
    runs = {"latency.runs": len(_runs(inp)), "latency.warmup_runs": timing.get("warmup_runs", 0)} if timing else {}
    return {**_spread("latency", steps), "latency.p90": round(p90, 3), "threads": inp.raw["threads"], **runs}


@register_metric(
    "throughput",
    "tok/s",
    higher_is_better=True,
    kinds=LM_ROLES,
    needs={"timing"},
    description="decode tokens per second after the first token (median over repeats)",
)
def throughput(inp: MetricInput) -> dict[str, float]:
    """Decode tokens per second, median."""
    per_run = [(len(run) - 1) / sum(run[1:]) for run in _runs(inp) if len(run) > 1 and sum(run[1:]) > 0]
    return {**_spread("throughput", per_run, 2), "threads": inp.raw["threads"]}


@register_metric(
    "memory",
    "MB",
    higher_is_better=False,
    kinds=LM_ROLES | {"onnx"},
    needs={"load"},
    description="peak resident memory of the process that loaded and ran the model",
)
def memory(inp: MetricInput) -> dict[str, float]:
    """Peak resident memory of the worker that ran the model, in MB."""
    return {"memory": round(inp.peak_rss_mb or 0.0, 1)}
