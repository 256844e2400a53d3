"""Reading Microsoft Olive run configs (``olive run --config``) as olive-ext recipes: completely, or refused loudly.

Every key of an Olive config is either honoured or named in a problem, by the key path the user's file spells
(``passes.conversion.target_opset``, not our ``opset``):

- pass types are matched case-insensitively, as Olive does. A type with a native olive-ext pass runs natively
  when that pass honours every option given; otherwise, and for every other type olive-ai implements, the step
  runs Olive's own pass class through our ``olive`` pass (``{type: olive, olive_type: ..., config: {...}}``);
- passes, targets and evaluators that need a vendor SDK or a device this machine cannot have are refused naming
  both (``Problem.category`` "sdk" / "device"), and user scripts and files that are missing as "user_file";
- a key the translation would otherwise drop is an error of category "unhonoured"; ``lenient=True`` (the CLI's
  ``--lenient``) turns those into warnings, listed in the run's report.

:class:`Translation` keeps, for each translated key path, the user's key path, so problems found later by the
recipe's own checks name the user's keys too (:meth:`Translation.user_problem`).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from olive_ext.errors import Problem
from olive_ext.passes import olive_catalog
from olive_ext.passes.base import Pass, check_pass_params, get_pass, registered_passes
from olive_ext.recipe.olive_shapes import (
    OliveDataConfig,
    OliveEvaluator,
    OliveModel,
    OlivePass,
    OliveSearch,
    OliveSystem,
    shaped,
)

# Keys whose presence marks an Olive run config (our format uses none of them).
_OLIVE_MARKERS = {
    "systems",
    "data_configs",
    "evaluators",
    "evaluator",
    "search_strategy",
    "output_dir",
    "engine",
    "model",
    "host",
    "target",
    "workflow_id",
    "auto_optimizer_config",
    "evaluate_input_model",
    "log_severity_level",
}
# Olive keys about Olive's own logging, caching and bookkeeping: nothing of the model or the run's result.
_HARMLESS = {
    "host",
    "target",
    "workflow_id",
    "log_severity_level",
    "verbose",
    "clean_cache",
    "clean_evaluation_cache",
    "evaluate_input_model",
    "no_artifacts",
    "output_name",
    "plot_pareto_frontier",
    "evaluator",
    "ort_log_severity_level",
    "ort_py_log_severity_level",
    "log_to_file",
}
_MODEL_TYPES_HF = {"hfmodel", "pytorchmodel"}
_MODEL_TYPES_ONNX = {"onnxmodel"}
_OUR_TASKS = {"text-generation", "text-generation-with-past", "causal-lm", "text-classification", "feature-extraction"}
# The user's Python hooks on input_model (Olive imports model_script / user_script and calls these by name).
_MODEL_HOOKS = ("model_loader", "dummy_inputs_func", "io_config")
# Olive pass types of other Olive releases (not in the installed olive-ai) that drive a vendor toolchain
_VENDOR_TYPES = {
    "quark": "AMD Quark with the Ryzen AI / Vitis AI SDK and an AMD NPU",
    "ryzen": "the AMD Ryzen AI SDK and a Ryzen AI NPU",
    "vitis": "AMD Vitis AI / Ryzen AI software and a Ryzen AI NPU",
    "snpe": "the Qualcomm SNPE SDK and a Snapdragon device",
    "qnn": "the Qualcomm QNN SDK and a Snapdragon NPU",
    "qairt": "the Qualcomm AI Runtime SDK (qairt-dev) and a Snapdragon NPU",
    "aitkpython": "the AI Toolkit for VS Code (its own Olive build runs this script pass)",
}
# Olive options our passes' translations leave out, with the values that ask for what our pass does anyway
_SAME_AS_OURS: dict[str, dict[str, Any]] = {
    "onnxconversion": {"device": ["cpu"]},
    "onnxstaticquantization": {"quant_format": ["QDQ"], "quant_mode": ["static"], "quant_preprocess": [False]},
    "extractadapters": {"make_inputs": [True]},
}
# what our pass's validation says of an option it lacks, or of a value only Olive's pass takes
_LACKING = {"unknown key", "value not allowed"}
# Olive's ModelBuilder pass fails with onnxruntime-genai 0.18: ours always runs it.
_NO_OLIVE_FALLBACK = {"modelbuilder"}
OLIVE_INSTALL = "pip install 'olive-ext[olive]'"
LENIENT_HINT = "; or run with --lenient to go on without it"

# execution provider (lower case, no suffix) -> (what it needs, category) where this machine cannot have it
_PROVIDER_NEEDS = {
    "nvtensorrtrtx": ("NVIDIA TensorRT-RTX (onnxruntime's NvTensorRTRTX provider) and an NVIDIA RTX GPU", "sdk"),
    "tensorrt": ("NVIDIA TensorRT (onnxruntime-gpu built with TensorRT) and an NVIDIA GPU", "sdk"),
    "qnn": ("the Qualcomm QNN SDK (onnxruntime-qnn) and a Snapdragon NPU", "sdk"),
    "vitisai": ("AMD Vitis AI / Ryzen AI software and a Ryzen AI NPU", "sdk"),
    "migraphx": ("AMD ROCm with MIGraphX and an AMD GPU", "sdk"),
    "rocm": ("AMD ROCm and an AMD GPU", "sdk"),
}
_PROVIDER_DEVICE = {
    "cpu": "cpu",
    "cuda": "gpu",
    "dml": "gpu",
    "webgpu": "gpu",
    "openvino": "cpu",
    "nvtensorrtrtx": "gpu",
    "tensorrt": "gpu",
    "qnn": "npu",
    "vitisai": "npu",
    "migraphx": "gpu",
    "rocm": "gpu",
}


def is_olive_config(raw: dict[str, Any]) -> bool:
    """True when the mapping uses Olive's run-config layout."""
    if set(raw) & _OLIVE_MARKERS:
        return True
    model = raw.get("input_model")
    return isinstance(model, dict) and "type" in model and "path" not in model


