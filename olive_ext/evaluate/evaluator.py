"""Scoring an artifact on a target: every requested metric, cached like builds."""

from __future__ import annotations

import time
from importlib import metadata
from typing import Any

from olive_ext.artifacts import Artifact
from olive_ext.engine.cache import Cache, cache_key
from olive_ext.evaluate.context import EvalContext
from olive_ext.evaluate.registry import get_metric

# Settings that change measured values; constraints and objective only change selection.
_SPEC_FIELDS_IN_KEY = ("warmup", "repeats", "threads", "prompt_tokens", "new_tokens", "max_new_tokens", "max_samples")
_RUNTIME_LIBS = ("onnxruntime", "onnxruntime-genai", "torch", "transformers", "peft")


def _versions() -> dict[str, str]:
    out = {}
    for lib in _RUNTIME_LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "missing"
    return out


def evaluation_key(artifact: Artifact, ectx: EvalContext, metrics: list[str]) -> str:
    """Cache key of one evaluation: the model, the metrics, the settings, the data, the target."""
    spec = ectx.spec.model_dump(mode="json")
    settings = {k: spec[k] for k in _SPEC_FIELDS_IN_KEY}
    data = ectx.dataset.model_dump(mode="json") if ectx.dataset else None
    return cache_key(
        "eval",
        artifact.fingerprint,
        sorted(metrics),
        settings,
        data,
        ectx.target.name,
        ectx.extras.get("reference_id"),
        _versions(),
    )


def evaluate(
    artifact: Artifact, ectx: EvalContext, cache: Cache, metrics: list[str] | None = None
) -> tuple[dict[str, float], bool]:
    """Compute ``metrics`` (default: the spec's) for ``artifact``; returns (values, cache_hit)."""
    names = metrics if metrics is not None else list(ectx.spec.metrics)
    key = evaluation_key(artifact, ectx, names)
    cached = cache.get_result(key)
    if cached is not None:
        return cached, True
    values: dict[str, Any] = {}
    started = time.perf_counter()
    for name in names:
        info = get_metric(name)
        if info is None or info.fn is None:
            raise KeyError(f"unknown metric {name!r}")
        if artifact.kind not in info.kinds:
            continue
        values.update(info.fn(artifact, ectx))
    values["eval_seconds"] = round(time.perf_counter() - started, 3)
    cache.put_result(key, values, {"artifact": artifact.fingerprint, "metrics": names})
    return values, False
