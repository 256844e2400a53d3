"""Olive run-config sections other than passes, as olive-ext recipe sections: the input model (with its
load_kwargs and the user's hooks), data configs, systems (targets), evaluators and the search strategy."""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.util
import os
import re
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from olive_ext.artifacts import NO_MODEL_PATH, looks_like_hub_id
from olive_ext.data.load import LOCAL_BUILDERS, check_file_split
from olive_ext.errors import Problem, UserInputError
from olive_ext.evaluate.lm_eval_tasks import FILE_BUILDERS, TaskDataset
from olive_ext.evaluate.spec import OliveGoalType
from olive_ext.models.hub import ModelNotHereError, check_hub_model, hub_reachable, offline
from olive_ext.recipe.olive_context import (
    TranslationContext,
    find_dir,
    is_azureml_asset,
    located_script,
    nested,
    unnest,
)
from olive_ext.recipe.olive_lmeval import lm_evaluator_section, mteb_evaluator_section
from olive_ext.recipe.olive_shapes import OliveDataConfig, OliveEvaluator, OliveModel, OliveSearch, OliveSystem, shaped
from olive_ext.targets.spec import TargetSpec

_MODEL_TYPES_HF = {"hfmodel", "pytorchmodel"}
_MODEL_TYPES_ONNX = {"onnxmodel"}
_OUR_TASKS = {"text-generation", "text-generation-with-past", "causal-lm", "text-classification", "feature-extraction"}
# The user's Python hooks on input_model (Olive imports model_script / user_script and calls these by name).
_MODEL_HOOKS = ("model_loader", "dummy_inputs_func", "io_config")
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

# --------------------------------------------------------------------------- input model


def input_model_section(model: Any, key: str, ctx: TranslationContext) -> dict[str, Any]:
    """Our input_model from Olive's (``key``: input_model, or model in older files); the Olive form is kept in
    ``ctx.olive_model`` for Olive's passes."""
    if not isinstance(model, dict):
        ctx.error(key, "must be a mapping with type and model_path", value=model, has_value=True)
        return {}
    at = f"{key}.config" if nested(model) else key
    if is_azureml_asset(unnest(model).get("model_path")):
        return {}  # an Azure ML asset: refused where it is (olive_compat), nothing of the model to check here
    model = shaped(unnest(model), OliveModel, key, ctx.problems)
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
        ctx.olive_model[NO_MODEL_PATH] = True  # Olive's loader gets None; the folder is not the model's content
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
    _generative(model, at, ctx)
    for rest in model:
        ctx.unhonoured(f"{at}.{rest}", "Olive model key not supported by olive-ext", "remove it")
    return out


def _generative(model: dict[str, Any], at: str, ctx: TranslationContext) -> None:
    """Olive's old ``generative`` model flag (gone from olive-ai 0.13's model configs): false is what every model
    here is evaluated as (one forward pass per input), a note; true asks for generate()-based evaluation, unhonoured."""
    if "generative" not in model:
        return
    value = model.pop("generative")
    ctx.olive_model.pop("generative", None)  # olive-ai 0.13's model handlers do not take it
    if value in (False, None):
        ctx.note(f"{at}.generative", "false is Olive's default (and olive-ai 0.13 has no such key): dropped")
    else:
        ctx.unhonoured(
            f"{at}.generative",
            "Olive model key generative: true (generate()-based evaluation) is not supported by olive-ext",
            "remove it; olive-ext evaluates LLMs with its own metrics",
        )


def _load_kwargs(kwargs: Any, at: str, out: dict[str, Any], ctx: TranslationContext) -> None:
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


def _model_hooks(model: dict[str, Any], at: str, ctx: TranslationContext) -> None:
    """The user's model_script / script_dir and the functions Olive calls from it: there, or a named refusal."""
    script_dir = model.pop("script_dir", None)
    script = model.pop("model_script", None) or model.pop("user_script", None)
    script_path = None
    if script_dir is not None and not find_dir(script_dir, ctx):
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
            found = find_dir(script_dir, ctx) if script_dir is not None else None
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
    if script_path is not None and ctx.model_needs_olive and not any(p.path.startswith(at) for p in ctx.problems):
        problem = _import_problem(script_path, ctx.olive_model.get("script_dir"), f"{at}.model_script")
        if problem is None:  # its functions' own imports ran when Olive loaded the model, after the steps before
            hooks = [str(ctx.olive_model[h]) for h in _MODEL_HOOKS if isinstance(ctx.olive_model.get(h), str)]
            problem = _function_import_problem(script_path, ctx.olive_model.get("script_dir"), hooks,
                                               f"{at}.model_script")  # fmt: skip
        if problem is not None:  # it failed at run time, after the steps before the export
            ctx.problems.append(problem)