def olive_pass_names() -> dict[str, str]:
    """Olive pass type name -> our registered pass name, for every pass that implements one natively."""

    return {o: name for name, cls in registered_passes().items() for o in cls.olive_types}


def olive_ai_installed() -> bool:
    """Whether olive-ai (the ``olive`` package) can be imported here; it is not imported."""
    return importlib.util.find_spec("olive") is not None


@dataclass
class Translation:
    """Our recipe mapping, the problems found while translating, and our key paths -> the user's."""

    recipe: dict[str, Any]
    problems: list[Problem]
    paths: dict[str, str] = field(default_factory=dict)

    def user_path(self, path: str) -> str:
        """The user's spelling of one of our key paths (the longest translated prefix is replaced)."""
        best = ""
        for ours in self.paths:
            if len(ours) > len(best) and (path == ours or path.startswith((ours + ".", ours + "["))):
                best = ours
        return self.paths[best] + path[len(best) :] if best else path

    def user_problem(self, problem: Problem) -> Problem:
        user = self.user_path(problem.path)
        return problem if user == problem.path else dataclasses.replace(problem, path=user)


def translate(raw: dict[str, Any], base_dir: Path | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """Return (our recipe mapping, problems and notes) for an Olive run config."""
    t = translate_config(raw, base_dir)
    return t.recipe, t.problems


@dataclass
class _Ctx:
    """What the sections of one translation share."""

    problems: list[Problem]
    paths: dict[str, str]
    base_dir: Path | None
    olive_data: dict[str, dict[str, Any]] = field(default_factory=dict)  # every data config, Olive's form
    our_data: set[str] = field(default_factory=set)  # the data configs our `data` expresses completely
    model_needs_olive: list[str] = field(default_factory=list)  # the input_model keys only Olive's loading honours
    olive_model: dict[str, Any] = field(default_factory=dict)  # the Olive model config, for Olive's passes

    def user_path(self, path: str) -> str:
        return Translation({}, [], self.paths).user_path(path)

    def error(self, path: str, message: str, category: Any = None, hint: str | None = None, **kw: Any) -> None:
        self.problems.append(Problem(path, message, hint=hint, category=category, **kw))

    def note(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message, severity="note"))

    def unhonoured(self, path: str, message: str, hint: str) -> None:
        """A key the translation cannot honour and would drop: an error, a warning with --lenient."""
        self.problems.append(Problem(path, message, hint=hint + LENIENT_HINT, category="unhonoured"))

    def folders(self) -> list[Path]:
        """Where Olive may have been run from: here, the config's folder and the two above it."""
        bases = [Path(".")]
        if self.base_dir is not None:
            bases += [self.base_dir, *list(self.base_dir.resolve().parents)[:2]]
        return bases

    def resolve(self, name: str, script_dir: str | None = None) -> Path | None:
        """A user file as Olive finds it (relative to the script dir or the folder Olive ran in), or None."""
        if Path(name).is_absolute():
            return Path(name) if _is_file(Path(name)) else None
        candidates = []
        for base in self.folders():
            if script_dir is not None:
                candidates.append(base / script_dir / name)
            candidates.append(base / name)
        return next((c.resolve() for c in candidates if _is_file(c)), None)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def translate_config(raw: dict[str, Any], base_dir: Path | None = None) -> Translation:
    """Translate an Olive run config; ``base_dir`` is its folder (user scripts and files are found from there)."""
    problems: list[Problem] = []
    ctx = _Ctx(problems, {}, base_dir)
    raw = dict(raw)
    engine = raw.pop("engine", None)
    if isinstance(engine, dict):  # older Olive nests these under `engine`
        for key, value in engine.items():
            if key not in raw:
                raw[key] = value
                ctx.paths[str(key)] = f"engine.{key}"
    out: dict[str, Any] = {}

    model_key = "input_model" if "input_model" in raw else ("model" if "model" in raw else None)
    if model_key is None:
        ctx.error("input_model", "required key is missing", hint="add input_model: {type: HfModel, model_path: ...}")
    else:
        ctx.paths["input_model"] = model_key
        out["input_model"] = _input_model(raw.pop(model_key), model_key, ctx)

    if "data_configs" in raw:
        out["data"] = _data_configs(raw.pop("data_configs"), ctx)
    if "systems" in raw:
        targets = _systems(raw.pop("systems"), raw.get("target"), ctx)
        if targets:
            out["targets"] = targets
    if "passes" in raw:
        out["passes"] = _passes(raw.pop("passes"), ctx)
    evaluators = raw.pop("evaluators", None)
    named_metrics = _named_metrics(raw.pop("metrics", None), ctx)
    if evaluators:
        evaluate = _evaluators(evaluators, raw.get("evaluator"), named_metrics, ctx)
        if evaluate:
            out["evaluate"] = evaluate
    if "search_strategy" in raw:
        search = _search(raw.pop("search_strategy"), ctx)
        if search:
            out["search"] = search
    if "output_dir" in raw:
        output_dir = shaped(raw.pop("output_dir"), str, ctx.paths.get("output_dir", "output_dir"), problems)
        if output_dir is not None:
            out["output"] = {"path": output_dir}
            ctx.paths["output.path"] = ctx.paths.get("output_dir", "output_dir")
    if "cache_dir" in raw:
        out["cache_dir"] = shaped(raw.pop("cache_dir"), str, ctx.paths.get("cache_dir", "cache_dir"), problems)
    if "search_space" in raw:
        raw.pop("search_space")
        ctx.error(
            "search_space",
            "not an Olive or olive-ext key",
            hint="write the choices as a list on the pass parameter, e.g. passes.lora.r: [8, 16, 32]",
        )
    if "packaging_config" in raw:
        raw.pop("packaging_config")
        ctx.unhonoured(
            "packaging_config",
            "Olive's packaging is not run by olive-ext",
            "remove it and package the result with `olive-ext package`",
        )
    for key in list(raw):
        if key in _HARMLESS:
            raw.pop(key)
        elif key in {"data", "targets", "evaluate", "search", "output"}:
            out[key] = raw.pop(key)  # already in our format
    for key in raw:
        where = ctx.paths.get(str(key), str(key))
        ctx.unhonoured(where, "Olive key not supported by olive-ext", "remove it (see the README's Olive section)")
    if ctx.model_needs_olive and any(s.get("type") == "olive" for s in (out.get("passes") or {}).values()):
        out["input_model"]["olive"] = ctx.olive_model  # Olive's passes load the model as the user's file says
    return Translation(out, problems, ctx.paths)


