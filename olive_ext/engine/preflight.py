"""Checks before work: everything a run will need from the file system, checked before its first step.

A run that cannot write its output, cannot write its cache, starts from a folder that holds no model, from a
GGUF or safetensors file that is not whole, from a causal LM without its tokenizer, or reads a data file that is
missing, empty, unreadable or not text used to find out seconds or minutes in, once per candidate; here each is
one message naming the path and what to do, and nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from olive_ext.artifacts import looks_like_hub_id, missing_model_error
from olive_ext.cache import cache_key, check_cache_dir, default_cache_dir
from olive_ext.data.formats import check_named_columns
from olive_ext.data.load import check_data_files, check_split_rows, local_files
from olive_ext.data.spec import DatasetSpec
from olive_ext.engine.output import check_apart, check_model_given, check_output
from olive_ext.engine.runner import check_step_input, implicit_conversion
from olive_ext.errors import OliveExtError, Problem, UserInputError
from olive_ext.evaluate import lm_eval_tasks, mteb_tasks
from olive_ext.evaluate.evaluator import model_context
from olive_ext.evaluate.registry import get_metric
from olive_ext.models.folder import (
    ADAPTER_CONFIG,
    BNB_METHOD,
    MODEL_CONFIG,
    PYPI_PREFIX,
    adapter_base,
    check_no_pickle_only,
    config_json,
    is_bare_adapter,
    model_task,
    quant_method_in,
    resolve_model_arg,
)
from olive_ext.models.gguf_header import GGUFLayoutError, check_complete, split_problem
from olive_ext.models.hub import ModelNotHereError, check_hub_model, looks_like_hub_name
from olive_ext.models.pypi import PYPI_MODELS, fetch_pypi_model
from olive_ext.onnx.runtime import runtime_telemetry_off
from olive_ext.passes.base import get_pass
from olive_ext.recipe.schema import Recipe
from olive_ext.targets.spec import TargetSpec

__all__ = [
    "check_before_work",
    "check_gguf_file",
    "check_model_folder",
    "check_recipe_before_work",
    "check_safetensors_file",
    "file_problems",
    "input_checks",
    "model_file",
]

# what makes a folder a model, by kind
_MODEL_MARKERS = "config.json (Hugging Face), genai_config.json (onnxruntime-genai), a .onnx or a .gguf file"


def check_before_work(
    *,
    model: str | None,
    cache_dir: str | None,
    datasets: Iterable[DatasetSpec] = (),
    output: str | Path | None = None,
    overwrite: bool = False,
    adapters: Iterable[str | None] = (),
) -> None:
    """Output (free and writable), cache (writable), input model, local data files and the columns named in them.
    ``adapters``: the input adapters, which the output must not hold either (``--overwrite`` deleted one in it).

    Raises the first problem as a UserInputError (exit code 2); creates nothing. ``model`` None: none to check.
    """
    runtime_telemetry_off()
    if model is not None:  # None: the user's Olive model_loader makes the model
        check_model_given(model)
    datasets = list(datasets)
    if output is not None:  # apart from the inputs first: "pass --overwrite" must not lead to deleting them
        if model is not None and not model.startswith(PYPI_PREFIX):
            check_apart(model, output)
        for adapter in adapters:
            if adapter:
                check_apart(adapter, output, "adapter")
        for spec in datasets:
            for file in local_files(spec)[1]:
                check_apart(file, output, "data file")
        check_output(output, overwrite)
    check_cache_dir(cache_dir)
    for _, check in input_checks(model, dict(enumerate(datasets))):
        try:
            check()
        except ModelNotHereError as e:  # offline: name the hub datasets too, so one run shows what to pass instead
            # each name once: a train and an eval split of one hub dataset named it twice
            hub_data = list(dict.fromkeys(s.name for s in datasets if not s.data_files and looks_like_hub_name(s.name)))
            if not hub_data:
                raise
            raise UserInputError(
                f"{e.message}; dataset {', '.join(map(repr, hub_data))} needs the hub too",
                hint=f"{e.hint}; for a local data file use -d json --data_files FILE.jsonl (or csv/parquet)",
            ) from e


def input_checks(
    model: str | None, datasets: Mapping[Any, DatasetSpec]
) -> list[tuple[Any, Callable[[], None]]]:
    """The checks of the files a run reads, each with what it checks (None: the model; else the dataset's key):
    the model folder (unless ``model`` is None; a hub model must be reachable or cached), each dataset's local
    files, the columns named in them and the rows its split picks."""
    checks: list[tuple[Any, Callable[[], None]]] = [(None, partial(check_model_folder, model))] if model else []
    for key, spec in datasets.items():
        checks += [(key, partial(check_data_files, spec)), (key, partial(check_named_columns, spec)),
                   (key, partial(check_split_rows, spec))]
    return checks


def made_by_loader(recipe: Recipe) -> bool:
    """Whether the user's Olive model_loader makes the input model (its path is not checked as a model's)."""
    return bool((recipe.input_model.olive or {}).get("model_loader"))


def file_problems(recipe: Recipe, olive: bool = False) -> list[Problem]:
    """What `run` checks before its first step on the files a valid recipe names (the input model's folder, each
    local data file and the columns named in it), as problems: `validate` said "valid" and `run` refused at once.
    ``olive``: key paths as an Olive run config spells its sections."""
    loader = made_by_loader(recipe)
    problems: list[Problem] = []
    for key, check in input_checks(checked_model(recipe), recipe.data):
        path = ("input_model.model_path" if olive else "input_model.path") if key is None else (
            "data_configs" if olive else f"data.{key}")  # fmt: skip
        if problems and problems[-1].path == path:
            continue  # a data file that cannot be read has no columns to check
        try:
            check()
        except ModelNotHereError as e:  # a hub model neither reachable nor cached: run refused it at once
            hint = f"point {path} at a local model folder, or download it where the hub can be reached: hf download"
            problems.append(Problem(path, e.message, hint=f"{hint} {e.name}", category="hub"))
        except UserInputError as e:
            problems.append(Problem(path, e.message, hint=e.hint, category="user_file"))
    if not problems and not loader:
        problems += first_step_problems(recipe)
        said = {p.path for p in problems}  # a local LLM's first step is named once
        problems += [p for p in llm_export_problems(recipe) if p.path not in said]
        problems += olive_io_config_export_problems(recipe)
        try:
            check_timing_prompt(recipe)
        except UserInputError as e:
            problems.append(Problem("evaluate.prompt_tokens", e.message, hint=e.hint))
    try:  # validate said "valid" to an evaluation-only recipe on a target this machine lacks; run refused it
        check_something_measurable(recipe)
    except UserInputError as e:
        where = "targets[0]" if recipe.targets else "targets"
        problems.append(Problem(where, e.message, hint=e.hint, category="device"))
    try:  # benchmark tasks and their datasets: validate said "valid" to a task name lm-eval does not have
        check_benchmark_datasets(recipe)
    except lm_eval_tasks.UnknownTask as e:
        problems.append(Problem("evaluate", e.message, hint=e.hint))
    except UserInputError as e:  # hub datasets not in this machine's cache
        problems.append(Problem("evaluate", e.message, hint=e.hint, category="hub"))
    return problems


def first_step_problems(recipe: Recipe) -> list[Problem]:
    """What each alternative's first pass says of the local input model beyond its kind (its ``check_input``: an
    LLM given to onnx_export, merge_adapter without an adapter), as `run` would say it before that step."""
    model = recipe.input_model
    if not Path(model.path).expanduser().exists():
        return []  # a hub id or a pypi: model: checked when it is fetched
    try:
        artifact = resolve_model_arg(model.path, model.adapter_path, model.kind, model.gguf_file)
    except UserInputError as e:  # what the model checks before this one did not say
        return [Problem("input_model.path", e.message, hint=e.hint, category="user_file")]
    problems: list[Problem] = []
    for prefix, section in recipe.alternatives():
        if not section:
            continue
        name, spec = next(iter(section.items()))
        cls = get_pass(spec.type)
        if cls is None or artifact.kind not in cls.accepts or implicit_conversion(artifact, cls) is not None:
            continue  # another pass, or a converted input, meets the model: the run checks it there
        try:
            check_step_input(name, spec.type, cls, artifact)  # the run's own check and words
        except UserInputError as e:
            problems.append(Problem(f"{prefix}.{name}", e.message, hint=e.hint))
    return problems


def check_first_steps(recipe: Recipe) -> None:
    """Refuse, before work, a local input model a pipeline's first pass refuses at its start (its ``check_input``:
    int4_weight on a graph of Gemm nodes only), so ``--dry_run`` says what the real run would."""
    if made_by_loader(recipe):
        return  # an Olive model_loader builds the model: there is no input file to check
    for problem in first_step_problems(recipe):
        raise UserInputError(problem.message, hint=problem.hint)


# Olive's tasks -> transformers' auto-model mapping the HfModel of that task is loaded through
_TASK_MAPPINGS = {
    "feature-extraction": "MODEL_MAPPING_NAMES",
    "text-classification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    "token-classification": "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES",
    "question-answering": "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES",
    "fill-mask": "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
}


def olive_io_config_export_problems(recipe: Recipe) -> list[Problem]:
    """olive-ai 0.13's OnnxConversion with the TorchScript exporter and the user's ``io_config`` fails on a
    transformers 5 model whose forward takes ``use_cache`` (BertModel, MiniLM's: "BertModel.forward() got multiple
    values for argument 'use_cache'") after the steps before it; validate said "valid" (Olive's gte configs)."""
    olive = recipe.input_model.olive or {}
    if not olive.get("io_config") or str(olive.get("type", "")).lower() != "hfmodel" or olive.get("model_loader"):
        return []
    steps = [(f"{prefix}.{name}", spec) for prefix, section in recipe.alternatives() for name, spec in section.items()
             if spec.type == "olive" and str(spec.params().get("olive_type", "")).lower() == "onnxconversion"
             and not (spec.params().get("config") or {}).get("use_dynamo_exporter")]  # fmt: skip
    if not steps or not _forward_takes_use_cache(recipe.input_model.path, str(olive.get("task") or "")):
        return []
    return [Problem(at, "olive-ai 0.13's OnnxConversion (TorchScript exporter) fails on this transformers 5 model "
                    "with input_model.io_config: its forward takes use_cache (\"got multiple values for argument "
                    "'use_cache'\")", hint="leave io_config out (Olive takes the inputs from the model's task), or "
                    "set use_dynamo_exporter: true (it exports static shapes)") for at, _ in steps]  # fmt: skip


def _forward_takes_use_cache(model: str, task: str) -> bool:
    """Whether the transformers class Olive loads ``model`` as for ``task`` takes ``use_cache`` in its forward."""
    if model.startswith(PYPI_PREFIX):
        try:
            model = str(fetch_pypi_model(model[len(PYPI_PREFIX) :]))
        except OliveExtError:
            return False
    model_type = (config_json(model) or {}).get("model_type")
    mapping_name = _TASK_MAPPINGS.get(task)
    if not isinstance(model_type, str) or mapping_name is None:
        return False
    import inspect  # only for an Olive config that exports an HfModel with its own io_config

    import transformers
    from transformers.models.auto import modeling_auto

    cls = getattr(transformers, getattr(modeling_auto, mapping_name, {}).get(model_type, ""), None)
    return cls is not None and "use_cache" in inspect.signature(cls.forward).parameters


def llm_export_problems(recipe: Recipe) -> list[Problem]:
    """An LLM (a causal LM folder, a GGUF, a packaged GGUF) given to an ONNX export: olive-ext's onnx_export exports
    encoders, and olive-ai 0.13's OnnxConversion fails on transformers 5 LLMs ("'list' object has no attribute
    'get_query_offset'"); both failed at run time, after the steps before them (Olive's llama2 and open_llama
    configs validated so). No step turns an LLM into an encoder, so every export of the chain is one."""
    arch = _causal_lm(recipe.input_model.path)
    if arch is None:
        return []
    problems = []
    for prefix, section in recipe.alternatives():
        for name, spec in section.items():
            olive_type = str(spec.params().get("olive_type", "")).lower()
            if spec.type == "onnx_export" or (spec.type == "olive" and olive_type == "onnxconversion"):
                problems.append(Problem(
                    f"{prefix}.{name}", f"the input model is an LLM ({arch}): olive-ext's onnx_export exports "
                    "encoders, and olive-ai's OnnxConversion fails on LLMs with transformers 5",
                    hint="write ModelBuilder (olive-ext's model_builder) in its place: it exports the LLM with its "
                    "KV cache (precision fp32 is OnnxConversion's graph)",
                ))  # fmt: skip
            elif spec.type == "olive" and olive_type == "sparsegpt" and _rotary(recipe.input_model.path, arch):
                problems.append(Problem(
                    f"{prefix}.{name}", f"the input model ({arch}) has rotary position embeddings: olive-ai 0.13's "
                    "SparseGPT runs each decoder layer without them, which fails with transformers 5 (\"cannot "
                    "unpack non-iterable NoneType object\"); it prunes bloom, gpt2 and opt models",
                    hint="prune a bloom, gpt2 or opt model, or leave SparseGPT out",
                ))  # fmt: skip
    return problems


_NO_ROTARY = ("bloom", "gpt2", "opt")  # the SparseGPT families whose layers take no rotary position embeddings


def _rotary(model: str, arch: str) -> bool:
    """Whether a causal LM's decoder layers need rotary position embeddings handed to them (every GGUF family we
    read does; a folder or cached hub id by its config's model_type)."""
    if arch == "a GGUF model":
        return True
    return str((config_json(model) or {}).get("model_type", "")) not in _NO_ROTARY


def _causal_lm(model: str) -> str | None:
    """The architecture of a causal LM input (a local folder's config.json, a hub id's in the local Hugging Face
    cache, a GGUF file or folder, a packaged GGUF), or None (an encoder, or not known here)."""
    if model.startswith(PYPI_PREFIX):
        inner = PYPI_MODELS.get(model[len(PYPI_PREFIX) :], ("", ""))[1]
        return "a GGUF model" if inner.endswith(".gguf") else None
    path = Path(model).expanduser()
    if path.suffix == ".gguf" or (path.is_dir() and any(path.glob("*.gguf"))):
        return "a GGUF model"
    archs = (config_json(model) or {}).get("architectures") or []  # a folder's, or a hub id's cached copy
    return next((str(a) for a in archs if str(a).endswith(("ForCausalLM", "LMHeadModel"))), None)


def checked_model(recipe: Recipe) -> str | None:
    """The input model the checks before work look at: :func:`model_file`; for a model the user's Olive model_loader
    makes, only a hub id its path names (the loader is handed that id and loads it from the hub: offline and not in
    the hub cache, it failed inside the user's script), else None (the path may name no model)."""
    path = model_file(recipe)
    if not made_by_loader(recipe):
        return path
    return path if looks_like_hub_id(path) and not Path(path).expanduser().exists() else None


def model_file(recipe: Recipe) -> str:
    """The input model as the checks see it: a .gguf file given as -m is the file (its folder may hold the
    output, and the file's header is checked), anything else its path."""
    model = recipe.input_model
    gguf = Path(model.path, model.gguf_file).expanduser() if model.gguf_file else None
    return str(gguf) if gguf is not None and gguf.is_file() else model.path


def check_recipe_before_work(recipe: Recipe, write_output: bool = True) -> None:
    """:func:`check_before_work` for a recipe: its output (when written), cache, input model (:func:`checked_model`:
    as `validate` checks it) and every dataset."""
    check_before_work(
        model=checked_model(recipe),
        cache_dir=recipe.cache_dir,
        datasets=recipe.data.values(),
        output=recipe.output.path if write_output else None,
        overwrite=recipe.output.overwrite,
        adapters=[recipe.input_model.adapter_path],
    )
    check_first_steps(recipe)
    check_timing_prompt(recipe)
    check_benchmark_datasets(recipe)
    check_something_measurable(recipe)
    if recipe.executor.type == "ray":
        # the Ray executor's module: loaded only when a recipe asks for Ray (as make_executor loads it)
        from olive_ext.engine.ray_executor import check_cluster

        check_cluster(recipe.executor)


def check_something_measurable(recipe: Recipe) -> None:
    """A recipe that only evaluates (no passes) on targets this machine does not run measures nothing: Olive's
    llama2_generate config (a CUDA latency evaluator) exited 0 with nothing measured and a copy of its input."""
    spec = recipe.evaluate
    if recipe.passes or recipe.pipelines or spec is None:
        return
    runs = [n for n in spec.metrics if (m := get_metric(n)) is not None and m.needs]  # the size needs no runtime
    targets = [t.target() for t in recipe.targets or [TargetSpec()]]
    if runs and not any(t.is_available() for t in targets):
        shown = ", ".join(sorted({t.provider for t in targets}))
        raise UserInputError(
            f"this recipe only evaluates the input model ({', '.join(runs)}) on {shown}, which this machine does not "
            "run: nothing would be measured",
            hint="evaluate on a target this machine runs (device: cpu), or run it where that device is",
        )


def check_timing_prompt(recipe: Recipe) -> None:
    """A causal LM's timing prompt and the tokens decoded after it fit the local input model's context: a run asked
    for more failed each candidate after its build ("input_ids size (5000) ... exceeds max length (512)")."""
    spec = recipe.evaluate
    model = recipe.input_model
    timed = spec is not None and any((m := get_metric(n)) and m.needs & {"timing", "load"} for n in spec.metrics)
    if spec is None or not timed or not Path(model.path).expanduser().exists():
        return  # a hub id or a pypi: model is checked when it is fetched
    try:
        artifact = resolve_model_arg(model.path, model.adapter_path, model.kind, model.gguf_file)
        if model_task(artifact) != "text-generation":
            return  # an encoder is timed on at most its positions
        context = model_context(artifact)
    except (UserInputError, OSError, ValueError):  # said by the model's own checks
        return
    if context is not None and spec.prompt_tokens + spec.new_tokens > context:
        raise UserInputError(
            f"evaluate.prompt_tokens ({spec.prompt_tokens}) plus evaluate.new_tokens ({spec.new_tokens}) exceed "
            f"{model.path}'s context of {context} tokens: speed is timed on a prompt that long",
            hint=f"lower --prompt_tokens (evaluate.prompt_tokens) to at most {max(context - spec.new_tokens, 1)}",
        )


def check_benchmark_datasets(recipe: Recipe) -> None:
    """Metrics 'lm_eval' and 'mteb' have their tasks, and the datasets those read are on this machine (olive-ext
    runs offline), before any candidate is built. Olive configs were checked the same way as they were translated;
    this covers recipes written for olive-ext."""
    spec = recipe.evaluate
    if spec is None:
        return
    for name, tasks in (("lm_eval", spec.lm_eval), ("mteb", spec.mteb)):
        if name in spec.metrics and tasks is None:
            raise UserInputError(f"metric '{name}' is listed but evaluate.{name} names no tasks to score",
                                 hint=f"add evaluate.{name}.tasks, or drop '{name}' from evaluate.metrics")  # fmt: skip
    missing = []
    if "lm_eval" in spec.metrics and spec.lm_eval is not None and lm_eval_tasks.lm_eval_version() is not None:
        missing += lm_eval_tasks.missing_datasets(spec.lm_eval.tasks)
    if "mteb" in spec.metrics and spec.mteb is not None and mteb_tasks.mteb_version() is not None:
        missing += mteb_tasks.missing_datasets(spec.mteb.tasks)
    if missing:
        message, hint = lm_eval_tasks.offline_message("the benchmark", missing)
        raise UserInputError(message, hint=hint)


def check_model_folder(path: str) -> None:
    """A local folder given as a model must hold one, and a local model's files must read as what they claim to be
    (GGUF, safetensors, a causal LM's tokenizer); a hub id must be reachable or in the hub cache, and a
    bare adapter folder's base is checked as the model."""
    if path.startswith(PYPI_PREFIX):
        return
    folder = Path(path).expanduser()
    if folder.is_file() and folder.suffix.lower() == ".gguf":
        check_gguf_file(folder)
        split = split_problem(folder)  # every command checked here converts a GGUF to PyTorch weights
        if split:
            raise UserInputError(f"{folder}: {split}", hint="give the merged .gguf with -m")
        return
    if folder.is_file() and folder.suffix.lower() != ".onnx":  # a model's weights or config given as the model
        raise UserInputError(
            f"{folder} is a file, and the only model files -m takes are .gguf and .onnx files",
            hint=f"point -m at the folder that holds it: -m {folder.parent}",
        )
    if not folder.exists():
        if "@" in path and looks_like_hub_id(path.split("@", 1)[0]):  # huggingface_hub's own traceback before
            name, revision = path.split("@", 1)
            raise UserInputError(
                f"-m {path}: a hub id names no revision after '@' here",
                hint=f"give -m {name}, and the revision in a recipe (input_model: {{path: {name}, revision: "
                f"{revision}}}); or download that revision and give its folder",
            )
        if not looks_like_hub_id(path):
            raise missing_model_error(path)
        check_hub_model(path)
        return
    if not folder.is_dir() or (folder / MODEL_CONFIG).exists():
        return
    if is_bare_adapter(folder):  # a peft adapter: its base model is the model to check
        check_model_folder(adapter_base(folder))
        return
    if (folder / "config.json").is_file() and (folder / ADAPTER_CONFIG).is_file():
        # transformers applies a folder's adapter when it loads the folder, and olive-ext's builds did not: the fp32
        # build failed parity (max |delta| 1.1), and a fine-tune wrapped the adapted model in peft again
        raise UserInputError(
            f"{folder} holds both a model (config.json) and a peft adapter ({ADAPTER_CONFIG}), which transformers "
            "applies when it loads the folder: which model is meant is not clear",
            hint=f"move the adapter files ({ADAPTER_CONFIG}, adapter_model.safetensors) to a folder of their own "
            "and give it with --adapter_path (-m the model), or merge it first (`olive-ext export`)",
        )
    if (folder / "genai_config.json").exists() or any(folder.glob("*.onnx")) or any(folder.glob("*.gguf")):
        return
    config = folder / "config.json"
    if not config.exists():
        raise UserInputError(
            f"{folder} holds no model: none of {_MODEL_MARKERS} is in it",
            hint="point -m at the model's own folder (the one holding config.json), a .gguf file or a hub id",
        )
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserInputError(f"{config} cannot be read as JSON ({e})", hint="restore the model's config.json") from e
    if not isinstance(data, dict):
        raise UserInputError(f"{config} is not a model configuration (a JSON object)", hint="restore it")
    check_weight_files(folder)
    check_quantization(folder, data)
    for weights in sorted(folder.glob("*.safetensors")):
        check_safetensors_file(weights)
    check_weight_shapes(folder, data)
    architectures = data.get("architectures") or []
    causal = any(isinstance(a, str) and a.endswith(("ForCausalLM", "ForConditionalGeneration")) for a in architectures)
    if causal and not any((folder / name).exists() for name in _TOKENIZER_FILES):
        raise UserInputError(
            f"{folder} holds a causal LM ({', '.join(map(str, architectures))}) but no tokenizer: none of "
            f"{', '.join(_TOKENIZER_FILES)} is in it, and every LM step (builder, fine-tune, evaluation) needs one",
            hint=f"save the base model's tokenizer there: "
            f"AutoTokenizer.from_pretrained(BASE).save_pretrained('{folder}')",
        )


# transformers' weight files (its SAFE_WEIGHTS_NAME / WEIGHTS_NAME and their sharded forms), by pattern
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


def check_weight_files(folder: Path) -> None:
    """``folder`` (a model's config.json beside them) holds weights, and every shard its index names.

    A config.json without weights (a download that stopped after the small files, a folder copied without
    them) failed in every candidate's build, with the tokenizer loader's words; a missing shard, at load."""
    if not any(any(folder.glob(pattern)) for pattern in _WEIGHT_PATTERNS):
        raise UserInputError(
            f"{folder} holds a model's config.json but no weights: no .safetensors (or .bin) file is in it",
            hint="download or save the model again: model.safetensors (or its shards and index) belongs beside "
            "config.json",
        )
    for index in sorted([*folder.glob("*.safetensors.index.json"), *folder.glob("*.bin.index.json")]):
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map") or {}
        except (OSError, ValueError, AttributeError) as e:
            raise UserInputError(f"{index} cannot be read as a weights index ({e})", hint="download it again") from e
        missing = sorted({str(f) for f in weight_map.values() if not (folder / str(f)).is_file()})
        if missing:
            raise UserInputError(
                f"{index} names {len(missing)} shard(s) that are not in {folder}: {', '.join(missing[:3])}"
                + (" ..." if len(missing) > 3 else ""),
                hint="the download stopped part way: download the missing shards (or the model) again",
            )


def check_weight_shapes(folder: Path, config: dict[str, Any]) -> None:
    """Each safetensors weight has the shape ``folder``'s config.json implies for it (``config``: that file, already
    read). A config.json edited or taken from another model (hidden_size changed) ended every fine-tune, build and
    export in transformers' "size mismatch ... ignore_mismatched_sizes" report; said here, before any work."""
    if quant_method_in(config) is not None:  # bitsandbytes packs its weights: shapes differ by design
        return
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return
    seen = _shapes_checked_marker(folder, files)
    if seen is not None and seen.exists():  # these very files passed before: a cached re-run imports no torch
        return
    expected = _config_shapes(folder)
    if not expected:
        return
    from safetensors import safe_open  # as check_safetensors_file: headers only, no tensor is loaded

    for weights in files:
        with safe_open(str(weights), framework="numpy") as f:
            names: list[str] = f.keys()
            for name in names:
                want = expected.get(name)
                if want is None:  # a name the model does not have (transformers renames some as it loads)
                    continue
                got = tuple(f.get_slice(name).get_shape())
                if got != want:
                    raise UserInputError(
                        f"{folder}'s config.json does not match its weights: {name} is {list(got)} in {weights.name}, "
                        f"and config.json implies {list(want)}",
                        hint="this config.json does not belong to these weights: restore the model's own config.json "
                        "(download it again with the weights)",
                    )
    if seen is not None and seen.parent.parent.is_dir():  # checks before work create no cache: a first run's next
        try:  # run remembers the pass
            seen.parent.mkdir(exist_ok=True)
            seen.touch()
        except OSError:  # a read-only cache: checked again next time
            pass


def _shapes_checked_marker(folder: Path, files: list[Path]) -> Path | None:
    """The cache file that says ``folder``'s config.json and these weight headers passed check_weight_shapes (keyed
    by their bytes: an edit to either checks again), or None when they cannot be read (the check then runs)."""
    import hashlib

    digest = hashlib.sha256()
    try:
        digest.update((folder / "config.json").read_bytes())
        for weights in files:
            with weights.open("rb") as f:
                size = int.from_bytes(f.read(8), "little")
                digest.update(weights.name.encode() + f.read(min(size, 100 << 20)))
    except OSError:
        return None
    from importlib.metadata import version  # transformers decides the shapes; its version is read, not imported

    key = cache_key("weight-shapes", digest.hexdigest(), version("transformers"))
    return default_cache_dir() / "checks" / f"{key}.ok"


def _config_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """The shape of every weight the model of ``folder``'s config.json has, from the model built on the meta device
    (no memory, no weights read); {} when transformers cannot build it here (remote code, an unknown architecture):
    loading the model then says what is wrong."""
    import torch  # only for a local Hugging Face folder, checked before its work starts
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(folder)
        cls = getattr(transformers, (config.architectures or [""])[0], None)
        if cls is None:
            return {}
        with torch.device("meta"):
            model = cls(config)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError, RuntimeError):
        return {}  # a config transformers cannot build a model of: its own load says why
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def check_quantization(folder: Path, config: dict[str, Any]) -> None:
    """A quantized model is one olive-ext can dequantize (bitsandbytes: Unsloth's -bnb-4bit bases), and its
    weights are no pickle: a pytorch_model.bin runs code when it is loaded, so only safetensors are read.
    ``config``: the folder's config.json, already read."""
    method = quant_method_in(config)
    if method is not None and method != BNB_METHOD:
        raise UserInputError(
            f"{folder} holds a model quantized with {method} (config.json's quantization_config); olive-ext builds and "
            "fine-tunes from full-precision weights (bitsandbytes 4/8-bit ones it dequantizes first)",
            hint="give the model it was quantized from (its original safetensors weights); auto-opt builds and "
            "measures int4/int8 variants itself",
        )
    check_no_pickle_only(folder)


# files any of which lets transformers' AutoTokenizer load a tokenizer from a folder
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt")


def check_gguf_file(path: Path) -> None:
    """``path`` reads as a GGUF file: magic bytes, header, tensor table, and every tensor's bytes present
    (models/gguf_header.py, a header walk that loads no tensor)."""
    try:
        check_complete(path)
    except GGUFLayoutError as e:
        reason = str(e) if "magic" in str(e) else f"its header or tensor table cannot be read ({e})"
        raise UserInputError(
            f"{path} is not a complete GGUF file: {reason}",
            hint="download or export the .gguf again (a partial download is the usual cause)",
        ) from None


def check_safetensors_file(path: Path) -> None:
    """``path``'s safetensors header reads (the safetensors package parses it; no tensor is loaded)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            f.keys()
    except Exception as e:  # safetensors raises its own SafetensorError on a bad or truncated header
        raise UserInputError(
            f"{path} is not a readable safetensors file ({type(e).__name__}: {e})",
            hint="restore the model's weights (a partial download or copy is the usual cause)",
        ) from None