def _script_tree(script: Path) -> ast.Module:
    """The user's script, parsed once per translation's reads of it (each hook's name, its functions' imports)."""
    return _parsed(str(script), script.stat().st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _parsed(script: str, mtime_ns: int) -> ast.Module:
    return ast.parse(Path(script).read_text(encoding="utf-8", errors="replace"))


_IMPORT_GUARDS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _function_import_problem(script: Path, script_dir: str | None, hooks: list[str], path: str) -> Problem | None:
    """A package that the functions Olive calls (``hooks``, and the script's functions and classes they call in
    turn) import inside their bodies (NeMo's loader imports ``nemo`` when called) and that is neither installed nor
    beside the script, as a ``package`` problem; imports a ``try`` guards against ImportError are optional, and
    functions no hook reaches (another config's loader in the same script) are not read."""
    try:
        tree = _script_tree(script)
    except (OSError, SyntaxError):
        return None
    folders = [Path(script_dir) if script_dir else script.parent, script.parent]
    defined = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    reached: set[str] = set()
    todo = [h for h in hooks if h in defined]
    while todo:  # the hooks and what they call, by name, within the script
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        todo += [c.func.id for c in ast.walk(defined[name]) if isinstance(c, ast.Call)
                 and isinstance(c.func, ast.Name) and c.func.id in defined]  # fmt: skip

    def guarded(handlers: list[ast.ExceptHandler]) -> bool:
        for handler in handlers:
            caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            if handler.type is None or any(isinstance(t, ast.Name) and t.id in _IMPORT_GUARDS for t in caught):
                return True
        return False

    def imports(node: ast.AST, function: str | None) -> list[tuple[str, str]]:
        found = []
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Try) and guarded(child.handlers):
                continue  # an optional import
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            if inner is not None and isinstance(child, ast.Import):
                found += [(a.name.split(".")[0], inner) for a in child.names]
            elif inner is not None and isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module.split(".")[0], inner))
            found += imports(child, inner)
        return found

    top = ast.Module(body=[defined[n] for n in sorted(reached)], type_ignores=[])
    for module, function in imports(top, None):
        if module in sys.stdlib_module_names or any((f / f"{module}.py").exists() or (f / module).is_dir()
                                                    for f in folders):  # fmt: skip
            continue
        try:
            if importlib.util.find_spec(module) is not None:
                continue
        except (ImportError, ValueError):
            pass
        return Problem(path, f"the model script's {function}() imports {module!r}, which is not installed (Olive "
                       "calls it when it loads the model)", hint=f"pip install the package that provides {module!r}",
                       category="package")  # fmt: skip
    return None


def _import_problem(script: Path, script_dir: str | None, path: str) -> Problem | None:
    """Import the user's model script as Olive will (its folder on sys.path): what it lacks, as a problem."""
    name = f"_olive_ext_model_script_{abs(hash(str(script)))}"
    folder = str(script_dir or script.parent)
    added = [] if folder in sys.path else [folder]
    sys.path[:0] = added
    cwd = os.getcwd()  # a script that changes folder at import changed where the run's relative paths pointed
    try:
        spec = importlib.util.spec_from_file_location(name, script)
        if spec is None or spec.loader is None:
            return Problem(path, f"{script} cannot be imported as a Python module", category="user_file")
        with contextlib.redirect_stdout(sys.stderr):  # what it prints is not validate's output
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except BaseException as e:  # the user's own code: whatever it raises is the config's problem, not a crash
        if isinstance(e, KeyboardInterrupt):
            raise
        return user_script_problem(path, e, "the model script")
    finally:
        os.chdir(cwd)
        for d in added:
            if d in sys.path:
                sys.path.remove(d)
    return None


def user_script_problem(path: str, error: BaseException, whose: str) -> Problem:
    """A user script that failed to import, as a problem: a package it lacks, a hub file it loads (offline), or its
    own error."""
    if isinstance(error, ModuleNotFoundError):
        return Problem(path, f"{whose} imports {error.name!r}, which is not installed (or not beside it)",
                       hint=f"pip install {error.name}, or put the module beside the script", category="package")
    hub_id = offline_hub_id(error) if isinstance(error, OSError) else None
    if hub_id is not None or (isinstance(error, OSError) and "huggingface.co" in str(error)):
        what = repr(hub_id) if hub_id else "files"  # the script loads them from the hub at import: offline here
        message = (f"{whose} loads {what} from the Hugging Face hub, which is not in the local cache (olive-ext "
                   f"runs offline): {str(error)[:160]}")  # fmt: skip
        return Problem(path, message, hint=f"download {hub_id or 'them'} into the Hugging Face cache on a connected "
                       "machine first", category="hub")  # fmt: skip
    return Problem(path, f"importing {whose} failed: {type(error).__name__}: {str(error)[:200]}",
                   hint="run the script with python to see the error")  # fmt: skip


def _undefined(script: Path, name: str) -> str | None:
    """Why ``name`` is not a top-level function or value of ``script`` (read, not imported), or None."""
    try:
        tree = _script_tree(script)
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


def data_section(configs: Any, ctx: TranslationContext) -> dict[str, Any]:
    """Our `data` for the data configs it expresses completely; every data config is kept in Olive's form (user
    scripts resolved) for Olive's passes."""
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
        _missing_hub_tokenizers(dc, path, ctx)
        missing: list[tuple[str, str]] = []
        dc = _located_data_files(dc, path, ctx, missing)
        olive_form = dict(dc)
        if dc.get("user_script"):
            olive_form = located_script(olive_form, path, ctx) or olive_form
        olive_form.pop("name", None)
        olive_form["name"] = name
        ctx.olive_data[name] = filled_from_model(olive_form, ctx.olive_model)
        ctx.olive_data_paths[name] = path
        spec, notes = _our_dataset(dc, path)
        if spec is None or spec["name"] not in LOCAL_BUILDERS:  # else the checks before work name it with the rest
            for where, file in missing:  # Olive's datasets reader failed on it after the steps before its pass
                ctx.error(where, "the data file is not there", category="user_file", value=file, has_value=True,
                          hint="give its path relative to where you run olive-ext or beside the config")  # fmt: skip
        if spec is not None:
            out[name] = spec
            ctx.our_data.add(name)
            ctx.paths[f"data.{name}"] = path
            for note_path, message in notes:
                ctx.note(note_path, message)
    return out