def _unnest(section: dict[str, Any]) -> dict[str, Any]:
    """Olive's older format nests parameters under `config`; flatten it."""
    inner = section.get("config")
    if isinstance(inner, dict):
        section = {**{k: v for k, v in section.items() if k != "config"}, **inner}
    return section


def _nested(section: Any) -> bool:
    return isinstance(section, dict) and isinstance(section.get("config"), dict)


# --------------------------------------------------------------------------- input model


def _input_model(model: Any, key: str, ctx: _Ctx) -> dict[str, Any]:
    if not isinstance(model, dict):
        ctx.error(key, "must be a mapping with type and model_path", value=model, has_value=True)
        return {}
    at = f"{key}.config" if _nested(model) else key
    model = shaped(_unnest(model), OliveModel, key, ctx.problems)
    if model is None:
        return {}
    ctx.olive_model = dict(model)
    mtype = str(model.pop("type", None) or "HfModel")
    out: dict[str, Any] = {}
    path = model.pop("model_path", None) or model.pop("model_name_or_path", None)
    if mtype.lower() in _MODEL_TYPES_ONNX:
        out["kind"] = "onnx"
        name = model.pop("onnx_file_name", None)
        if path is not None:
            full = Path(str(path)) / str(name) if name else Path(str(path))
            found = ctx.resolve(str(full))
            if found is None:
                ctx.error(
                    f"{at}.model_path",
                    "the ONNX model file is not there",
                    category="user_file",
                    value=str(full),
                    has_value=True,
                    hint="give the path of an existing .onnx file",
                )
            else:
                path = str(found)
    elif mtype.lower() not in _MODEL_TYPES_HF:
        ctx.error(
            f"{at}.type",
            "Olive model type not supported",
            value=mtype,
            has_value=True,
            allowed="HfModel, PyTorchModel, ONNXModel",
        )
    if path is None:
        if not model.get("model_loader"):
            ctx.error(f"{at}.model_path", "required key is missing")
        out["path"] = "."  # the model comes from the user's model_loader
    else:
        out["path"] = str(path)
    ctx.paths["input_model.path"] = f"{at}.model_path"
    _load_kwargs(model.pop("load_kwargs", None) or {}, f"{at}.load_kwargs", out, ctx)
    if model.pop("trust_remote_code", None):
        out["trust_remote_code"] = True
    task = model.pop("task", None)
    if task is not None:
        if str(task) in _OUR_TASKS:
            out["task"] = task
        else:  # the model's task as Olive's passes read it (image-classification, automatic-speech-recognition...)
            ctx.model_needs_olive.append(f"{at}.task")
    for ours in ("adapter_path", "revision", "gguf_file"):
        if ours in model:
            out[ours] = model.pop(ours)
            ctx.paths[f"input_model.{ours}"] = f"{at}.{ours}"
    _model_hooks(model, at, ctx)
    model.pop("model_attributes", None)  # read from the model's config.json, as Olive does when it is unset
    for rest in model:
        ctx.unhonoured(f"{at}.{rest}", "Olive model key not supported by olive-ext", "remove it")
    return out


