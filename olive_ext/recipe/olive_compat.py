"""Reading Microsoft Olive run configs (``olive run --config``) as olive-ext recipes.

Olive keys are translated for the passes we implement. Anything we cannot honour is
reported as an error naming the key; keys we deliberately handle differently (for
example padding, which we always make dynamic) are reported as notes.
"""

from __future__ import annotations

from typing import Any

from olive_ext.errors import Problem
from olive_ext.passes.base import get_pass, registered_passes

# Keys whose presence marks an Olive run config (our format uses none of them).
_OLIVE_MARKERS = {
    "systems", "data_configs", "evaluators", "evaluator", "search_strategy", "output_dir", "engine", "model",
    "host", "target", "workflow_id", "auto_optimizer_config", "evaluate_input_model", "log_severity_level",
}  # fmt: skip
_HARMLESS = {"host", "target", "workflow_id", "log_severity_level", "verbose", "clean_cache", "clean_evaluation_cache",
             "evaluate_input_model", "no_artifacts", "output_name", "plot_pareto_frontier", "packaging_config",
             "evaluator"}  # fmt: skip
_MODEL_TYPES_HF = {"hfmodel", "pytorchmodel"}
_MODEL_TYPES_ONNX = {"onnxmodel"}


def is_olive_config(raw: dict[str, Any]) -> bool:
    """True when the mapping uses Olive's run-config layout."""
    if set(raw) & _OLIVE_MARKERS:
        return True
    model = raw.get("input_model")
    return isinstance(model, dict) and "type" in model and "path" not in model


def olive_pass_names() -> dict[str, str]:
    """Olive pass type name -> our registered pass name, for every pass that implements one."""

    return {o: name for name, cls in registered_passes().items() for o in cls.olive_types}