# Olive's default task for a model that names none (olive.common.constants.DEFAULT_HF_TASK)
_OLIVE_DEFAULT_TASK = "text-generation-with-past"
# Olive's data containers that build dummy inputs for the model (olive.data.container.dummy_data_container)
_DUMMY_CONTAINERS = (
    "TransformersDummyDataContainer",
    "TransformersPromptDummyDataContainer",
    "TransformersTokenDummyDataContainer",
)


def filled_from_model(dc: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """A data config (Olive's form) with what Olive's RunConfig fills in from the input model when it is left out
    (``validate_data_configs_with_hf_model``, olive-ai 0.13): for an HfModel or ONNXModel input, a
    HuggingfaceContainer's pre- and post-processing get the model's ``model_name`` and ``task`` where they are
    unset or empty, and its pre-processing and dataset loading its ``load_kwargs.trust_remote_code`` where that is
    unset; a Transformers*DummyDataContainer's dataset loading gets the ``model_name``. Without them Olive's
    passes and evaluator read the tokenizer of None and score logits without the task's argmax."""
    mtype = str(model.get("type") or "HfModel").lower()
    if mtype not in {"hfmodel", "onnxmodel"} or not dc.get("type"):
        return dc
    attributes = model.get("model_attributes")
    if mtype == "onnxmodel" and isinstance(attributes, dict):  # an ONNX model Olive converted from an HF one
        task, name = attributes.get("hf_task", _OLIVE_DEFAULT_TASK), attributes.get("_name_or_path")
    else:
        task, name = model.get("task", _OLIVE_DEFAULT_TASK), model.get("model_path")
    load_kwargs = model.get("load_kwargs")
    trust = load_kwargs.get("trust_remote_code") if isinstance(load_kwargs, dict) else None
    info = {"model_name": name if isinstance(name, str) else None, "task": task, "trust_remote_code": trust}
    dc = dict(dc)
    if dc["type"] in _DUMMY_CONTAINERS:
        _fill_params(dc, "load_dataset_config", info, ("model_name",), only_none=False)
    elif dc["type"] == "HuggingfaceContainer":
        for component in ("pre_process_data_config", "post_process_data_config"):
            _fill_params(dc, component, info, ("model_name", "task"), only_none=False)
        for component in ("pre_process_data_config", "load_dataset_config"):
            _fill_params(dc, component, info, ("trust_remote_code",), only_none=True)
    return dc


def _fill_params(
    dc: dict[str, Any], component: str, info: dict[str, Any], keys: tuple[str, ...], only_none: bool
) -> None:
    """Olive's ``_auto_fill_data_config`` on one component of ``dc``: each key of ``info`` that is not None is set
    where the component leaves it unset (``only_none``) or falsy. A component's parameters are its own keys or
    its ``params`` mapping (which wins, as in Olive's NestedConfig); the key is written where they are."""
    given = dc.get(component) or {}
    if not isinstance(given, dict):
        return  # not a mapping: Olive refuses it, and so does the data config's own check
    section = dict(given)
    params = section.get("params")
    holder = dict(params) if isinstance(params, dict) else section
    changed = False
    for key in keys:
        value = info.get(key)
        current = holder.get(key) if isinstance(params, dict) and key in params else section.get(key)
        if value is None or (current is not None if only_none else bool(current)):
            continue
        holder[key] = value
        changed = True
    if not changed:
        return
    if isinstance(params, dict):
        section["params"] = holder
    dc[component] = section


def _missing_hub_tokenizers(dc: dict[str, Any], at: str, ctx: TranslationContext) -> None:
    """A hub id a data config's pre/post-processing names as its ``model_name`` (whose tokenizer Olive's data
    components and the user's scripts load) that this machine cannot load offline: a named ``hub`` error (the run
    failed at the pass that reads the data, after the steps before it). Left out, Olive takes the input model's."""
    for component in ("pre_process_data_config", "post_process_data_config"):
        section = dc.get(component)
        name = section.get("model_name") if isinstance(section, dict) else None
        if not isinstance(name, str) or not looks_like_hub_id(name) or Path(name).expanduser().exists():
            continue
        if name == ctx.olive_model.get("model_path"):
            continue  # the input model's own id: its check names it once
        try:
            check_hub_model(name)
        except ModelNotHereError as e:
            ctx.error(f"{at}.{component}.model_name", e.message, category="hub", value=name, has_value=True,
                      hint=f"leave model_name out (the input model's tokenizer is used), or download it where the "
                      f"hub can be reached: hf download {name}")  # fmt: skip


def _datasets_load(dc: dict[str, Any]) -> tuple[dict[str, Any], bool] | None:
    """The arguments an Olive data config hands the datasets library's ``load_dataset`` (Olive's
    ``huggingface_dataset`` loader, the HuggingfaceContainer's default) and whether they sit under
    load_dataset_config.params; None for the user's own loaders."""
    load = dc.get("load_dataset_config")
    if not isinstance(load, dict):
        return None
    loader = load.get("type") or ("huggingface_dataset" if dc.get("type") in (None, "HuggingfaceContainer") else None)
    if str(loader).lower() != "huggingface_dataset":
        return None
    nested = isinstance(load.get("params"), dict) and "data_name" in load["params"]
    return (load["params"] if nested else load), nested


def _located_data_files(
    dc: dict[str, Any], at: str, ctx: TranslationContext, missing: list[tuple[str, str]]
) -> dict[str, Any]:
    """``dc`` (an Olive data config) with the local files its ``load_dataset_config`` names made absolute as Olive
    finds them (the folder Olive ran in, or beside the config), so a pass reads them from wherever olive-ext runs;
    each file in none of those places is added to ``missing`` as (its key, the file). Hub datasets, globs and the
    user's own loaders are left as they are."""
    found = _datasets_load(dc)
    if found is None:
        return dc
    params, nested = dict(found[0]), found[1]
    files = params.get("data_files")
    name = params.get("data_name")
    if files is None or not (name is None or str(name) in FILE_BUILDERS):
        return dc
    key = f"{at}.load_dataset_config{'.params' if nested else ''}.data_files"

    def locate(file: Any, where: str) -> Any:
        if not isinstance(file, str) or any(c in file for c in "*?[") or "://" in file:
            return file
        resolved = ctx.resolve(file)
        if resolved is None:
            missing.append((where, file))
            return file
        return str(resolved)

    if isinstance(files, dict):  # split -> file(s)
        located: Any = {split: [locate(f, f"{key}.{split}[{i}]") for i, f in enumerate(v)] if isinstance(v, list)
                        else locate(v, f"{key}.{split}") for split, v in files.items()}  # fmt: skip
    elif isinstance(files, list):
        located = [locate(f, f"{key}[{i}]") for i, f in enumerate(files)]
    else:
        located = locate(files, key)
    params["data_files"] = located
    load = dc["load_dataset_config"]
    return {**dc, "load_dataset_config": {**load, "params": params} if nested else params}


def hub_dataset(dc: dict[str, Any]) -> tuple[TaskDataset, str] | None:
    """The Hugging Face hub dataset an Olive data config loads through the datasets library (Olive's
    ``huggingface_dataset`` loader, the HuggingfaceContainer's default) and the key under load_dataset_config that
    names it, when this machine cannot read it offline; None for local files, the user's own loaders and hub
    datasets in the local cache. The check is the one the evaluators' datasets get (``TaskDataset.available``)."""
    found = _datasets_load(dc)
    if found is None:
        return None
    params, nested_params = found
    name, subset, files = params.get("data_name"), params.get("subset"), params.get("data_files")
    if not isinstance(name, str) or not name:
        return None
    if isinstance(files, dict):
        files = [f for v in files.values() for f in (v if isinstance(v, list) else [v])]
    elif isinstance(files, str):
        files = [files]
    listed = tuple(str(f) for f in files) if isinstance(files, list) else ()
    dataset = TaskDataset("", name, subset if isinstance(subset, str) else None, listed)
    try:
        if dataset.local or dataset.available():
            return None
    except (OSError, ValueError):  # a name no path can have (a NUL, too long): the datasets library refuses it
        return None
    return dataset, "params.data_name" if nested_params else "data_name"


def refuse_empty_olive_split(name: str, ctx: TranslationContext) -> None:
    """Olive's datasets reader, handed data config ``name``, takes rows from its local files (``check_file_split``):
    Olive reads split 'validation' where the config names none, which local files do not have, and a slice past
    their end is empty; both failed at the pass reading the data, after the steps before it. Said once per data
    config; per-split files, globs and files not there (named already) are left to the reader."""
    found = _datasets_load(ctx.olive_data.get(name) or {})
    if found is None:
        return
    params, nested = found
    files, builder, split = params.get("data_files"), params.get("data_name"), params.get("split", "validation")
    files = [files] if isinstance(files, str) else files
    if not isinstance(files, list) or not files or builder not in _OLIVE_FILE_SPLITS or not isinstance(split, str):
        return
    if not all(isinstance(f, str) and Path(f).is_file() for f in files):
        return
    at = f"{ctx.olive_data_paths.get(name, 'data_configs')}.load_dataset_config{'.params' if nested else ''}.split"
    if any(p.path == at for p in ctx.problems):
        return
    try:
        check_file_split(str(builder), [str(f) for f in files], split)
    except UserInputError as e:
        named = "split" in params
        message = e.message if named else f"{e.message} (Olive reads split 'validation' where none is named)"
        ctx.error(at, message, value=split, has_value=named,
                  hint=e.hint if named else "write split: train, or a slice of it (train[:100])")  # fmt: skip


_OLIVE_FILE_SPLITS = ("json", "csv", "parquet", "text")  # the datasets library's file builders whose rows are counted


def refuse_missing_hub_data(name: str, reader: str, ctx: TranslationContext) -> bool:
    """Whether data config ``name`` loads a hub dataset this machine cannot read offline (:func:`hub_dataset`);
    if so it is refused as a named ``hub`` problem at its ``data_name`` key, naming ``reader``."""
    found = hub_dataset(ctx.olive_data.get(name) or {})
    if found is None:
        return False
    dataset, key = found
    at = f"{ctx.olive_data_paths.get(name, 'data_configs')}.load_dataset_config.{key}"
    if any(p.path == at and p.category == "hub" for p in ctx.problems):
        return True  # refused once, for its first reader: the same dataset is not named again for each other one
    refuse_hub_dataset(dataset, at, f"{reader}, through data config {name!r},", ctx,
                       "give load_dataset_config a local file (data_name: json, data_files: FILE.jsonl)",
                       dataset.path)  # fmt: skip
    return True


def refuse_hub_dataset(
    dataset: TaskDataset, at: str, reader: str, ctx: TranslationContext, instead: str, value: Any = None
) -> None:
    """A named ``hub`` refusal at ``at`` (whose ``value`` is shown when given): ``reader`` (a pass, a metric) loads
    ``dataset`` from the Hugging Face hub, which is not in this machine's cache; at run time the datasets library
    would retry the hub, then fail."""
    args = ", ".join(repr(a) for a in (dataset.path, dataset.name) if a)
    ctx.error(at, f"{reader} reads the Hugging Face hub dataset {dataset.describe()}, which is not in this machine's "
              "Hugging Face cache, and olive-ext runs offline", category="hub", value=value,
              has_value=value is not None,
              hint=f"download it once where the hub is reachable (`python -c \"import datasets; "
              f"datasets.load_dataset({args})\"`) and copy ~/.cache/huggingface here, or {instead}")  # fmt: skip


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
    if isinstance(data_files, dict):  # split -> file(s): Olive's passes read it as the datasets library does
        return None, []
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


def systems_section(systems: Any, target: Any, ctx: TranslationContext) -> list[dict[str, Any]]:
    """Our targets from the systems (the `target` one when named), or from a target system written in place
    (``target: {type: LocalSystem, accelerators: ...}``, as Olive takes it; it was ignored, and a CUDA or WebGPU
    config was built for the CPU without a word); vendor SDKs and devices are named refusals."""
    if isinstance(target, dict):
        where = ctx.paths.get("target", "target")
        candidates = [(where, target)]
    elif not isinstance(systems, dict):
        ctx.error("systems", "must be a mapping of named systems", value=systems, has_value=True)
        return []
    else:
        if isinstance(target, str) and target not in systems:  # Olive refuses it ("nosuch not found in {...}")
            ctx.error(ctx.paths.get("target", "target"), f"names no system of this config: {target!r}",
                      allowed=", ".join(map(str, systems)) or "none",
                      hint="name one of the config's systems")  # fmt: skip
        chosen = target if isinstance(target, str) and systems.get(target) else None
        candidates = [(f"systems.{n}", s) for n, s in ([(chosen, systems[chosen])] if chosen else systems.items())]
    targets: list[dict[str, Any]] = []
    for where, written in candidates:
        at = f"{where}.config" if nested(written) else where
        system = shaped(unnest(written) if isinstance(written, dict) else written or {}, OliveSystem, where,
                        ctx.problems)  # fmt: skip
        if system is None:
            continue
        stype = str(system.get("type") or "LocalSystem")
        # Olive writes the type beside `config` (accelerators inside it): its errors name it there
        type_at = f"{where}.type" if isinstance(written, dict) and "type" in written else f"{at}.type"
        accelerators = system.get("accelerators") or [{"device": "cpu"}]
        _remember_accelerator(accelerators, ctx)
        if stype != "LocalSystem":
            providers = [_short(p) for a in accelerators for p in a.get("execution_providers") or []]
            needs = [_PROVIDER_NEEDS[p][0] for p in providers if p in _PROVIDER_NEEDS]
            if needs:  # a PythonEnvironment for a vendor SDK: the SDK is the reason
                ctx.error(type_at, f"needs {needs[0]}", category="sdk")
            elif stype.lower() in {"azureml", "azuremlsystem"}:
                ctx.error(type_at, "an AzureML system runs the passes on Azure ML compute: it needs Azure ML "
                          "(the azure-ai-ml SDK, an Azure subscription and its workspace); olive-ext runs on this "
                          "machine", category="sdk", hint="use a LocalSystem: delete `type`")  # fmt: skip
            else:
                ctx.error(
                    type_at,
                    f"system type {stype!r} not supported; olive-ext runs on this machine",
                    allowed="LocalSystem",
                    hint="use a LocalSystem: delete `type`",
                )
            continue
        for j, acc in enumerate(accelerators):
            acc_at = f"{at}.accelerators[{j}]"
            providers = acc.get("execution_providers") or [None]
            for k, provider in enumerate(providers):
                if _dropped_as_olive_does(acc.get("device"), provider, providers):
                    ctx.note(
                        f"{acc_at}.execution_providers[{k}]",
                        f"{provider} does not run on device '{acc.get('device')}'; Olive drops it from this "
                        "accelerator and so does olive-ext (the device's own providers listed beside it stay)",
                    )
                    continue
                device = acc.get("device")
                if str(device or "cpu").lower() != "cpu" and _short(provider) == "cpu":
                    ctx.note(f"{acc_at}.execution_providers[{k}]", f"{provider} alone on device '{device}': Olive "
                             "keeps it, with a warning, and builds for that provider; so does olive-ext, for the "
                             "CPU")  # fmt: skip
                    device = "cpu"
                target = _target(device, provider, f"{acc_at}.execution_providers[{k}]", ctx)
                if target is not None and _target_key(target) in map(_target_key, targets):  # built once
                    ctx.note(f"{acc_at}.execution_providers[{k}]", f"{provider} builds for the same target as an "
                             "accelerator before it here: its candidates are built once")  # fmt: skip
                    continue
                if target is not None:
                    ctx.paths[f"targets[{len(targets)}]"] = acc_at
                    targets.append(target)
    return targets


def _target_key(target: dict[str, Any]) -> tuple[str, str | None]:
    """A target as the engine reads it (the device's own provider filled in): which ones are the same."""
    try:
        spec = TargetSpec.model_validate(target)
    except ValidationError:  # refused later, with its key path
        return str(target.get("device")), str(target.get("provider"))
    return spec.device, spec.provider


def _dropped_as_olive_does(device: Any, provider: Any, providers: list[Any]) -> bool:
    """Olive's accelerator check keeps only the providers a device runs: CPUExecutionProvider listed beside a
    GPU/NPU provider for a GPU/NPU device is dropped (alone, Olive keeps it and builds for it)."""
    dev = str(device or "").lower()
    if dev in {"", "cpu"} or _short(provider) != "cpu":
        return False
    return any(_PROVIDER_DEVICE.get(_short(p)) == dev or _short(p) in _PROVIDER_NEEDS for p in providers if p)


def _remember_accelerator(accelerators: Any, ctx: TranslationContext) -> None:
    """The first accelerator of the target system, as written (its device defaults from its provider)."""
    if ctx.olive_accelerator is not None or not isinstance(accelerators, list) or not accelerators:
        return
    first = accelerators[0] if isinstance(accelerators[0], dict) else {}
    providers = first.get("execution_providers") or ["CPUExecutionProvider"]
    provider = str(providers[0]) if isinstance(providers, list) and providers else "CPUExecutionProvider"
    short = _short(provider)
    provider = provider if provider.endswith("ExecutionProvider") else f"{provider}ExecutionProvider"
    ctx.olive_accelerator = (str(first.get("device") or _PROVIDER_DEVICE.get(short, "cpu")).lower(), provider)


def openvino_installed() -> bool:
    """Whether the openvino package is there (not imported)."""
    return importlib.util.find_spec("openvino") is not None


def _short(provider: Any) -> str:
    return str(provider or "").lower().removesuffix("executionprovider")


def _target(device: Any, provider: Any, at: str, ctx: TranslationContext) -> dict[str, Any] | None:
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
        if not openvino_installed():
            ctx.error(
                at, "OpenVINO needs the openvino package", category="sdk", hint="pip install 'olive-ext[openvino]'"
            )
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


# --------------------------------------------------------------------------- evaluators

_OLIVE_METRICS = {"latency": "latency", "throughput": "throughput", "accuracy": "accuracy", "size_on_disk": "size"}
# sub-types our metric reports (latency: min/median/max of the timed runs)
_SUB_TYPES = {
    "latency": {"avg", "mean", "p50", "min", "max"},
    "throughput": {"avg", "mean", "p50", "min", "max"},
    "accuracy": {"accuracy", "accuracy_score", "exact_match"},
    "size": {"size", "size_on_disk"},
}


def named_metrics(metrics: Any, ctx: TranslationContext) -> dict[str, tuple[str, Any]]:
    """Olive's top-level ``metrics`` (evaluators name them): metric name -> (its key path, the metric)."""
    if metrics is None:
        return {}
    if isinstance(metrics, dict):
        return {str(k): (f"metrics.{k}", {**v, "name": k} if isinstance(v, dict) else v) for k, v in metrics.items()}
    if isinstance(metrics, list):
        return {str(m.get("name") if isinstance(m, dict) else i): (f"metrics[{i}]", m) for i, m in enumerate(metrics)}
    ctx.error("metrics", "must be a list of metrics", value=metrics, has_value=True)
    return {}


def evaluators_section(
    evaluators: Any, chosen: Any, named: dict[str, tuple[str, Any]], searching: bool, ctx: TranslationContext
) -> dict[str, Any]:
    """Our `evaluate` from the chosen evaluator: its metrics mapped to ours, goals to constraints."""
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
    if etype.lower() == "lmevaluator":
        return lm_evaluator_section(raw, at, ctx)
    if etype.lower() == "mtebevaluator":
        return mteb_evaluator_section(raw, at, ctx)
    if etype:
        tasks = raw.get("tasks") if isinstance(raw, dict) else None
        listed = f" (tasks {', '.join(map(str, tasks))})" if isinstance(tasks, list) and tasks else ""
        ctx.unhonoured(
            f"{at}.type",
            f"{etype}{listed} is not run by olive-ext",
            "measure with metrics: accuracy (exact match on a local data file), latency, throughput",
        )
        return {}
    metrics_out: list[str] = []
    olive_metrics: list[dict[str, Any]] = []  # computed by olive-ai's evaluator (metric 'olive')
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
        custom = ours is None and mtype == "custom"
        if custom and olive_metric(metric, path, olive_metrics, ctx, constraints, searching):
            continue
        if ours is None:
            ctx.unhonoured(
                f"{path}.type",
                f"Olive metric type {mtype!r} not supported",
                "use accuracy, latency, throughput or size_on_disk",
            )
            continue
        dc = metric.get("data_config")
        unmeasured = [s for s in subs if ours in {"latency", "throughput"} and s not in _SUB_TYPES[ours]]
        if unmeasured and (dc is not None or ours == "latency") and olive_metric(metric, path, olive_metrics, ctx,
                                                                                 constraints, searching):  # fmt: skip
            if dc is None:  # Olive's evaluator builds the inputs from the model's io_config
                ctx.note(f"{path}.data_config", "no data config: olive-ai's evaluator times inputs it builds from "
                         "the model's io_config (input_names, input_shapes, input_types), as Olive does")  # fmt: skip
            continue  # e.g. latency p90 on the data config's rows: as Olive measures it
        if dc is not None and ours in {"latency", "throughput"}:
            ctx.note(
                f"{path}.data_config",
                f"olive-ext measures {ours} on its own inputs (evaluate.prompt_tokens, evaluate.new_tokens), "
                "not on this data config's rows",
            )
        if ours in {"accuracy", "perplexity"}:
            if isinstance(dc, str) and dc in ctx.olive_data and dc not in ctx.our_data:
                if olive_metric(metric, path, olive_metrics, ctx, constraints, searching):
                    continue
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
            if not searching:  # as Olive: its run without a search writes the model whatever its metrics
                _unsearched_goal(f"{path}.sub_types[{j}].goal", str(gtype), mtype, ctx)
                continue
            if ours == "accuracy" and gtype == "max-degradation":
                constraints["max_accuracy_drop"] = float(value) * (100 if float(value) <= 1 else 1)
            elif ours == "latency" and gtype == "threshold":
                constraints["max_latency_ms"] = float(value)
            elif ours == "latency" and gtype == "percent-min-improvement":
                constraints["min_latency_improvement_pct"] = float(value)
            else:
                ctx.unhonoured(
                    f"{path}.sub_types[{j}].goal",
                    f"goal {gtype!r} on {mtype} not supported",
                    "olive-ext constrains accuracy (max-degradation) and latency (threshold in ms, "
                    "percent-min-improvement)",
                )
        if ours not in metrics_out:
            metrics_out.append(ours)
    if olive_metrics:
        metrics_out.append("olive")
    # an Olive config's limits are its goals: not olive-ext's default max_accuracy_drop, which the run then said was
    # NOT checked ("no eval data") beside olive-ai's measured accuracy, or in a config that set no accuracy limit
    constraints.setdefault("max_accuracy_drop", None)
    out: dict[str, Any] = {"metrics": metrics_out or ["size"], "constraints": constraints}
    if objective := _first_priority(chosen_one, at, metrics_out, olive_metrics, ctx):
        out["objective"] = objective
    if olive_metrics:
        out["olive_metrics"] = olive_metrics
    if data is not None:
        out["data"] = data
    return out


def _first_priority(
    evaluator: dict[str, Any] | None,
    at: str,
    measured: list[str],
    olive_metrics: list[dict[str, Any]],
    ctx: TranslationContext,
) -> str | None:
    """The objective Olive ranks candidates by: the sub-type of lowest ``priority`` (1 first). It was ignored, and a
    search chose the fastest candidate where Olive keeps the most accurate. A metric olive-ai's evaluator computes
    becomes the objective "olive" (its first value: that metric and sub-type are moved first) where higher is
    better; otherwise, or where olive-ext does not measure it, a note."""
    ranked = []
    for i, metric in enumerate((evaluator or {}).get("metrics") or []):
        for j, sub in enumerate(metric.get("sub_types") or []):
            priority = sub.get("priority") if isinstance(sub, dict) else None
            if isinstance(priority, int) and not isinstance(priority, bool) and priority > 0:
                ranked.append((priority, i, j, metric, sub))
    if not ranked:
        return None
    _, i, j, metric, sub = min(ranked, key=lambda r: r[:3])
    path, mtype = f"{at}.metrics[{i}].sub_types[{j}].priority", str(metric.get("type"))
    olive = next((k for k, m in enumerate(olive_metrics) if m.get("name") == metric.get("name")), None)
    if olive is not None:
        higher = bool(sub.get("higher_is_better", mtype != "latency"))
        if not higher:
            ctx.note(path, f"priority 1 on {metric.get('name')}-{sub.get('name')}, lower is better: olive-ext "
                     "ranks olive-ai's metrics with higher values first, so candidates are ranked by latency")
            return None
        first = olive_metrics.pop(olive)
        subs = list(first.get("sub_types") or [])
        subs.sort(key=lambda s: s.get("name") != sub.get("name"))
        olive_metrics.insert(0, {**first, "sub_types": subs})
        return "olive"
    ours = _OLIVE_METRICS.get(mtype)
    if ours in measured and ours in ("accuracy", "latency", "throughput", "size"):
        return ours
    ctx.note(path, f"priority 1 on {mtype}, which olive-ext does not measure here: candidates are ranked by latency")
    return None


_GOAL_TYPES = typing.get_args(OliveGoalType)


def _unsearched_goal(path: str, gtype: str, mtype: str, ctx: TranslationContext) -> None:
    """A goal in a config without a search: Olive's engine runs the passes and writes the model and its metrics
    whatever they are (engine._run_no_search), so the goal is said and not enforced (olive-ext refused the output,
    exit 3, where Olive wrote it)."""
    ctx.note(path, f"goal {gtype!r} on {mtype}: Olive applies goals to choose among searched candidates, and this "
             "config does not search (no search_strategy): the model is written whatever its metrics, as Olive "
             "writes it, and the metric's value is in candidates.json")  # fmt: skip


def _olive_goals(
    metric: dict[str, Any], path: str, constraints: dict[str, Any], ctx: TranslationContext, searching: bool = True
) -> None:
    """The goals of a metric olive-ai's evaluator computes, as constraints on its values (they were dropped: a BERT
    quantized to 28% accuracy met 'max-degradation 0.01' and the run said accuracy was not measured); in a config
    without a search, notes (as Olive applies them)."""
    for j, sub in enumerate(metric.get("sub_types") or []):
        goal = sub.get("goal") if isinstance(sub, dict) else None
        if not isinstance(goal, dict) or goal.get("value") is None:
            continue
        if goal.get("type") not in _GOAL_TYPES:
            ctx.unhonoured(f"{path}.sub_types[{j}].goal.type", f"goal type {goal.get('type')!r} is not one of Olive's",
                           f"use one of {', '.join(_GOAL_TYPES)}")  # fmt: skip
            continue
        if not searching:
            _unsearched_goal(f"{path}.sub_types[{j}].goal", str(goal.get("type")), str(metric.get("type")), ctx)
            continue
        lower = str(metric.get("type")) == "latency"
        constraints.setdefault("olive_goals", []).append({
            "metric": f"{metric.get('name')}-{sub.get('name')}", "type": goal["type"], "value": float(goal["value"]),
            "higher_is_better": bool(sub.get("higher_is_better", not lower)),
        })  # fmt: skip


def olive_metric(
    metric: dict[str, Any],
    path: str,
    into: list[dict[str, Any]],
    ctx: TranslationContext,
    constraints: dict[str, Any],
    searching: bool = True,
) -> bool:
    """An Olive metric only olive-ai's evaluator can compute (the user's data script, a custom metric), added to
    ``into`` in Olive's form (data config inlined, user scripts resolved), its goals to ``constraints``; False where
    olive-ai is not installed."""
    if importlib.util.find_spec("olive") is None:
        return False
    _olive_goals(metric, path, constraints, ctx, searching)  # said by path even where Olive's check refuses it
    config = dict(metric)
    dc = config.get("data_config")
    if isinstance(dc, str) and dc in ctx.olive_data:
        config["data_config"] = ctx.olive_data[dc]
        refuse_missing_hub_data(dc, f"olive-ai's evaluator, for metric {path}", ctx)
        refuse_empty_olive_split(dc, ctx)
    user_config = config.get("user_config")
    if config.get("type") == "custom" and not (
        isinstance(user_config, dict) and (user_config.get("evaluate_func") or user_config.get("metric_func"))
    ):
        ctx.error(f"{path}.user_config", "a custom metric needs the user's function to compute it",
                  hint="add user_config: {user_script: ..., evaluate_func: ...} (or metric_func)")  # fmt: skip
        return True
    if isinstance(user_config, dict) and user_config.get("user_script"):
        located = located_script(user_config, f"{path}.user_config", ctx)
        if located is None:
            return True
        config["user_config"] = located
    if config.get("backend") == "huggingface_metrics":
        _evaluate_offline_unless_reachable()
    try:
        importlib.import_module("olive.evaluator.metric").Metric.model_validate(config)
    except ImportError as e:  # the metric's backend or the user's data script needs a package this machine lacks
        package = _missing_package(e)
        ctx.error(path, f"Olive's evaluator for this metric needs the pip package {package}: {str(e)[:200]}",
                  category="package", hint=f"pip install {package}")  # fmt: skip
        return True
    except OSError as e:  # the user's data script loads a model or file from the hub at import: offline here
        hub_id = offline_hub_id(e)
        if hub_id is None:
            ctx.error(path, f"not a valid Olive metric: {type(e).__name__}: {str(e)[:300]}")
        else:
            ctx.error(path, f"the metric's user script loads {hub_id!r} from the Hugging Face hub, which is not in "
                      f"the local cache (olive-ext runs offline): {str(e)[:160]}", category="hub",
                      hint=f"download {hub_id} into the Hugging Face cache on a connected machine first")  # fmt: skip
        return True
    except Exception as e:  # Olive's own check of the metric (a wrong type can raise more than ValidationError)
        hub_metric = _EVALUATE_METRIC.search(str(e))
        if hub_metric:  # the `evaluate` package fetches its metric scripts from the hub: offline here
            name = hub_metric.group(1)
            ctx.error(path, f"Olive's {name!r} metric is a script the evaluate package loads from the Hugging Face "
                      f"hub ('evaluate-metric/{name}'), which is not in the local cache (olive-ext runs offline)",
                      category="hub", hint=f"load evaluate-metric/{name} once on a connected machine "
                      "(evaluate.load) so it is cached, or use olive-ext's own accuracy metric")  # fmt: skip
            return True
        ctx.error(path, f"not a valid Olive metric: {type(e).__name__}: {str(e)[:300]}")
        return True
    into.append(config)
    ctx.note(path, "computed by olive-ai's own evaluator (metric 'olive'), as Olive computes it")
    return True


_HUB_ID = re.compile(r"(?:load|find)[\w ]* (?:for|of) '([\w.\-]+/[\w.\-]+)'|'([\w.\-]+/[\w.\-]+)' is not a local")


_EVALUATE_METRIC = re.compile(r"could not load metric ([\w\-]+) from huggingface/evaluate")


def offline_hub_id(error: BaseException) -> str | None:
    """The hub id (``owner/name``) an offline OSError of transformers / huggingface_hub names, or None."""
    match = _HUB_ID.search(str(error))
    return (match.group(1) or match.group(2)) if match else None


def _evaluate_offline_unless_reachable() -> None:
    """The evaluate package (Olive's huggingface_metrics backend) offline when the hub cannot be reached, so a
    metric check reads its local cache at once instead of waiting on network timeouts."""
    if offline() or not hub_reachable():
        os.environ["HF_EVALUATE_OFFLINE"] = "1"
        loaded = sys.modules.get("evaluate.config")
        if loaded is not None:
            loaded.HF_EVALUATE_OFFLINE = True  # type: ignore[attr-defined]


def _missing_package(error: ImportError) -> str:
    """The pip name of what an ImportError lacks (a module name, or the package olive-ai asks to install)."""
    if isinstance(error, ModuleNotFoundError) and error.name:
        return error.name.split(".")[0]
    text = str(error)
    if "huggingface/evaluate" in text:
        return "evaluate"
    match = re.search(r"install (?:the )?([A-Za-z0-9_.\-]+)", text)
    return match.group(1) if match else "the package it names"


def search_section(strategy: Any, ctx: TranslationContext) -> dict[str, Any] | None:
    """Our `search` from Olive's search_strategy."""
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