def _load_kwargs(kwargs: Any, at: str, out: dict[str, Any], ctx: _Ctx) -> None:
    """``load_kwargs``: trust_remote_code only when asked; the dtype and attention are Olive's loading's."""
    if not isinstance(kwargs, dict):
        ctx.error(at, "must be a mapping", value=kwargs, has_value=True)
        return
    for key, value in kwargs.items():
        if key == "trust_remote_code":
            if value is True:
                out["trust_remote_code"] = True
        elif key in {"torch_dtype", "dtype", "attn_implementation"}:
            ctx.model_needs_olive.append(f"{at}.{key}")
        else:
            ctx.unhonoured(
                f"{at}.{key}",
                "load_kwargs key not supported by olive-ext",
                "olive-ext reads torch_dtype, attn_implementation and trust_remote_code",
            )


def _model_hooks(model: dict[str, Any], at: str, ctx: _Ctx) -> None:
    """The user's model_script / script_dir and the functions Olive calls from it: there, or a named refusal."""
    script_dir = model.pop("script_dir", None)
    script = model.pop("model_script", None) or model.pop("user_script", None)
    script_path = None
    if script_dir is not None and not _dir(script_dir, ctx):
        ctx.error(f"{at}.script_dir", "the folder is not there", category="user_file", value=script_dir, has_value=True)
    if script is not None:
        script_path = ctx.resolve(str(script), str(script_dir) if script_dir else None)
        if script_path is None:
            ctx.error(
                f"{at}.model_script",
                "the user script is not there",
                category="user_file",
                value=script,
                has_value=True,
                hint="give the .py file that defines the functions this model names",
            )
        else:
            ctx.olive_model["model_script"] = str(script_path)
            found = _dir(script_dir, ctx) if script_dir is not None else None
            ctx.olive_model["script_dir"] = str(found or script_path.parent)
    for hook in _MODEL_HOOKS:
        if hook not in model:
            continue
        value = model.pop(hook)
        ctx.model_needs_olive.append(f"{at}.{hook}")
        if isinstance(value, str) and hook != "io_config":
            if script is None:
                ctx.error(
                    f"{at}.{hook}",
                    "names a function but no model_script is given",
                    value=value,
                    has_value=True,
                    hint="add model_script: the .py file that defines it",
                )
            elif script_path is not None:
                missing = _undefined(script_path, value)
                if missing:
                    ctx.error(f"{at}.{hook}", missing, value=value, has_value=True)
        elif isinstance(value, str) and hook == "io_config" and script is not None and script_path is not None:
            missing = _undefined(script_path, value)
            if missing:
                ctx.error(f"{at}.{hook}", missing, value=value, has_value=True)


def _dir(folder: Any, ctx: _Ctx) -> Path | None:
    for base in ctx.folders():
        if base is not None:
            candidate = base / str(folder)
            try:
                if candidate.is_dir():
                    return candidate.resolve()
            except (OSError, ValueError):
                pass
    return None


def _undefined(script: Path, name: str) -> str | None:
    """Why ``name`` is not a top-level function or value of ``script`` (read, not imported), or None."""
    try:
        tree = ast.parse(script.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError as e:
        return f"{script.name} does not parse: line {e.lineno}: {e.msg}"
    defined: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom | ast.Import):
            defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return None if name in defined else f"{script.name} defines no function {name!r}"


# --------------------------------------------------------------------------- data


# pre_process_data_config keys our data reading does differently on purpose (padding is always per batch)
_DATA_NOTES = ("max_seq_len", "pad_to_max_len", "corpus_strategy", "add_special_tokens", "strategy")


