"""The metric registry: names, units, directions, and the functions that compute them.

Metric modules live in ``olive_ext/evaluate/metrics/`` and register with
``@register_metric``; they import heavy libraries only inside the compute function,
so listing metric names (for ``validate``) stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from olive_ext.evaluate.context import MetricInput

# A compute function returns the headline value under the metric's own name, plus
# optional details under "<name>.<detail>" (e.g. "latency.p90"). It runs in the parent
# process on what the worker measured (``MetricInput.raw``); ``needs`` names the worker
# jobs it reads (timing, generate, nll, classify); an empty ``needs`` runs no worker.
MetricFn = Callable[["MetricInput"], dict[str, float]]

# Accuracy-like metrics, in points (0-100): constraints, selection, racing and the reports read the first one measured.
ACCURACY_METRICS = ("accuracy", "exact_match")
QUALITY_METRICS = frozenset({*ACCURACY_METRICS, "perplexity"})
# objective -> metrics that express it, in order of preference
OBJECTIVE_METRICS: dict[str, tuple[str, ...]] = {
    "latency": ("latency", "throughput"),
    "throughput": ("throughput", "latency"),
    "size": ("size",),
    "accuracy": (*ACCURACY_METRICS, "perplexity"),
    "olive": ("olive",),  # an Olive config's metric of priority 1, computed by olive-ai's evaluator
}


@dataclass(frozen=True)
class MetricInfo:
    """What a metric measures and which way is better."""

    name: str
    unit: str
    higher_is_better: bool
    kinds: frozenset[str]
    needs: frozenset[str] = frozenset()
    needs_data: bool = False
    description: str = ""
    fn: MetricFn | None = None


_METRICS: dict[str, MetricInfo] = {}
_LOADED = False

# Units and directions of the metrics selection knows how to compare, declared once here
# so the selector and reports agree even before (or without) an implementation.
# name -> (unit, higher_is_better)
DECLARED: dict[str, tuple[str, bool]] = {
    "size": ("MB", False),
    "latency": ("ms", False),  # per-token decode latency, p50
    "ttft": ("ms", False),  # time to first token
    "throughput": ("tok/s", True),
    "memory": ("MB", False),  # peak resident memory
    "accuracy": ("%", True),
    "exact_match": ("%", True),
    "perplexity": ("", False),
    "lm_eval": ("", True),  # the first lm-eval task's first metric (acc, exact_match, ...); every one is kept
    "mteb": ("", True),  # the mean of the MTEB tasks' main scores; each task's is kept
}


def higher_is_better(name: str) -> bool:
    """Direction of a metric (registered or declared); unknown names count as lower-is-better."""
    info = get_metric(name)
    if info is not None:
        return info.higher_is_better
    return DECLARED.get(name, ("", False))[1]


def unit_of(name: str) -> str:
    """The unit a metric is reported in ('ms', 'tok/s', 'MB', '%', ...)."""
    info = get_metric(name)
    return info.unit if info is not None else DECLARED.get(name, ("", False))[0]


def register_metric(
    name: str,
    unit: str,
    higher_is_better: bool,
    kinds: Collection[str],
    needs: set[str] | None = None,
    needs_data: bool = False,
    description: str = "",
) -> Callable[[MetricFn], MetricFn]:
    """Decorator: register ``fn`` as the metric ``name``."""

    def decorate(fn: MetricFn) -> MetricFn:
        if name in DECLARED and DECLARED[name] != (unit, higher_is_better):
            raise TypeError(f"metric {name!r} must keep its declared unit and direction {DECLARED[name]}")
        if name in _METRICS and _METRICS[name].fn is not fn:
            raise TypeError(f"metric {name!r} is already registered by {_METRICS[name].fn}")
        _METRICS[name] = MetricInfo(
            name, unit, higher_is_better, frozenset(kinds), frozenset(needs or ()), needs_data, description, fn
        )
        return fn

    return decorate


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    # the metric modules register themselves here, so they import this module: load them on first lookup
    from olive_ext.evaluate import metrics

    for info in pkgutil.iter_modules(metrics.__path__):
        importlib.import_module(f"{metrics.__name__}.{info.name}")


def get_metric(name: str) -> MetricInfo | None:
    """The registered metric ``name``, or None."""
    _load()
    return _METRICS.get(name)


def known_metrics() -> list[str]:
    """Every registered metric name, sorted."""
    _load()
    return sorted(_METRICS)
