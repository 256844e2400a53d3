"""Words for reports: short candidate names, targets, numbers, metric titles and constraints a person reads."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from olive_ext.engine.steps import param_text
from olive_ext.evaluate.registry import ACCURACY_METRICS, unit_of
from olive_ext.evaluate.spec import OliveGoal
from olive_ext.targets.base import provider_short_name

if TYPE_CHECKING:
    from olive_ext.engine.results import CandidateResult, RunResult
    from olive_ext.engine.search import Candidate
    from olive_ext.recipe.schema import Recipe
    from olive_ext.targets.base import Target

_MISSING = object()

# metric -> what a chart axis or a table heading calls it
METRIC_TITLES = {
    "latency": "decode latency",
    "ttft": "time to first token",
    "throughput": "decode throughput",
    "size": "size",
    "memory": "peak memory",
    "exact_match": "exact match",
    "accuracy": "accuracy",
    "perplexity": "perplexity",
}
_UNITS = {"latency": "ms/token"}  # clearer than the registry's bare "ms" where it matters


def metric_title(name: str, with_unit: bool = True) -> str:
    """``decode latency (ms/token)``, ``exact match (%)``."""
    unit = _UNITS.get(name) or unit_of(name)
    title = METRIC_TITLES.get(name, name.replace("_", " "))
    return f"{title} ({unit})" if with_unit and unit else title


def number(value: Any) -> str:
    """A measurement as people write it: ``19,930``, ``729.8``, ``15.7``, ``0.0321``; '-' when missing."""
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        return "-"
    size = abs(value)
    if size == 0:
        return "0"
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.1f}".removesuffix(".0")
    if size >= 1e-3:
        return f"{value:.3g}"
    return f"{value:.2e}"


def target_label(target: Target) -> str:
    """``cpu``, ``gpu (cuda)``, ``npu (qnn)``: the provider only when it says more than the device."""
    short = provider_short_name(target.provider)
    return target.device if short == target.device else f"{target.device} ({short})"


def _features(candidate: Candidate) -> list[tuple[tuple[str, str | None], Any]]:
    """(step type, parameter) -> value, in pipeline order; (step type, None) marks the step's presence."""
    out: list[tuple[tuple[str, str | None], Any]] = []  # the target has its own column
    for step, kind in zip(candidate.steps, _step_keys(candidate), strict=True):
        out.append(((kind, None), True))
        if step.type in _CHECKS:  # its settings follow the model (a quantized one's parity only records): no name
            continue
        params = dict(step.params)
        if step.type == "olive" and isinstance(params.get("config"), dict):
            # an olive-ai step: its Olive pass first, then its own settings one by one (a raw dict led the name and
            # the table cut GPTQ and RTN rows before they could be told apart)
            params |= {f"config.{k}": v for k, v in params.pop("config").items()}
        out += [((kind, name), params[name]) for name in sorted(params, key=_param_order)]
    return out


def _step_keys(candidate: Candidate) -> list[str]:
    """Each step's key: its type, numbered from its second use (``olive#2``): four Olive steps were one key, the
    last one's settings standing for all of them."""
    seen: dict[str, int] = {}
    keys = []
    for step in candidate.steps:
        seen[step.type] = seen.get(step.type, 0) + 1
        keys.append(step.type if seen[step.type] == 1 else f"{step.type}#{seen[step.type]}")
    return keys


def _step_label(step: Any) -> str:
    """A step as a name says it: an olive-ai step by the Olive pass it runs."""
    olive_type = step.params.get("olive_type") if step.type == "olive" else None
    return f"Olive {olive_type}" if olive_type else str(step.type)


_CHECKS = frozenset({"parity_check"})  # steps that check a model and leave it as it is


# what a reader looks for first (olive_type: which olive-ai pass an `olive` step runs)
_FIRST_PARAMS = ("olive_type", "precision", "method", "algorithm", "block_size", "lm_head")


def _param_order(name: str) -> tuple[int, str]:
    return (_FIRST_PARAMS.index(name) if name in _FIRST_PARAMS else len(_FIRST_PARAMS), name)


def _part(key: tuple[str, str | None], value: Any) -> str:
    kind, param = key
    kind = kind.split("#", 1)[0]
    if param is None:
        return kind
    text = param_text(value)
    if param in {"precision", "algorithm", "method"}:
        return text
    if param == "olive_type":
        return f"Olive {text}"
    param = param.removeprefix("config.")
    if param == "block_size":
        return f"block {text}"
    return f"{param.replace('_', ' ')} {text}"


LIMIT_NAMES = {
    "max_accuracy_drop": "accuracy drop limit",
    "max_latency_ms": "latency limit",
    "min_latency_improvement_pct": "latency improvement over the source model",
    "max_size_mb": "size limit",
    "min_throughput": "throughput floor",
    "max_memory_mb": "memory limit",
}


def short_names(results: list[CandidateResult]) -> dict[str, str]:
    """Candidate id -> what tells it apart from the others (``int4 · block 128``); its steps when alone."""
    features = {r.candidate.id: dict(_features(r.candidate)) for r in results}
    keys = list(dict.fromkeys(k for r in results for k, _ in _features(r.candidate)))
    varying = {k for k in keys if len({repr(f.get(k, _MISSING)) for f in features.values()}) > 1}
    names = {}
    for r in results:
        parts = [_part(k, v) for k, v in _features(r.candidate) if k in varying and v is not _MISSING]
        if not parts:  # alone, or identical pipelines: name the steps
            parts = [_step_label(s) for s in r.candidate.steps] or ["input model"]
        names[r.candidate.id] = " · ".join(dict.fromkeys(parts))
    return names