def _data_configs(configs: Any, ctx: _Ctx) -> dict[str, Any]:
    if isinstance(configs, dict):
        items = [(f"data_configs.{k}", {**v, "name": k} if isinstance(v, dict) else v) for k, v in configs.items()]
    elif isinstance(configs, list):
        items = [(f"data_configs[{i}]", v) for i, v in enumerate(configs)]
    else:
        ctx.error("data_configs", "must be a list of data configs", value=configs, has_value=True)
        return {}
    out: dict[str, Any] = {}
    for i, (path, dc) in enumerate(items):
        if not isinstance(dc, dict):
            ctx.error(path, "must be a mapping", value=dc, has_value=True)
            continue
        dc = shaped(dc, OliveDataConfig, path, ctx.problems)
        if dc is None:
            continue
        name = str(dc.get("name") or f"data{i}")
        olive_form = dict(dc)
        if dc.get("user_script"):
            script = ctx.resolve(str(dc["user_script"]), str(dc["script_dir"]) if dc.get("script_dir") else None)
            if script is None:
                ctx.error(
                    f"{path}.user_script",
                    "the user script is not there",
                    category="user_file",
                    value=dc["user_script"],
                    has_value=True,
                )
            else:
                olive_form["user_script"] = str(script)
                found = _dir(dc["script_dir"], ctx) if dc.get("script_dir") else None
                olive_form["script_dir"] = str(found or script.parent)  # its sibling modules import, as in Olive
        olive_form.pop("name", None)
        olive_form["name"] = name
        ctx.olive_data[name] = olive_form
        spec, notes = _our_dataset(dc, path)
        if spec is not None:
            out[name] = spec
            ctx.our_data.add(name)
            ctx.paths[f"data.{name}"] = path
            for note_path, message in notes:
                ctx.note(note_path, message)
    return out