def translate(raw: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """Return (our recipe mapping, problems and notes) for an Olive run config."""
    problems: list[Problem] = []
    raw = dict(raw)
    engine = raw.pop("engine", None)
    if isinstance(engine, dict):  # older Olive nests these under `engine`
        for key, value in engine.items():
            raw.setdefault(key, value)
    out: dict[str, Any] = {}

    model_key = "input_model" if "input_model" in raw else ("model" if "model" in raw else None)
    if model_key is None:
        problems.append(
            Problem("input_model", "required key is missing", hint="add input_model: {type: HfModel, model_path: ...}")
        )
    else:
        out["input_model"] = _input_model(raw.pop(model_key), model_key, problems)

    data_names: set[str] = set()
    if "data_configs" in raw:
        out["data"] = _data_configs(raw.pop("data_configs"), problems)
        data_names = set(out["data"])
    if "systems" in raw:
        targets = _systems(raw.pop("systems"), raw.get("target"), problems)
        if targets:
            out["targets"] = targets
    if "passes" in raw:
        out["passes"] = _passes(raw.pop("passes"), data_names, problems)
    evaluators = raw.pop("evaluators", None)
    if evaluators:
        out["evaluate"] = _evaluators(evaluators, raw.get("evaluator"), problems)
    if "search_strategy" in raw:
        search = _search(raw.pop("search_strategy"), problems)
        if search:
            out["search"] = search
    if "output_dir" in raw:
        out["output"] = {"path": str(raw.pop("output_dir"))}
    if "cache_dir" in raw:
        out["cache_dir"] = str(raw.pop("cache_dir"))
    if "search_space" in raw:
        raw.pop("search_space")
        problems.append(
            Problem(
                "search_space",
                "not an Olive or olive-ext key",
                hint="write the choices as a list on the pass parameter, e.g. passes.lora.r: [8, 16, 32]",
            )
        )
    for key in list(raw):
        if key in _HARMLESS:
            raw.pop(key)
        elif key in {"data", "targets", "evaluate", "search", "output"}:
            out[key] = raw.pop(key)  # already in our format
    for key in raw:
        problems.append(
            Problem(key, "Olive key not supported by olive-ext", hint="remove it, or see the README's recipe section")
        )
    return out, problems


def _unnest(section: dict[str, Any]) -> dict[str, Any]:
    """Olive's older format nests parameters under `config`; flatten it."""
    inner = section.get("config")
    if isinstance(inner, dict):
        section = {**{k: v for k, v in section.items() if k != "config"}, **inner}
    return section


def _input_model(model: Any, key: str, problems: list[Problem]) -> dict[str, Any]:
    if not isinstance(model, dict):
        problems.append(Problem(key, "must be a mapping with type and model_path", model, True))
        return {}
    model = _unnest(model)
    mtype = str(model.pop("type", "HfModel"))
    out: dict[str, Any] = {}
    path = model.pop("model_path", None) or model.pop("model_name_or_path", None)
    if path is None:
        problems.append(Problem(f"{key}.model_path", "required key is missing"))
    else:
        out["path"] = str(path)
    if mtype.lower() in _MODEL_TYPES_ONNX:
        out["kind"] = "onnx"
    elif mtype.lower() not in _MODEL_TYPES_HF:
        problems.append(
            Problem(f"{key}.type", "Olive model type not supported", mtype, True, "HfModel, PyTorchModel, ONNXModel")
        )
    load_kwargs = model.pop("load_kwargs", None) or {}
    if model.pop("trust_remote_code", None) or load_kwargs.get("trust_remote_code"):
        out["trust_remote_code"] = True
    for ours in ("adapter_path", "task", "revision", "gguf_file"):
        if ours in model:
            out[ours] = model.pop(ours)
    for ignored in ("model_attributes", "io_config", "dummy_input_func"):
        if model.pop(ignored, None) is not None:
            problems.append(Problem(f"{key}.{ignored}", "ignored: read from the model itself", severity="note"))
    for rest in model:
        problems.append(Problem(f"{key}.{rest}", "Olive model key not supported"))
    return out


def _data_configs(configs: Any, problems: list[Problem]) -> dict[str, Any]:
    items = configs if isinstance(configs, list) else [dict(v, name=k) for k, v in (configs or {}).items()]
    out: dict[str, Any] = {}
    for i, dc in enumerate(items):
        path = f"data_configs[{i}]"
        if not isinstance(dc, dict):
            problems.append(Problem(path, "must be a mapping", dc, True))
            continue
        name = str(dc.get("name") or f"data{i}")
        load = dict(dc.get("load_dataset_config") or {})
        pre = dict(dc.get("pre_process_data_config") or {})
        spec: dict[str, Any] = {}
        data_files = load.pop("data_files", None)
        data_name = load.pop("data_name", None)
        if data_name is None and data_files is not None:
            first = data_files[0] if isinstance(data_files, list) else str(data_files)
            data_name = "csv" if first.endswith(".csv") else "parquet" if first.endswith(".parquet") else "json"
        if data_name is None:
            problems.append(Problem(f"{path}.load_dataset_config.data_name", "required key is missing"))
            continue
        spec["name"] = data_name
        if data_files is not None:
            spec["data_files"] = data_files
        spec["split"] = load.pop("split", "train")
        if "text_template" in pre:
            spec["text_template"] = pre.pop("text_template")
        cols = pre.pop("text_cols", None)
        if cols:
            cols = [cols] if isinstance(cols, str) else list(cols)
            if len(cols) == 1:
                spec["text_field"], spec["format"] = cols[0], "text"
            else:
                spec["text_template"] = "\n".join("{" + c + "}" for c in cols)
        if "max_samples" in pre:
            spec["max_samples"] = pre.pop("max_samples")
        for dropped in ("max_seq_len", "pad_to_max_len", "corpus_strategy", "add_special_tokens", "strategy"):
            if dropped in pre:
                pre.pop(dropped)
                problems.append(
                    Problem(
                        f"{path}.pre_process_data_config.{dropped}",
                        "ignored: olive-ext pads per batch and sets lengths on the training pass",
                        severity="note",
                    )
                )
        for key in ("type", "name", "user_script", "script_dir"):
            dc.pop(key, None) if key != "user_script" else None
        for key in ("user_script", "components", "dataloader_config", "post_process_data_config"):
            if dc.get(key):
                problems.append(Problem(f"{path}.{key}", "Olive data key not supported (custom scripts/components)"))
        for key in list(load) + list(pre):
            problems.append(Problem(f"{path}.{key}", "Olive data key not supported"))
        out[name] = spec
    return out


def _systems(systems: Any, target_name: Any, problems: list[Problem]) -> list[dict[str, Any]]:
    if not isinstance(systems, dict):
        problems.append(Problem("systems", "must be a mapping of named systems", systems, True))
        return []
    chosen = systems.get(target_name) if isinstance(target_name, str) else None
    candidates = [chosen] if chosen else list(systems.values())
    targets: list[dict[str, Any]] = []
    for system in candidates:
        system = _unnest(system or {})
        stype = str(system.get("type", "LocalSystem"))
        if stype != "LocalSystem":
            problems.append(
                Problem(
                    "systems",
                    f"system type {stype!r} not supported; olive-ext runs on this machine",
                    allowed="LocalSystem",
                )
            )
            continue
        for acc in system.get("accelerators") or [{"device": "cpu"}]:
            device = str(acc.get("device", "cpu")).lower()
            providers = acc.get("execution_providers") or [None]
            for provider in providers:
                targets.append({"device": device} | ({"provider": provider} if provider else {}))
    return targets


def _passes(passes: Any, data_names: set[str], problems: list[Problem]) -> dict[str, Any]:
    items = passes.items() if isinstance(passes, dict) else enumerate(passes or [])
    names = olive_pass_names()
    out: dict[str, Any] = {}
    for key, spec in items:
        step = str(spec.get("name", key)) if isinstance(spec, dict) else str(key)
        path = f"passes.{step}"
        if not isinstance(spec, dict) or "type" not in spec:
            problems.append(Problem(path, "a pass needs a `type`", spec, True))
            continue
        spec = _unnest(spec)
        olive_type = str(spec.pop("type"))
        spec.pop("name", None)
        ours = names.get(olive_type) or (olive_type if get_pass(olive_type) else None)
        if ours is None:
            problems.append(
                Problem(
                    f"{path}.type",
                    "Olive pass not implemented by olive-ext",
                    olive_type,
                    True,
                    allowed=", ".join(sorted(names)) or "(none registered)",
                )
            )
            continue
        cls = get_pass(ours)
        assert cls is not None
        for dkey in ("train_data_config", "eval_data_config", "data_config", "calibration_data_config"):
            ref = spec.get(dkey)
            if isinstance(ref, str) and ref not in data_names:
                problems.append(
                    Problem(
                        f"{path}.{dkey}",
                        "names a data config that data_configs lacks",
                        ref,
                        True,
                        allowed=", ".join(sorted(data_names)) or "(none)",
                    )
                )
        out[step] = {"type": ours, **cls.olive_type_params.get(olive_type, {}), **cls.from_olive(spec)}
    return out


_OLIVE_METRICS = {"latency": "latency", "throughput": "throughput", "accuracy": "accuracy", "size_on_disk": "size"}


def _evaluators(evaluators: Any, chosen: Any, problems: list[Problem]) -> dict[str, Any]:
    if not isinstance(evaluators, dict) or not evaluators:
        problems.append(Problem("evaluators", "must be a mapping of named evaluators", evaluators, True))
        return {}
    name = chosen if isinstance(chosen, str) and chosen in evaluators else next(iter(evaluators))
    metrics_out: list[str] = []
    constraints: dict[str, Any] = {}
    data = None
    for i, metric in enumerate((evaluators[name] or {}).get("metrics") or []):
        path = f"evaluators.{name}.metrics[{i}]"
        mtype = str(metric.get("type", ""))
        ours = _OLIVE_METRICS.get(mtype)
        subs = [s.get("name") for s in metric.get("sub_types") or []]
        if mtype == "accuracy" and "perplexity" in subs:
            ours = "perplexity"
        if ours is None:
            problems.append(
                Problem(
                    f"{path}.type", "Olive metric type not supported", mtype, True, allowed=", ".join(_OLIVE_METRICS)
                )
            )
            continue
        metrics_out.append(ours)
        data = data or metric.get("data_config")
        for sub in metric.get("sub_types") or []:
            goal = sub.get("goal") or {}
            gtype, value = goal.get("type"), goal.get("value")
            if value is None:
                continue
            if ours == "accuracy" and gtype == "max-degradation":
                constraints["max_accuracy_drop"] = float(value) * (100 if float(value) <= 1 else 1)
            elif ours == "latency" and gtype in {"threshold", "max-degradation"}:
                constraints["max_latency_ms"] = float(value)
            else:
                problems.append(
                    Problem(f"{path}.sub_types", f"goal {gtype!r} on {mtype} not supported", severity="note")
                )
    out: dict[str, Any] = {"metrics": metrics_out or ["size"], "constraints": constraints}
    if isinstance(data, str):
        out["data"] = data
    return out


def _search(strategy: Any, problems: list[Problem]) -> dict[str, Any] | None:
    if strategy in (False, None):
        return None
    if not isinstance(strategy, dict):
        return {"strategy": "grid"}
    sampler = str(strategy.get("sampler") or strategy.get("search_algorithm") or strategy.get("type") or "sequential")
    mapping = {"sequential": "grid", "exhaustive": "grid", "grid": "grid", "random": "random", "tpe": "tpe"}
    out: dict[str, Any] = {}
    if sampler.lower() in mapping:
        out["strategy"] = mapping[sampler.lower()]
    else:
        problems.append(
            Problem(
                "search_strategy.sampler",
                "search sampler not supported",
                sampler,
                True,
                allowed="sequential, random, tpe",
            )
        )
    budget = strategy.get("max_samples") or strategy.get("num_trials") or strategy.get("max_iter")
    if budget:
        out["max_candidates"] = int(budget)
    seed = strategy.get("seed") or (strategy.get("search_algorithm_config") or {}).get("seed")
    if seed is not None:
        out["seed"] = int(seed)
    return out
