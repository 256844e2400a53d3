"""auto-opt: build candidates for each target, measure them, keep those within the constraints, pick one.

``auto_opt_recipe`` turns the command's options into an ordinary recipe (the target
profile's search space as list-valued pass parameters), so every auto-opt run is also
a rerunnable ``recipe.yaml``; ``auto_opt`` runs one recipe per device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from olive_ext.api import RunResult, run
from olive_ext.artifacts import Artifact
from olive_ext.engine.progress import Progress
from olive_ext.errors import ConstraintsNotMetError, UserInputError
from olive_ext.model_folder import resolve_model_arg
from olive_ext.recipe import parse_recipe
from olive_ext.recipe.schema import DatasetSpec, Recipe

SPEED_METRICS = ["size", "ttft", "latency", "throughput", "memory"]


@dataclass
class AutoOptOptions:
    """Everything `olive-ext auto-opt` takes; the CLI fills it from flags."""

    model: str
    output: str
    adapter_path: str | None = None
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    provider: str | None = None
    precision: str = "auto"
    data: DatasetSpec | None = None
    metric: Literal["exact_match", "accuracy", "perplexity"] | None = None
    max_accuracy_drop: float | None = 1.0
    max_latency_ms: float | None = None
    max_size_mb: float | None = None
    objective: Literal["latency", "throughput", "size", "accuracy"] = "latency"
    search: Literal["grid", "random", "tpe"] = "grid"
    max_candidates: int | None = None
    seed: int = 0
    overwrite: bool = False
    cache_dir: str | None = None
    trust_remote_code: bool = False
    evaluate: dict[str, Any] = field(default_factory=dict)  # warmup, repeats, threads, token counts, max_samples


def model_task(artifact: Artifact) -> str:
    """'text-generation' for causal LMs, else the HF task of an encoder (from its config)."""
    import json

    if artifact.kind in {"gguf", "genai"}:
        return "text-generation"
    config = Path(artifact.path) / "config.json"
    if artifact.kind == "hf" and config.exists():
        archs = json.loads(config.read_text()).get("architectures") or []
        if archs and not any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in archs):
            return (
                "text-classification"
                if any(a.endswith("ForSequenceClassification") for a in archs)
                else ("feature-extraction")
            )
    return "text-generation"


def auto_opt_recipe(opts: AutoOptOptions, device: str, output: str) -> Recipe:
    """The recipe auto-opt runs for one device."""
    from olive_ext.targets.profiles import get_profile

    source = resolve_model_arg(opts.model, opts.adapter_path)
    task = model_task(source)
    profile = get_profile(device)
    data = opts.data or _data_from_model_config(source)
    chains = profile.candidate_chains(
        task, opts.precision, opts.provider, calibration_data="eval" if data is not None else None
    )
    pipelines = [_with_parity(chain, data is not None) for chain in chains]
    metrics = list(SPEED_METRICS)
    if data is not None:
        metrics.append(opts.metric or ("exact_match" if task == "text-generation" else "accuracy"))
    if task != "text-generation":
        metrics = [m for m in metrics if m not in {"ttft", "throughput"}]
    constraints = {
        "max_accuracy_drop": opts.max_accuracy_drop,
        "max_latency_ms": opts.max_latency_ms,
        "max_size_mb": opts.max_size_mb,
    }
    raw: dict[str, Any] = {
        "input_model": {
            "path": source.path,
            "kind": source.kind,
            "adapter_path": source.adapter_path,
            "gguf_file": source.gguf_file,
            "trust_remote_code": opts.trust_remote_code,
            "task": task,
        },
        "data": {"eval": data.model_dump(mode="json", exclude_none=True)} if data is not None else {},
        "pipelines": pipelines,
        "targets": [{"device": device, **({"provider": opts.provider} if opts.provider else {})}],
        "evaluate": {
            "metrics": metrics,
            "data": "eval" if data is not None else None,
            "constraints": {k: v for k, v in constraints.items() if v is not None},
            "objective": opts.objective,
            **opts.evaluate,
        },
        "search": {
            "strategy": opts.search,
            "seed": opts.seed,
            **({"max_candidates": opts.max_candidates} if opts.max_candidates else {}),
        },
        "output": {"path": output, "overwrite": opts.overwrite},
        "cache_dir": opts.cache_dir,
    }
    return parse_recipe(raw)


def _with_parity(chain: list[Any], have_data: bool) -> dict[str, Any]:
    """A pipeline section: the chain plus a parity check against the PyTorch source.

    Float builds must match the reference (a conversion bug fails them); quantized ones
    only record their numbers, since measured task accuracy decides their fate.
    """
    from olive_ext.targets.profiles import _chain_precision as chain_precision

    section: dict[str, Any] = {step.name: {"type": step.type, **step.params} for step in chain}
    quantized = chain_precision(chain).startswith("int")
    section["parity"] = {"type": "parity_check", "fail": not quantized, **({"data": "eval"} if have_data else {})}
    return section


def _data_from_model_config(source: Artifact) -> DatasetSpec | None:
    """A finetune output records its eval split; auto-opt -m <finetune output> measures on it by default."""
    spec = source.meta.get("eval_data")
    if isinstance(spec, dict):
        files = spec.get("data_files")
        file_list = files if isinstance(files, list) else [files] if files else []
        if all(Path(f).exists() for f in file_list):
            return DatasetSpec.model_validate(spec)
    return None


def auto_opt(opts: AutoOptOptions, progress: Progress | None = None) -> list[RunResult]:
    """Run auto-opt for every device; with several devices each gets ``<output>/<device>``."""
    if not opts.devices:
        raise UserInputError("--device needs at least one of cpu, gpu, npu")
    outputs = [opts.output] if len(opts.devices) == 1 else [str(Path(opts.output) / device) for device in opts.devices]
    recipes = [auto_opt_recipe(opts, d, o) for d, o in zip(opts.devices, outputs, strict=True)]
    results, failures = [], []
    for recipe in recipes:
        try:
            results.append(run(recipe, progress=progress))
        except ConstraintsNotMetError as e:
            failures.append(e)
    if failures:
        raise failures[0]
    return results