def common_settings(results: list[CandidateResult]) -> str:
    """The steps and settings every candidate shares (what the short names leave out)."""
    if not results:
        return ""
    features = [dict(_features(r.candidate)) for r in results]
    first = results[0].candidate
    steps = []
    for step, kind in zip(first.steps, _step_keys(first), strict=True):
        if not all(f.get((kind, None)) for f in features):
            continue
        shared = [f"{k}={param_text(v)}" for k, v in sorted(step.params.items())
                  if all(f.get((kind, k), _MISSING) == v for f in features)]  # fmt: skip
        steps.append(f"{step.type}({', '.join(shared)})" if shared else step.type)
    return " → ".join(steps)


def accuracy_name(result: RunResult) -> str:
    """The accuracy metric this run measured (``exact_match``...), or ``accuracy``."""
    measured = [r.metrics for r in result.results] + ([result.reference["metrics"]] if result.reference else [])
    return next((name for name in ACCURACY_METRICS if any(name in m for m in measured)), "accuracy")


def constraint_texts(result: RunResult, recipe: Recipe) -> list[tuple[str, str, str]]:
    """(limit name, the limit in words, its state for the chosen candidate: met / broken / not checked...)."""
    if recipe.evaluate is None:
        return []
    accuracy = METRIC_TITLES.get(accuracy_name(result), "accuracy")
    words = {
        "max_accuracy_drop": f"{accuracy} drop ≤ {{}} points against "
        + ("the reference" if result.reference else "the most accurate candidate"),
        "max_latency_ms": "decode latency ≤ {} ms/token",
        "min_latency_improvement_pct": "decode latency ≥ {}% below the source model's in PyTorch",
        "max_size_mb": "size ≤ {} MB",
        "min_throughput": "decode throughput ≥ {} tok/s",
        "max_memory_mb": "peak memory ≤ {} MB",
    }
    out = []
    ok = [r for r in result.results if r.ok]
    for name, value in recipe.evaluate.constraints.named_limits():
        if isinstance(value, OliveGoal):
            text = goal_words(value)
        else:  # "1.0 points", "120 MB"
            text = words.get(name, name + " {}").format(f"{value:.1f}" if name == "max_accuracy_drop" else f"{value:g}")
        if name in result.unchecked_constraints:
            state = "NOT checked: " + _unchecked_why(name, result)
        elif result.chosen is not None and name in result.chosen.constraints:
            state = "met" if result.chosen.constraints[name] else "broken"
        elif result.chosen is not None:
            state = "NOT checked: not measured"
        else:
            state = f"met by {sum(r.constraints.get(name, False) for r in ok)} of {len(ok)} candidates"
        out.append((name, text, state))
    return out


def goal_words(goal: OliveGoal) -> str:
    """An Olive goal in words: "acc-accuracy_score at most 0.01 below the input model's"."""
    up, down = ("above", "below") if goal.higher_is_better else ("below", "above")
    amount = f"{goal.value:g}%" if goal.type.startswith("percent-") else f"{goal.value:g}"
    if goal.type == "threshold":
        return f"{goal.metric} {'≥' if goal.higher_is_better else '≤'} {amount}"
    if goal.type.endswith("max-degradation"):
        return f"{goal.metric} at most {amount} {down} the input model's"
    return f"{goal.metric} at least {amount} {up} the input model's"


def _unchecked_why(name: str, result: RunResult) -> str:
    """Why a limit was not checked, in words about that limit (every one read "accuracy was not measured")."""
    if result.chosen is not None and not result.chosen.candidate.target.is_available():
        return "its target does not run on this machine"
    if name == "max_accuracy_drop":
        scored = any("perplexity" in r.metrics for r in result.results)
        return "perplexity is no accuracy in points" if scored else "accuracy was not measured"
    if name == "min_latency_improvement_pct":
        return "the source model's latency in PyTorch, its baseline, was not measured"
    return "its metric was not measured"


OBJECTIVE_WORDS = {
    "latency": "lowest decode latency",
    "throughput": "highest decode throughput",
    "size": "smallest size",
    "accuracy": "highest accuracy",
}


def build_label(label: str) -> str:
    """The steps that make a candidate what it is: the adapter merge and the parity check left out, and an
    Olive step named by its Olive pass (``Olive Gptq -> model_builder(...)``)."""
    steps = [s for s in label.split(" -> ") if not s.startswith(("merge_adapter", "parity_check"))]
    steps = [re.sub(r"^olive\(.*olive_type=(\w+).*\)$", r"Olive \1", s) for s in steps]
    return " -> ".join(steps) or label


def source_text(recipe: Recipe) -> str:
    """What the run started from and measured on, in one line: 'model M with adapter A; evaluated on F (split S)'.

    A report is sent to colleagues: it named neither the model nor the data."""
    model = recipe.input_model
    text = f"model {model.path}" + (f" with adapter {model.adapter_path}" if model.adapter_path else "")
    name = recipe.evaluate.data if recipe.evaluate else None
    spec = recipe.data.get(name) if name else None
    if spec is not None:
        files = spec.data_files if isinstance(spec.data_files, str) else ", ".join(spec.data_files or []) or spec.name
        text += f"; evaluated on {files} (split {spec.split})"
    return text
