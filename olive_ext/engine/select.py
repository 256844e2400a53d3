"""Selection: constraints first, then the Pareto front, then the objective.

Accuracy-like metrics are in points (0-100). ``max_accuracy_drop`` compares a
candidate with the reference (the fp32 model when the caller gives one, else the
most accurate candidate).
"""

from __future__ import annotations

from olive_ext.engine.results import CandidateResult
from olive_ext.evaluate.registry import ACCURACY_METRICS, OBJECTIVE_METRICS, higher_is_better
from olive_ext.evaluate.spec import Constraints, EvaluateSpec

_FRONT_GROUPS = (("latency", "throughput"), (*ACCURACY_METRICS, "perplexity"), ("size",))


def accuracy_of(metrics: dict[str, float]) -> float | None:
    """The first accuracy-like metric (accuracy, exact_match) in ``metrics``, or None."""
    for name in ACCURACY_METRICS:
        if name in metrics:
            return metrics[name]
    return None


def stopped_after(metrics: dict[str, float]) -> int | None:
    """Rows a candidate was scored on before racing stopped it (None: not stopped). Equal to the rows of
    the eval data when it was scored on every row, broke the accuracy floor there and was not timed."""
    for name in ACCURACY_METRICS:
        if f"{name}.stopped_after" in metrics:
            return int(metrics[f"{name}.stopped_after"])
    return None


def unchecked_constraints(spec: EvaluateSpec | None) -> list[str]:
    """Constraints the recipe sets that its measurements cannot check (an accuracy limit without accuracy: no eval
    data, or perplexity alone, which is no accuracy in points)."""
    if spec is None:
        return []
    accuracy_measured = spec.data is not None and bool(set(ACCURACY_METRICS) & set(spec.metrics))
    return ["max_accuracy_drop"] if spec.constraints.max_accuracy_drop is not None and not accuracy_measured else []


def check_constraints(
    metrics: dict[str, float],
    limits: Constraints,
    reference_accuracy: float | None,
    reference_latency: float | None = None,
    reference_metrics: dict[str, float] | None = None,
) -> dict[str, bool]:
    """Which of the set limits the metrics meet; limits on unmeasured metrics are left out. Olive goals compare
    with ``reference_metrics`` (the input model's values of the same Olive metrics)."""
    out: dict[str, bool] = {}
    for goal in limits.olive_goals:
        if goal.metric in metrics:
            met = goal.met(metrics[goal.metric], (reference_metrics or {}).get(goal.metric))
            if met is not None:
                out[goal.name] = met
    acc = accuracy_of(metrics)
    if limits.max_accuracy_drop is not None and acc is not None and reference_accuracy is not None:
        out["max_accuracy_drop"] = reference_accuracy - acc <= limits.max_accuracy_drop + 1e-9
    gain = limits.min_latency_improvement_pct
    if gain is not None and "latency" in metrics and reference_latency:
        out["min_latency_improvement_pct"] = (
            (reference_latency - metrics["latency"]) / reference_latency * 100 >= gain - 1e-9
        )
    bounds = (
        ("max_latency_ms", "latency", False),
        ("max_size_mb", "size", False),
        ("max_memory_mb", "memory", False),
        ("min_throughput", "throughput", True),
    )
    for limit_name, metric, is_min in bounds:
        limit = getattr(limits, limit_name)
        if limit is not None and metric in metrics:
            out[limit_name] = metrics[metric] >= limit if is_min else metrics[metric] <= limit
    return out


def _front_metrics(results: list[CandidateResult]) -> list[str]:
    dims = []
    for group in _FRONT_GROUPS:
        for name in group:
            if results and all(name in r.metrics for r in results):
                dims.append(name)
                break
    return dims


def _no_worse(name: str, a: float, b: float) -> bool:
    return a >= b if higher_is_better(name) else a <= b


def _dominates(a: CandidateResult, b: CandidateResult, dims: list[str]) -> bool:
    if not all(_no_worse(d, a.metrics[d], b.metrics[d]) for d in dims):
        return False
    return any(a.metrics[d] != b.metrics[d] for d in dims)


def objective_value(metrics: dict[str, float], objective: str) -> float | None:
    """A score where lower is better, for the objective (None when not measured)."""
    for name in OBJECTIVE_METRICS[objective]:
        if name in metrics:
            value = float(metrics[name])
            return -value if higher_is_better(name) else value
    return None