def _our_dataset(dc: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """Our DatasetSpec for an Olive data config when it says nothing we would drop, else None (Olive's passes
    read it as it is)."""
    if str(dc.get("type") or "HuggingfaceContainer") != "HuggingfaceContainer":
        return None, []
    if any(dc.get(k) for k in ("user_script", "components", "dataloader_config", "post_process_data_config")):
        return None, []
    load = dict(dc.get("load_dataset_config") or {})
    pre = dict(dc.get("pre_process_data_config") or {})
    spec: dict[str, Any] = {}
    data_files = load.pop("data_files", None)
    data_name = load.pop("data_name", None)
    if data_name is None and data_files is not None:
        first = data_files[0] if isinstance(data_files, list) else data_files
        data_name = "csv" if first.endswith(".csv") else "parquet" if first.endswith(".parquet") else "json"
    if data_name is None:
        return None, []
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
    notes = []
    for dropped in _DATA_NOTES:
        if dropped in pre:
            pre.pop(dropped)
            notes.append(
                (
                    f"{path}.pre_process_data_config.{dropped}",
                    "olive-ext pads per batch and sets lengths on the training pass",
                )
            )
    if load or pre:  # a key our reading has no place for (subset, streaming, input_cols...): Olive's form only
        return None, []
    return spec, notes


# --------------------------------------------------------------------------- systems


def _systems(systems: Any, target_name: Any, ctx: _Ctx) -> list[dict[str, Any]]:
    if not isinstance(systems, dict):
        ctx.error("systems", "must be a mapping of named systems", value=systems, has_value=True)
        return []
    chosen = target_name if isinstance(target_name, str) and systems.get(target_name) else None
    candidates = [(chosen, systems[chosen])] if chosen else list(systems.items())
    targets: list[dict[str, Any]] = []
    for name, system in candidates:
        at = f"systems.{name}.config" if _nested(system) else f"systems.{name}"
        system = shaped(
            _unnest(system) if isinstance(system, dict) else system or {}, OliveSystem, f"systems.{name}", ctx.problems
        )
        if system is None:
            continue
        stype = str(system.get("type") or "LocalSystem")
        accelerators = system.get("accelerators") or [{"device": "cpu"}]
        if stype != "LocalSystem":
            providers = [_short(p) for a in accelerators for p in a.get("execution_providers") or []]
            needs = [_PROVIDER_NEEDS[p][0] for p in providers if p in _PROVIDER_NEEDS]
            if needs:  # a PythonEnvironment for a vendor SDK: the SDK is the reason
                ctx.error(f"{at}.type", f"needs {needs[0]}", category="sdk")
            else:
                ctx.error(
                    f"{at}.type",
                    f"system type {stype!r} not supported; olive-ext runs on this machine",
                    allowed="LocalSystem",
                    hint="use a LocalSystem (delete `type`)",
                )
            continue
        for j, acc in enumerate(accelerators):
            acc_at = f"{at}.accelerators[{j}]"
            providers = acc.get("execution_providers") or [None]
            for k, provider in enumerate(providers):
                target = _target(acc.get("device"), provider, f"{acc_at}.execution_providers[{k}]", ctx)
                if target is not None:
                    ctx.paths[f"targets[{len(targets)}]"] = acc_at
                    targets.append(target)
    return targets


def _short(provider: Any) -> str:
    return str(provider or "").lower().removesuffix("executionprovider")


def _target(device: Any, provider: Any, at: str, ctx: _Ctx) -> dict[str, Any] | None:
    short = _short(provider)
    if short in _PROVIDER_NEEDS:
        needs, category = _PROVIDER_NEEDS[short]
        ctx.error(
            at,
            f"{provider} needs {needs}",
            category=category,
            hint="build for another target here (CPUExecutionProvider, CUDAExecutionProvider)",
        )
        return None
    dev = str(device or _PROVIDER_DEVICE.get(short, "cpu")).lower()
    if short == "openvino":
        if dev != "cpu":
            ctx.error(
                at,
                f"OpenVINO on an Intel {dev.upper()} needs that device; this machine has a CPU",
                category="device",
                hint="set the accelerator's device to cpu",
            )
            return None
        if importlib.util.find_spec("openvino") is None:
            ctx.error(at, "OpenVINO needs the openvino package", category="sdk", hint="pip install openvino")
            return None
        return {"device": "cpu"}  # OpenVINO's IR runs on the CPU through the openvino package
    if dev not in {"cpu", "gpu", "npu"}:
        ctx.error(
            at.rsplit(".", 1)[0] + ".device",
            "device not supported",
            value=device,
            has_value=True,
            allowed="cpu, gpu, npu",
        )
        return None
    return {"device": dev} | ({"provider": provider} if provider else {})


# --------------------------------------------------------------------------- passes


def _passes(passes: Any, ctx: _Ctx) -> dict[str, Any]:
    if not isinstance(passes, dict | list):
        ctx.error("passes", "must be a mapping of named passes", value=passes, has_value=True)
        return {}
    items = list(passes.items()) if isinstance(passes, dict) else list(enumerate(passes))
    natives = {o.lower(): (o, name) for o, name in olive_pass_names().items()}
    out: dict[str, Any] = {}
    first_model_pass = True
    for key, spec in items:
        step = str(spec.get("name", key)) if isinstance(spec, dict) and isinstance(passes, list) else str(key)
        path = f"passes[{key}]" if isinstance(passes, list) else f"passes.{key}"
        if not isinstance(spec, dict) or "type" not in spec:
            ctx.error(path, "a pass needs a `type`", value=spec, has_value=True)
            continue
        at = f"{path}.config" if _nested(spec) else path
        spec = shaped(_unnest(spec), OlivePass, path, ctx.problems)
        if spec is None:
            continue
        olive_type = str(spec.pop("type"))
        spec.pop("name", None)
        ctx.paths[f"passes.{step}"] = path
        native = natives.get(olive_type.lower())
        reasons = list(ctx.model_needs_olive) if first_model_pass else []
        first_model_pass = False
        translated = None
        if native is not None:
            translated = _native(native, spec, step, path, at, reasons, ctx)
        if translated is None:
            translated = _through_olive(olive_type, spec, step, path, at, native, ctx)
        if translated:
            out[step] = translated
    return out


def _native(
    native: tuple[str, str], spec: dict[str, Any], step: str, path: str, at: str, reasons: list[str], ctx: _Ctx
) -> dict[str, Any] | None:
    """Our own pass for an Olive type when it honours every option given.

    Otherwise Olive's own pass runs the step (None is returned) where olive-ai has it; where it cannot (not
    installed, or Olive's pass does not work here) the options our pass lacks are named: errors of category
    "unhonoured", which --lenient drops. An empty dict: the step is refused (its problems are recorded).
    """
    canonical, ours = native
    cls = get_pass(ours)
    assert cls is not None
    params, keymap, dropped = _from_olive(cls, canonical, spec)
    trial = check_pass_params(cls, params, f"passes.{step}")
    trial += [Problem(f"passes.{step}.{key}", "unknown key") for key in dropped]
    for name in ("data_config", "train_data_config", "eval_data_config"):
        value = spec.get(name)
        if isinstance(value, str) and value in ctx.olive_data and value not in ctx.our_data:
            reasons.append(f"{at}.{name}")
    for ours_key, user_key in keymap.items():
        ctx.paths[f"passes.{step}.{ours_key}"] = f"{at}.{user_key}"
    lacking = [p for p in trial if p.message in _LACKING]  # what Olive's pass takes and ours does not
    if not lacking and not reasons:  # a value out of range is the user's to fix: named by the user's key later
        return {"type": ours, **cls.olive_type_params.get(canonical, {}), **params}
    fallback = canonical.lower() not in _NO_OLIVE_FALLBACK
    if fallback and olive_ai_installed() and _olive_entry(canonical) is not None:
        keys = [ctx.user_path(p.path).rsplit(".", 1)[-1] for p in lacking] + [r.rsplit(".", 1)[-1] for r in reasons]
        ctx.note(
            f"{at}.type",
            f"runs Olive's own {canonical}: olive-ext's {ours} pass does not take {', '.join(dict.fromkeys(keys))}",
        )
        return None
    if fallback:
        what = ", ".join([*reasons, *(ctx.user_path(p.path) for p in lacking)][:3])
        ctx.error(
            f"{at}.type",
            f"{canonical} with {what} needs Olive's own pass, through olive-ai, which is not installed",
            hint=OLIVE_INSTALL,
        )
        return {}
    for reason in reasons:
        if ".load_kwargs." in reason:
            ctx.note(
                reason,
                f"{canonical} builds from the checkpoint at its `precision` (load_kwargs matter to "
                "passes that load the model in PyTorch)",
            )
        else:
            ctx.unhonoured(reason, f"olive-ext's {ours} pass cannot honour it", f"remove it for the {canonical} pass")
    for problem in trial:
        if problem.message != "unknown key":
            continue  # a value our pass refuses: the recipe's checks name it by the user's key
        key = problem.path.rsplit(".", 1)[-1]
        params.pop(key, None)
        ctx.unhonoured(
            f"{at}.{keymap.get(key, key)}",
            f"option of Olive's {canonical} that olive-ext's {ours} pass does not take",
            "remove it",
        )
    return {"type": ours, **cls.olive_type_params.get(canonical, {}), **params}


def _from_olive(
    cls: type[Pass[Any]], canonical: str, spec: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """The pass's own translation of the Olive params, which Olive key each of our keys came from, and the Olive
    keys the translation leaves out although their value asks for something our pass does not do."""
    params = cls.from_olive(dict(spec))
    keymap: dict[str, str] = {}
    dropped = []
    same = _SAME_AS_OURS.get(canonical.lower(), {})
    for key, value in spec.items():
        try:
            alone = cls.from_olive({key: value})
        except Exception:  # a pass's translation of one key alone may need the others: leave it unmapped
            continue
        if not alone and not (key in same and value in same[key]):
            dropped.append(key)
        for ours in alone:
            if ours != key and ours not in spec:  # a key the user also wrote keeps its own name
                keymap.setdefault(ours, key)
    return params, keymap, dropped


def _needs_category(needs: str) -> Any:
    """What an Olive pass's ``needs`` names: a pip package to install, a vendor SDK, or a device."""
    text = needs.lower()
    if "pip package" in text:
        return "package"
    return "sdk" if "sdk" in text or "(" in text else "device"


def _olive_entry(olive_type: str) -> Any:
    try:
        return olive_catalog.lookup(olive_type)
    except Exception:  # the catalog reads olive-ai's own list: without olive-ai it has none
        return None


def _through_olive(
    olive_type: str, spec: dict[str, Any], step: str, path: str, at: str, native: Any, ctx: _Ctx
) -> dict[str, Any] | None:
    """The ``olive`` step running Olive's own pass class, or a named refusal."""
    if not olive_ai_installed():
        ctx.error(
            f"{at}.type", f"Olive pass {olive_type} runs through olive-ai, which is not installed", hint=OLIVE_INSTALL
        )
        return None
    entry = _olive_entry(olive_type)
    vendor = next((needs for prefix, needs in _VENDOR_TYPES.items() if olive_type.lower().startswith(prefix)), None)
    if entry is None and vendor is not None:
        ctx.error(f"{at}.type", f"Olive pass {olive_type} needs {vendor}", category="sdk")
        return None
    if entry is None:
        names = sorted(olive_pass_names())
        close = difflib.get_close_matches(olive_type, names, n=1, cutoff=0.6)
        ctx.error(
            f"{at}.type",
            "not a pass type of Olive or olive-ext",
            value=olive_type,
            has_value=True,
            hint=f"did you mean '{close[0]}'?" if close else "see `olive-ext validate --list-passes`",
        )
        return None
    if entry.needs:
        ctx.error(f"{at}.type", f"Olive pass {entry.name} {entry.needs}", category=_needs_category(entry.needs))
        return None
    config = dict(spec)
    for key, value in spec.items():  # data configs by name: Olive's pass gets the config itself
        if key.endswith("data_config") and isinstance(value, str) and value in ctx.olive_data:
            config[key] = ctx.olive_data[value]
    ctx.paths[f"passes.{step}.config"] = at
    ctx.paths[f"passes.{step}.olive_type"] = f"{path}.type"
    return {"type": "olive", "olive_type": entry.name, "config": config}


# --------------------------------------------------------------------------- evaluators

_OLIVE_METRICS = {"latency": "latency", "throughput": "throughput", "accuracy": "accuracy", "size_on_disk": "size"}
# sub-types our metric reports (latency: min/median/max of the timed runs)
_SUB_TYPES = {
    "latency": {"avg", "mean", "p50", "min", "max"},
    "throughput": {"avg", "mean", "p50", "min", "max"},
    "accuracy": {"accuracy", "accuracy_score", "exact_match"},
    "size": {"size", "size_on_disk"},
}


def _named_metrics(metrics: Any, ctx: _Ctx) -> dict[str, tuple[str, Any]]:
    """Olive's top-level ``metrics`` (evaluators name them): metric name -> (its key path, the metric)."""
    if metrics is None:
        return {}
    if isinstance(metrics, dict):
        return {str(k): (f"metrics.{k}", {**v, "name": k} if isinstance(v, dict) else v) for k, v in metrics.items()}
    if isinstance(metrics, list):
        return {str(m.get("name") if isinstance(m, dict) else i): (f"metrics[{i}]", m) for i, m in enumerate(metrics)}
    ctx.error("metrics", "must be a list of metrics", value=metrics, has_value=True)
    return {}


def _evaluators(evaluators: Any, chosen: Any, named: dict[str, tuple[str, Any]], ctx: _Ctx) -> dict[str, Any]:
    if not isinstance(evaluators, dict) or not evaluators:
        ctx.error("evaluators", "must be a mapping of named evaluators", value=evaluators, has_value=True)
        return {}
    name = chosen if isinstance(chosen, str) and chosen in evaluators else next(iter(evaluators))
    at = f"evaluators.{name}"
    ctx.paths["evaluate"] = at
    raw = evaluators[name] or {}
    where: dict[int, str] = {}  # metric index -> its key path, where an evaluator names a top-level metric
    if isinstance(raw, dict) and isinstance(raw.get("metrics"), list):
        metrics = []
        for i, metric in enumerate(raw["metrics"]):
            if isinstance(metric, str) and metric in named:
                where[i], metric = named[metric]
            metrics.append(metric)
        raw = {**raw, "metrics": metrics}
    etype = str(raw.get("type") or "") if isinstance(raw, dict) else ""
    if etype:
        ctx.unhonoured(
            f"{at}.type",
            f"{etype} is not run by olive-ext",
            "measure with metrics: accuracy, latency, throughput on a data config",
        )
        return {}
    metrics_out: list[str] = []
    constraints: dict[str, Any] = {}
    data = None
    chosen_one = shaped(raw, OliveEvaluator, at, ctx.problems)
    for i, metric in enumerate((chosen_one or {}).get("metrics") or []):
        path = where.get(i, f"{at}.metrics[{i}]")
        mtype = str(metric.get("type") or "")
        ours = _OLIVE_METRICS.get(mtype)
        subs = [str(s.get("name")) for s in metric.get("sub_types") or []]
        if mtype == "accuracy" and "perplexity" in subs:
            ours = "perplexity"
        if ours is None:
            ctx.unhonoured(
                f"{path}.type",
                f"Olive metric type {mtype!r} not supported",
                "use accuracy, latency, throughput or size_on_disk",
            )
            continue
        dc = metric.get("data_config")
        if ours in {"accuracy", "perplexity"}:
            if isinstance(dc, str) and dc in ctx.olive_data and dc not in ctx.our_data:
                ctx.unhonoured(
                    f"{path}.data_config",
                    f"olive-ext's {ours} cannot read data config {dc!r} (user scripts, dataloaders or post-processing)",
                    "give a data config with data_files and text_cols/text_template",
                )
                continue
            if isinstance(dc, str):
                data = data or dc
                ctx.paths.setdefault("evaluate.data", f"{path}.data_config")
        for j, sub in enumerate(metric.get("sub_types") or []):
            sub_name = str(sub.get("name"))
            if ours != "perplexity" and sub_name not in _SUB_TYPES.get(ours, set()):
                ctx.unhonoured(
                    f"{path}.sub_types[{j}].name",
                    f"{mtype} sub-type {sub_name!r} is not measured by olive-ext",
                    f"olive-ext measures {', '.join(sorted(_SUB_TYPES[ours]))}",
                )
                continue
            goal = sub.get("goal") or {}
            gtype, value = goal.get("type"), goal.get("value")
            if value is None:
                continue
            if ours == "accuracy" and gtype == "max-degradation":
                constraints["max_accuracy_drop"] = float(value) * (100 if float(value) <= 1 else 1)
            elif (ours == "latency" and gtype == "threshold") or (ours == "latency" and gtype == "max-degradation"):
                constraints["max_latency_ms"] = float(value)
            else:
                ctx.unhonoured(
                    f"{path}.sub_types[{j}].goal",
                    f"goal {gtype!r} on {mtype} not supported",
                    "olive-ext constrains accuracy (max-degradation) and latency (threshold)",
                )
        if ours not in metrics_out:
            metrics_out.append(ours)
    out: dict[str, Any] = {"metrics": metrics_out or ["size"], "constraints": constraints}
    if data is not None:
        out["data"] = data
    return out


def _search(strategy: Any, ctx: _Ctx) -> dict[str, Any] | None:
    if strategy in (False, None):
        return None
    where = ctx.paths.get("search_strategy", "search_strategy")
    if not isinstance(strategy, dict):
        return {"strategy": "grid"}
    strategy = shaped(strategy, OliveSearch, where, ctx.problems)
    if strategy is None:
        return None
    sampler = str(strategy.get("sampler") or strategy.get("search_algorithm") or strategy.get("type") or "sequential")
    mapping = {"sequential": "grid", "exhaustive": "grid", "grid": "grid", "random": "random", "tpe": "tpe"}
    out: dict[str, Any] = {}
    if sampler.lower() in mapping:
        out["strategy"] = mapping[sampler.lower()]
    else:
        ctx.error(
            f"{where}.sampler",
            "search sampler not supported",
            value=sampler,
            has_value=True,
            allowed="sequential, random, tpe",
        )
    budget = strategy.get("max_samples") or strategy.get("num_trials") or strategy.get("max_iter")
    if budget:
        out["max_candidates"] = budget
        ctx.paths["search.max_candidates"] = f"{where}.max_samples"
    seed = strategy.get("seed") or (strategy.get("search_algorithm_config") or {}).get("seed")
    if seed is not None:
        out["seed"] = seed  # the recipe schema checks it
        ctx.paths["search.seed"] = f"{where}.seed"
    return out