def select(
    results: list[CandidateResult],
    spec: EvaluateSpec,
    reference_accuracy: float | None = None,
    reference_latency: float | None = None,
    reference_metrics: dict[str, float] | None = None,
) -> CandidateResult | None:
    """Mark constraints, the Pareto front and the chosen candidate; return it (None if none fits).

    Candidates stopped by racing broke the accuracy constraint (their accuracy over every row could
    not meet it): they are marked so and left out of the reference, the front and the choice."""
    stopped = [r for r in results if r.ok and stopped_after(r.metrics) is not None]
    for r in stopped:
        r.constraints = {"max_accuracy_drop": False}
    ok = [r for r in results if r.ok and all(r is not s for s in stopped)]
    if reference_accuracy is None:
        accs = [a for r in ok if (a := accuracy_of(r.metrics)) is not None]
        reference_accuracy = max(accs) if accs else None
    for r in ok:
        r.constraints = check_constraints(r.metrics, spec.constraints, reference_accuracy, reference_latency,
                                          reference_metrics)  # fmt: skip
    feasible = [r for r in ok if r.feasible]
    dims = _front_metrics(ok)
    for r in ok:
        r.on_front = bool(dims) and not any(_dominates(o, r, dims) for o in ok if o is not r)
    if not feasible:
        return None
    pool = [r for r in feasible if r.on_front] or feasible

    def rank(r: CandidateResult) -> tuple[float, float, float]:
        primary = objective_value(r.metrics, spec.objective)
        acc = accuracy_of(r.metrics)
        return (
            primary if primary is not None else float("inf"),
            -(acc if acc is not None else 0.0),
            r.metrics.get("size", float("inf")),
        )

    alike = timed_alike(pool, spec)  # the fastest and those its timing cannot tell from it
    best = min(alike, key=lambda r: (*rank(r)[1:], rank(r)[0])) if alike else min(pool, key=rank)
    fastest = min(pool, key=rank)
    if best is not fastest:
        best.notes.append(
            f"timed within {spec.timing_tolerance:.0%} of the fastest, {fastest.candidate.describe()} (closer than "
            "timing tells apart): chosen for its higher accuracy or smaller size"
        )
    if objective_value(best.metrics, spec.objective) is None:  # the report said "lowest decode latency" regardless
        why = ("evaluate.metrics does not measure it" if not set(OBJECTIVE_METRICS.get(spec.objective, ())) &
               set(spec.metrics) else "a build for another device is built, not run")  # fmt: skip
        measured_accuracy = accuracy_of(best.metrics) is not None
        best.notes.append(f"chosen without its {spec.objective}, which was not measured here ({why}): for "
                          f"{'its accuracy, then its size' if measured_accuracy else 'its size'}")  # fmt: skip
    best.chosen = True
    return best


def timed_alike(pool: list[CandidateResult], spec: EvaluateSpec) -> list[CandidateResult]:
    """For a speed objective: the candidates timed within ``timing_tolerance`` of the fastest ([] otherwise).

    Timing stops once the median is known within that fraction, so closer speeds are not told apart: among
    them the more accurate, then the smaller, is chosen, not whichever measured a little faster this time.
    Measured on the demo fine-tune: genai int8 and llama.cpp Q8_0 timed 8.30 vs 8.08 and 7.20 vs 7.76 ms/token
    in two cold runs of the same auto-opt, and the choice flipped between them."""
    tolerance = spec.timing_tolerance
    if spec.objective not in ("latency", "throughput") or not tolerance:
        return []
    values = [(r, objective_value(r.metrics, spec.objective)) for r in pool]
    known = [v for _, v in values if v is not None]
    if not known:
        return []
    best = min(known)
    return [r for r, v in values if v is not None and abs(v - best) <= tolerance * abs(best)]


def nearest_misses(results: list[CandidateResult], n: int = 3) -> list[CandidateResult]:
    """The candidates that broke the fewest constraints, for the "nothing fits" message."""
    ok = [r for r in results if r.ok]

    def distance(r: CandidateResult) -> tuple[int, float]:  # fewest broken, then the most accurate
        accuracy = accuracy_of(r.metrics)
        return sum(not v for v in r.constraints.values()), -(accuracy if accuracy is not None else -1.0)

    return sorted(ok, key=distance)[:n]
