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
recipe's own checks name the user's keys too (:meth:`Translation.user_problem`). The sections other than passes
are in :mod:`olive_ext.recipe.olive_sections`, what they share in :mod:`olive_ext.recipe.olive_context`.
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path
from typing import Any

from olive_ext.errors import Problem
from olive_ext.evaluate.lm_eval_tasks import TaskDataset
from olive_ext.models.hub import go_offline_unless_reachable
from olive_ext.options import literal_choices
from olive_ext.passes import olive_catalog
from olive_ext.passes.base import Pass, check_pass_params, get_pass, registered_passes
from olive_ext.passes.model_builder import UNREAD_OPTION, did_you_mean_option, unread_extra_options
from olive_ext.recipe.olive_context import (
    LENIENT_HINT,
    Translation,
    TranslationContext,
    is_azureml_asset,
    located_script,
    nested,
    unnest,
)
from olive_ext.recipe.olive_sections import (
    data_section,
    evaluators_section,
    input_model_section,
    named_metrics,
    refuse_empty_olive_split,
    refuse_hub_dataset,
    refuse_missing_hub_data,
    search_section,
    systems_section,
)
from olive_ext.recipe.olive_shapes import OlivePass, shaped

__all__ = [
    "LENIENT_HINT",
    "OLIVE_INSTALL",
    "Translation",
    "is_olive_config",
    "olive_ai_installed",
    "olive_pass_names",
    "translate",
    "translate_config",
]

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
# Every top-level key olive-ai 0.13's run config takes (RunConfig's and RunEngineConfig's fields; checked against
# olive-ai in a test): any other key Olive refuses too ("Extra inputs are not permitted")
OLIVE_RUN_KEYS = frozenset({
    "data_configs", "engine", "evaluators", "input_model", "passes", "systems", "workflow_id", "cache_config",
    "cache_dir", "clean_cache", "clean_evaluation_cache", "enable_shared_cache", "evaluate_input_model", "evaluator",
    "host", "log_severity_level", "log_to_file", "no_artifacts", "ort_log_severity_level", "ort_py_log_severity_level",
    "output_dir", "packaging_config", "plot_pareto_frontier", "search_strategy", "target",
})  # fmt: skip
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
# Olive pass types of other Olive releases (not in the installed olive-ai), by lower-case prefix: what they need
# (a vendor toolchain: "sdk"; hardware alone: "device")
_HARDWARE_TYPES: dict[str, tuple[str, Any]] = {
    "quark": ("AMD Quark with the Ryzen AI / Vitis AI SDK and an AMD NPU", "sdk"),
    "ryzen": ("the AMD Ryzen AI SDK and a Ryzen AI NPU", "sdk"),
    "vitis": ("AMD Vitis AI / Ryzen AI software and a Ryzen AI NPU", "sdk"),
    "snpe": ("the Qualcomm SNPE SDK and a Snapdragon device", "sdk"),
    "qnn": ("the Qualcomm QNN SDK and a Snapdragon NPU", "sdk"),
    "qairt": ("the Qualcomm AI Runtime SDK (qairt-dev) and a Snapdragon NPU", "sdk"),
    "aitkpython": ("the AI Toolkit for VS Code (its own Olive build runs this script pass)", "sdk"),
    "torchtrt": ("NVIDIA TensorRT (torch-tensorrt) and an NVIDIA GPU", "sdk"),
    "pytorchtensorparallel": ("several CUDA GPUs (it shards the model across them, one process each)", "device"),
}
# Olive options, with the values that ask for what our pass does anyway: removed before the pass's translation
_SAME_AS_OURS: dict[str, dict[str, Any]] = {
    "onnxconversion": {"device": ["cpu"]},
    "onnxstaticquantization": {"quant_format": ["QDQ"], "quant_mode": ["static"], "quant_preprocess": [False]},
    "extractadapters": {"make_inputs": [True]},
    "modelbuilder": {"metadata_only": [False]},  # Olive's default: the builder exports the model itself, as ours
}
# what our pass's validation says of an option it lacks, or of a value only Olive's pass takes
_LACKING = {"unknown key", "value not allowed"}
# Olive's ModelBuilder pass fails with onnxruntime-genai 0.18: ours always runs it.
_NO_OLIVE_FALLBACK = {"modelbuilder"}
# Olive options (by pass type, lower case) whose step olive-ext cannot run as asked, why, and what to write instead
_REFUSED_OPTIONS = {
    "modelbuilder": {
        "metadata_only": (
            "metadata_only writes genai_config.json beside an LLM graph that an earlier OnnxConversion exported with "
            "its KV cache; olive-ext has no such export (and Olive's own fails on transformers 5's cache objects)",
            "let ModelBuilder export the model itself: drop OnnxConversion, OrtTransformersOptimization and "
            "ExtractAdapters and remove metadata_only (for swappable adapter weights, olive-ext's model_builder "
            "takes adapter_mode: inputs)",
        )
    }
}
OLIVE_INSTALL = "pip install 'olive-ext[olive]'"


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


def translate(raw: dict[str, Any], base_dir: Path | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """Return (our recipe mapping, problems and notes) for an Olive run config."""
    t = translate_config(raw, base_dir)
    return t.recipe, t.problems


def translate_config(raw: dict[str, Any], base_dir: Path | None = None) -> Translation:
    """Translate an Olive run config; ``base_dir`` is its folder (user scripts and files are found from there)."""
    problems: list[Problem] = []
    ctx = TranslationContext(problems, {}, base_dir)
    raw = dict(raw)
    engine = raw.pop("engine", None)
    if isinstance(engine, dict):  # older Olive nests these under `engine`
        for key, value in engine.items():
            if key not in raw:
                raw[key] = value
                ctx.paths[str(key)] = f"engine.{key}"
    out: dict[str, Any] = {}

    if _names_user_code(raw):  # Olive imports these scripts to validate the config; they may load from the hub
        go_offline_unless_reachable()
    _refuse_azureml_assets(raw, ctx)
    model_key = "input_model" if "input_model" in raw else ("model" if "model" in raw else None)
    if model_key is None:
        ctx.error("input_model", "required key is missing", hint="add input_model: {type: HfModel, model_path: ...}")
    else:
        ctx.paths["input_model"] = model_key
        out["input_model"] = input_model_section(raw.pop(model_key), model_key, ctx)

    if "data_configs" in raw:
        out["data"] = data_section(raw.pop("data_configs"), ctx)
    if "systems" in raw or isinstance(raw.get("target"), dict):
        targets = systems_section(raw.pop("systems", None), raw.get("target"), ctx)
        if targets:
            out["targets"] = targets
    ctx.searching = raw.get("search_strategy") not in (None, False)
    if "passes" in raw:
        out["passes"] = _passes(raw.pop("passes"), ctx)
    evaluators = raw.pop("evaluators", None)
    metrics = named_metrics(raw.pop("metrics", None), ctx)
    top = (raw.get("evaluator"), ctx.paths.get("evaluator", "evaluator"))
    chosen, chosen_at = ctx.pass_evaluator or top
    named = {n: a for n, a in [top, *ctx.evaluator_names] if isinstance(n, str)}  # every name Olive resolves
    known = evaluators if isinstance(evaluators, dict) else {}
    for name, at in named.items():
        if name not in known:
            ctx.error(at, f"names no evaluator of `evaluators` (there: {', '.join(map(str, known)) or 'none'})",
                      value=name, has_value=True)  # fmt: skip
    if chosen is not None and not isinstance(chosen, str):  # Olive takes an evaluator config in place too
        ctx.unhonoured(chosen_at, "an evaluator written in place is not read by olive-ext",
                       "write it under `evaluators` and name it here (evaluator: NAME)")  # fmt: skip
    elif evaluators and (chosen is None or chosen in known):  # an unknown name is said above
        searching = raw.get("search_strategy") not in (None, False)
        evaluate = evaluators_section(evaluators, chosen, metrics, searching, ctx)
        if evaluate:
            out["evaluate"] = evaluate
    if "search_strategy" in raw:
        search = search_section(raw.pop("search_strategy"), ctx)
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
    if "auto_optimizer_config" in raw:
        _auto_optimizer(raw.pop("auto_optimizer_config"), ctx)
    if "azureml_client" in raw:
        raw.pop("azureml_client")
        ctx.note(
            "azureml_client",
            "Azure ML workspace credentials: olive-ext does not connect to Azure ML; any part of this config that "
            "needs it (a model, datastore, AzureML system) is refused on its own",
        )
    if raw.get("evaluate_input_model") is True:  # dropped without a word: Olive writes the input model's metrics
        ctx.note("evaluate_input_model", "olive-ext measures the input model where a comparison needs it "
                 "(relative goals; an LLM's PyTorch reference, candidates.json's reference), not as a file of its own")
    for key in list(raw):
        if key in _HARMLESS:
            raw.pop(key)
        elif key in {"data", "targets", "evaluate", "search", "output"}:
            out[key] = raw.pop(key)  # already in our format
    for key in raw:
        where = ctx.paths.get(str(key), str(key))
        if key in OLIVE_RUN_KEYS:
            ctx.unhonoured(where, "Olive key not supported by olive-ext", "remove it (see the README's Olive section)")
            continue
        # a typo (`pases`) or a guide's invented block (`training_config`) was called an "Olive key"
        close = difflib.get_close_matches(str(key), sorted(OLIVE_RUN_KEYS), n=1, cutoff=0.75)
        hint = (f"did you mean {close[0]!r}?" if close else "a LoRA pass's training settings go in its "
                "training_args (passes.NAME.training_args)" if "train" in str(key) else "remove it")
        ctx.unhonoured(where, "not a key of Olive's run config (Olive refuses it too)", hint)
    if ctx.model_needs_olive and any(s.get("type") == "olive" for s in (out.get("passes") or {}).values()):
        _olive_model_config(out, ctx)
    return Translation(out, problems, ctx.paths)


def _auto_optimizer(value: Any, ctx: TranslationContext) -> None:
    """Older Olive releases' ``auto_optimizer_config`` (olive-ai 0.13 refuses the key): switched off it asks for
    nothing, so it is a note; switched on, Olive chose the passes itself, which is what ``olive-ext auto-opt`` does."""
    where = ctx.paths.get("auto_optimizer_config", "auto_optimizer_config")
    if isinstance(value, dict) and value.get("disable_auto_optimizer") is True:
        ctx.note(
            where,
            "older Olive releases' auto optimizer, switched off: nothing to do (olive-ai 0.13 no longer has the key); "
            "the passes and evaluator as written are run",
        )
        return
    ctx.error(
        where,
        "older Olive releases' auto optimizer picked the passes itself (olive-ai 0.13 no longer has the key)",
        hint="remove it and list the passes, or let `olive-ext auto-opt -m MODEL --device cpu` build and measure "
        "the candidates",
    )


def _olive_model_config(out: dict[str, Any], ctx: TranslationContext) -> None:
    """The Olive model config (load_kwargs, the user's hooks, task) for the olive step to load the model with,
    where that step does; else each such key is named: the model would be loaded from model_path alone."""
    olive_step = get_pass("olive")
    if olive_step is not None and getattr(olive_step, "loads_olive_model", False):
        out["input_model"]["olive"] = ctx.olive_model  # carried on the input artifact's meta as "olive_model"
        return
    for key in ctx.model_needs_olive:
        ctx.unhonoured(
            key,
            "the olive step here loads the model from model_path alone, not through Olive's model config",
            "remove it, or convert the model first and start from the converted one",
        )


# --------------------------------------------------------------------------- passes


def _passes(passes: Any, ctx: TranslationContext) -> dict[str, Any]:
    if not isinstance(passes, dict | list):
        ctx.error("passes", "must be a mapping of named passes", value=passes, has_value=True)
        return {}
    items = list(passes.items()) if isinstance(passes, dict) else list(enumerate(passes))
    items = _fold_into_builder(items, isinstance(passes, list), ctx)
    natives = {o.lower(): (o, name) for o, name in olive_pass_names().items()}
    out: dict[str, Any] = {}
    first_model_pass = True
    composite = False  # after SplitModel: Olive's own passes rewrite each component (our native passes take none)
    for key, spec in items:
        step = str(spec.get("name", key)) if isinstance(spec, dict) and isinstance(passes, list) else str(key)
        path = _pass_path(key, isinstance(passes, list))
        if not isinstance(spec, dict) or "type" not in spec:
            ctx.error(path, "a pass needs a `type`", value=spec, has_value=True)
            continue
        at = _options_path(key, spec, isinstance(passes, list))
        spec = shaped(unnest(spec), OlivePass, path, ctx.problems)
        if spec is None:
            continue
        olive_type = str(spec.pop("type"))
        spec.pop("name", None)
        spec.pop("host", None)  # Olive's system to run this pass on: olive-ext runs every pass here, as for `host`
        if "evaluator" in spec:
            _pass_evaluator(spec.pop("evaluator"), f"{path}.evaluator", key == items[-1][0], ctx)
        ctx.paths[f"passes.{step}"] = path
        _hub_data(olive_type, spec, at, ctx)
        native = None if composite else natives.get(olive_type.lower())
        composite = (composite or olive_type.lower() == "splitmodel") and olive_type.lower() not in _COMPOSES
        reasons = list(ctx.model_needs_olive) if first_model_pass else []
        first_model_pass = False
        translated = None
        if native is not None:
            translated = _native(native, spec, step, path, at, reasons, ctx)
        if translated is None:
            translated = _through_olive(olive_type, spec, step, path, at, native, ctx)
        if translated and translated.get("type") == "model_builder":
            _unshared_for_embedding_surgery(translated, items, path, ctx)
        if translated:
            out[step] = translated
    return out


def _embed_bits(spec: dict[str, Any]) -> Any:
    """The bits an Olive RTN/GPTQ pass quantizes the embedding to: its override for model.embed_tokens, or bits."""
    overrides = spec.get("overrides")
    embed = overrides.get("model.embed_tokens") if isinstance(overrides, dict) else None
    return embed.get("bits", spec.get("bits", 4)) if isinstance(embed, dict) else spec.get("bits", 4)


def _unshared_for_embedding_surgery(
    builder: dict[str, Any], items: list[tuple[Any, Any]], path: str, ctx: TranslationContext
) -> None:
    """olive-recipes follow an int4 ModelBuilder with GraphSurgeries' QuantizeEmbeddingInt8 (and
    ShareEmbeddingLmHead): an int8 embedding shared with the LM head. onnxruntime-genai 0.18's builder shares a
    tied model's embedding with its int4 LM head itself, so the surgeon found no float Gather and did nothing (the
    model kept 4-bit embeddings). With the builder's sharing off the surgeries do what the recipe asks."""
    surgeons = {str(s.get("surgeon", "")).lower() for _, spec in items if isinstance(spec, dict)
                and str(spec.get("type", "")).lower() == "graphsurgeries"
                for s in (unnest(spec).get("surgeries") or []) if isinstance(s, dict)}  # fmt: skip
    quantizers = [unnest(spec) for _, spec in items
                  if isinstance(spec, dict) and str(spec.get("type", "")).lower() in {"rtn", "gptq"}]  # fmt: skip
    int8_embeds = any(q.get("embeds") and _embed_bits(q) == 8 for q in quantizers)
    if int8_embeds and "quantizeembeddingint8" not in surgeons:
        ctx.note(path, "onnxruntime-genai 0.18's builder writes no int8 embedding (its GatherBlockQuantized takes 4 "
                 "bits): the embedding the quantization pass made int8 is written in float, and a TieWordEmbeddings "
                 "surgery after it ties nothing; add the surgeon QuantizeEmbeddingInt8 before it to "
                 "make it int8")  # fmt: skip
    if "quantizeembeddingint8" in surgeons and builder.get("shared_embeddings") is None:
        builder["shared_embeddings"] = False
        ctx.note(path, "the builder's own embedding sharing is off (shared_embeddings: false), so GraphSurgeries' "
                 "QuantizeEmbeddingInt8 finds the float embedding it quantizes to int8")  # fmt: skip


_WIKITEXT = ("Salesforce/wikitext", "wikitext-2-raw-v1")
_LOCAL_DATA = "give data_config: a data config that reads a local file (data_name: json, data_files: ...)"
# Olive passes that load a hub dataset by themselves (olive-ai 0.13's get_calibration_data_config): lower-case type
# -> (the option that makes them: data_config left out, option == value, or None: always), the dataset and its
# config, what to do instead
_DEFAULT_DATA: dict[str, tuple[str | None, Any, tuple[str, str | None], str]] = {
    "gptq": ("data_config", None, _WIKITEXT, _LOCAL_DATA),
    "gptqmodel": ("data_config", None, _WIKITEXT, _LOCAL_DATA),
    "gptqquantizer": ("data_config", None, _WIKITEXT, _LOCAL_DATA),
    "autoclip": ("data_config", None, ("mit-han-lab/pile-val-backup", None), _LOCAL_DATA),
    "selectivemixedprecision": ("algorithm", "kld_gradient", _WIKITEXT,
                                "choose an algorithm that reads no data (k_quant_mixed, k_quant_down, snr, iqe)"),
    "spinquant": (None, None, _WIKITEXT, "use QuaRot, which rotates without training data"),  # rotation training
}  # fmt: skip
# the Olive passes (lower-case types) that load wikitext themselves when given no data_config
DEFAULT_CALIBRATION_PASSES = frozenset(t for t, (option, *_) in _DEFAULT_DATA.items() if option == "data_config")


def _hub_data(olive_type: str, spec: dict[str, Any], at: str, ctx: TranslationContext) -> None:
    """The hub datasets a pass reads that this machine cannot read offline, each a named ``hub`` refusal (the check
    the evaluators' datasets get): those its data configs name (at their ``data_name``), and the dataset Olive's
    pass loads by itself when none is given (at the option that makes it, or the pass's type)."""
    for key, value in spec.items():
        if key.endswith("data_config") and isinstance(value, str) and value in ctx.olive_data:
            refuse_missing_hub_data(value, f"pass {olive_type}, at {at}.{key}", ctx)
    default = _DEFAULT_DATA.get(olive_type.lower())
    if default is None:
        return
    option, value, (name, subset), instead = default
    if option == "data_config" and spec.get(option):
        return  # the user's own data, checked above
    if option is not None and value is not None and str(spec.get(option)).lower() != value:
        return  # an algorithm that reads no data
    dataset = TaskDataset(olive_type, name, subset)
    if not dataset.available():
        when = {"data_config": "without a data_config, ", None: ""}.get(option, f"with {option} {value}, ")
        where = f"{at}.{option}" if option else f"{at}.type"
        refuse_hub_dataset(dataset, where, f"{when}Olive's {olive_type}", ctx, instead)


# Olive passes that make one graph of a composite model's components
_COMPOSES = {"composeonnxmodels", "optimummerging"}


def _pass_evaluator(value: Any, at: str, last: bool, ctx: TranslationContext) -> None:
    """A pass's own `evaluator` (Olive's RunPassConfig key, not a pass parameter): Olive evaluates a flow's output
    with its last pass's evaluator, in place of the top-level one, and uses no other pass's."""
    if value is None:  # Olive: `pass_config.evaluator or` the top-level one
        return
    if isinstance(value, str):
        ctx.evaluator_names.append((value, at))  # Olive resolves every name it is given: checked below
    if not last:
        ctx.note(at, "Olive evaluates with a pass's own evaluator only when it is the last pass of the flow; this "
                 "pass is not, so it is not used here either")  # fmt: skip
    else:
        ctx.pass_evaluator = (value, at)


def _pass_path(key: Any, listed: bool) -> str:
    """A pass's key path as the user's file spells it (``passes.<name>``, or ``passes[i]`` in a list)."""
    return f"passes[{key}]" if listed else f"passes.{key}"


def _options_path(key: Any, spec: Any, listed: bool) -> str:
    """Where a pass's options sit: under ``config`` in Olive's older nested format."""
    path = _pass_path(key, listed)
    return f"{path}.config" if nested(spec) else path


# Olive's LLM export chain that ModelBuilder(metadata_only) ends: the passes before it, from OnnxConversion on
_FOLDED_INTO_BUILDER = ("onnxconversion", "orttransformersoptimization", "extractadapters")
# ExtractAdapters' adapter types whose weights cannot be run-time LoRA inputs of a builder's graph
_NOT_LORA_INPUTS = {"dora": "DoRA's magnitude vectors", "loha": "LoHa's Hadamard products"}


def _fold_into_builder(items: list[tuple[Any, Any]], listed: bool, ctx: TranslationContext) -> list[tuple[Any, Any]]:
    """OnnxConversion [-> OrtTransformersOptimization] [-> ExtractAdapters] -> ModelBuilder(metadata_only) as
    one ModelBuilder build from the (fine-tuned) PyTorch model.

    Olive exports the LLM with its KV cache in PyTorch, optimises the graph, pulls the adapter weights out as
    inputs, then lets ModelBuilder write only genai_config.json (olive-recipes' Llama-3.2 LoRA/DoRA/LoHa/LoKr/
    QLoRA configs). olive-ext has no such KV-cache export (and Olive's own fails on transformers 5's cache
    objects); the builder writes the same thing, an onnxruntime-genai model at ModelBuilder's precision, from
    the PyTorch model: with ExtractAdapters the adapter's weights become model inputs (``adapter_mode: inputs``,
    ``embed`` for make_inputs false), else the adapter is merged, as Olive's export merges it. Each folded pass
    is named in a note; a chain with other passes in it is left to the refusal of metadata_only."""
    types = [str(spec.get("type", "")).lower() if isinstance(spec, dict) else "" for _, spec in items]
    drop: set[int] = set()
    out = list(items)
    for i, (key, spec) in enumerate(items):
        flat = unnest(spec) if isinstance(spec, dict) else {}
        if types[i] != "modelbuilder" or flat.get("metadata_only") is not True:
            continue
        j = i - 1
        while j >= 0 and types[j] in _FOLDED_INTO_BUILDER[1:]:
            j -= 1
        if j < 0 or types[j] != "onnxconversion":
            continue
        at = _options_path(key, spec, listed)
        builder = {k: v for k, v in flat.items() if k != "metadata_only"}
        for k in range(j, i):
            other_key, other = items[k]
            other_at = _options_path(other_key, other, listed)
            other = unnest(other)
            if types[k] == "extractadapters":
                adapter_type = str(other.get("adapter_type", "lora")).lower()
                if adapter_type in _NOT_LORA_INPUTS:
                    ctx.error(f"{other_at}.adapter_type", f"{_NOT_LORA_INPUTS[adapter_type]} cannot be run-time "
                              "LoRA inputs of the builder's graph (olive-ext's model_builder makes LoRA weights its "
                              "inputs only)", value=adapter_type, has_value=True,
                              hint=f"remove {other_key}: the adapter is then merged into the weights")  # fmt: skip
                builder["adapter_mode"] = "inputs" if other.get("make_inputs", True) else "embed"
            folded = (
                f"{other.get('type')} runs as part of {key}'s build: ModelBuilder builds the model from PyTorch, "
                "in place of Olive's export + metadata_only (olive-ext has no KV-cache export of its own; Olive's "
                "fails on transformers 5)"
            )
            ctx.note(f"{_pass_path(other_key, listed)}.type", folded)
            drop.add(k)
        ctx.note(f"{at}.metadata_only", "dropped: this build exports the model itself (the passes before it that "
                 "exported it are folded in)")  # fmt: skip
        out[i] = (key, {**builder, "type": flat.get("type", "ModelBuilder")})
    return [item for k, item in enumerate(out) if k not in drop]


# The options olive-ai 0.13's passes that olive-ext runs natively search over their own values when a search is on
# and the config leaves them unset (their search_defaults). Read from olive-ai once, here: reading them at run time
# imports every pass module (5.5 s); tests/test_olive_translate.py checks this table against olive-ai's passes.
OLIVE_SEARCH_DEFAULTS: dict[str, tuple[str, ...]] = {
    "lora": ("r",),
    "qlora": ("r",),
    "dora": ("r",),
    "modelbuilder": ("int4_block_size", "int4_is_symmetric", "int4_algo_config"),
    "onnxdynamicquantization": ("precision", "per_channel", "reduce_range", "quant_preprocess"),
    "onnxstaticquantization": ("precision", "per_channel", "reduce_range", "quant_preprocess", "calibrate_method",
                               "quant_format", "activation_type"),
}  # fmt: skip


def _search_values(config_class: Any, key: str) -> list[Any] | None:
    """The values a searchable option of one of our passes takes (a bool's two, a Literal's choices), or None."""
    field = config_class.model_fields.get(key)
    if field is None or key not in config_class.searchable_fields():
        return None
    return [False, True] if field.annotation in (bool, bool | None) else literal_choices(field.annotation)


def _native(
    native: tuple[str, str],
    spec: dict[str, Any],
    step: str,
    path: str,
    at: str,
    reasons: list[str],
    ctx: TranslationContext,
) -> dict[str, Any] | None:
    """Our own pass for an Olive type when it honours every option given.

    Otherwise Olive's own pass runs the step (None is returned) where olive-ai has it; where it cannot (not
    installed, or Olive's pass does not work here) the options our pass lacks are named: errors of category
    "unhonoured", which --lenient drops. An empty dict: the step is refused (its problems are recorded).
    """
    canonical, ours = native
    for key, (why, instead) in _REFUSED_OPTIONS.get(canonical.lower(), {}).items():
        if spec.get(key):  # the step cannot be what the config means: refused, and no follow-on errors after it
            ctx.error(f"{at}.{key}", why, hint=instead)
            return {}
    cls = get_pass(ours)
    assert cls is not None
    params, keymap, dropped = _from_olive(cls, canonical, spec)
    for key, value in list(params.items()):
        if value == "SEARCHABLE_VALUES":  # Olive 0.13's keyword: search the option over its values
            where = f"{at}.{keymap.get(key, key)}"
            values = _search_values(cls.config_class, key)
            if values is None:  # "Input should be a valid boolean" before, with nothing said of the keyword
                params.pop(key)
                if key in cls.config_class.searchable_fields():
                    ctx.error(where, "SEARCHABLE_VALUES: olive-ext does not know the values to search for this "
                              "option", hint=f"write the values to try as a list: {keymap.get(key, key)}: [A, B]")
                else:
                    ctx.error(where, "SEARCHABLE_VALUES: olive-ext does not search this option", hint="give one value")
            else:
                params[key] = values
                ctx.note(where, f"SEARCHABLE_VALUES: searched over {values}")
    if ctx.searching and (unset := [k for k in OLIVE_SEARCH_DEFAULTS.get(canonical.lower(), ()) if k not in spec]):
        # Olive searches them over its own values; olive-ext built one candidate of the defaults, without a word
        ctx.note(at, f"with a search on, Olive also tries {', '.join(unset)} over their search defaults; olive-ext "
                 "takes the default of an option left unset (write it as a list to search it)")  # fmt: skip
    extra = params.get("extra_options")
    if canonical.lower() == "modelbuilder" and isinstance(extra, dict):  # Olive hands them on; the builder ignores
        for key in unread_extra_options(extra):  # a key it never reads: unhonoured (--lenient drops it, as Olive's
            del extra[key]  # builder would, said in the report)
            ctx.unhonoured(f"{at}.extra_options.{key}", UNREAD_OPTION + did_you_mean_option(key), "remove it")
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
        elif reason.endswith(".task") and canonical.lower() == "modelbuilder":
            ctx.note(reason, "ModelBuilder (Olive's too) builds the architecture the checkpoint's config.json names; "
                     "the task is not read")  # fmt: skip
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
    same = _SAME_AS_OURS.get(canonical.lower(), {})
    spec = {k: v for k, v in spec.items() if not (k in same and v in same[k])}  # asks for what ours does anyway
    params = cls.from_olive(dict(spec))
    keymap: dict[str, str] = {}
    dropped = []
    for key, value in spec.items():
        try:
            alone = cls.from_olive({key: value})
        except Exception:  # a pass's translation of one key alone may need the others: leave it unmapped
            continue
        if not alone:
            dropped.append(key)
        for ours in alone:
            if ours != key and ours not in spec:  # a key the user also wrote keeps its own name
                keymap.setdefault(ours, key)
    return params, keymap, dropped


def _olive_version() -> str:
    try:
        return olive_catalog.olive_ai_version() or "(unknown version)"
    except Exception:
        return "(unknown version)"


def _closest_passes(olive_type: str) -> str:
    """A hint naming the known pass types (ours and olive-ai's) closest to an unknown one."""
    try:
        names = {entry.name for entry in olive_catalog.catalog().values()}
    except Exception:  # the catalog reads olive-ai's own list: without olive-ai it has none
        names = set()
    names |= set(olive_pass_names())
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(olive_type.lower(), list(by_lower), n=3, cutoff=0.5)
    if close:
        return "closest known pass types: " + ", ".join(by_lower[c] for c in close)
    return "see `olive-ext validate --list-passes`"


AZUREML_NEEDS = "Azure ML (the azure-ai-ml SDK, an Azure subscription and its workspace or registry)"


def _names_user_code(raw: Any) -> bool:
    """Whether an Olive config names a user script anywhere (input model, data configs, metrics, passes)."""
    if isinstance(raw, dict):
        return any(k in _USER_CODE_KEYS or _names_user_code(v) for k, v in raw.items())
    if isinstance(raw, list):
        return any(_names_user_code(v) for v in raw)
    return False


_USER_CODE_KEYS = frozenset({"user_script", "model_script", "script_dir"})


def _refuse_azureml_assets(raw: Any, ctx: TranslationContext, at: str = "") -> None:
    """Each Azure ML asset the config reads (``{type: azureml_model | azureml_registry_model | azureml_datastore
    ...}``) is a named refusal: olive-ext reads files from this machine and the local Hugging Face cache."""
    if isinstance(raw, dict):
        if at and is_azureml_asset(raw):
            kind = raw["type"]
            inner = raw.get("config")
            fields = {**raw, **(inner if isinstance(inner, dict) else {})}
            name = fields.get("name") or fields.get("relative_path") or fields.get("datastore_name")
            ctx.error(at, f"{kind} {name!r} is read from {AZUREML_NEEDS}; olive-ext reads models and data from "
                      "this machine and the local Hugging Face cache", category="sdk",
                      hint="download it first (az ml model download / az storage) and give its local path")  # fmt: skip
            return
        for key, value in raw.items():
            if key != "azureml_client":
                _refuse_azureml_assets(value, ctx, f"{at}.{key}" if at else str(key))
    elif isinstance(raw, list):
        for i, value in enumerate(raw):
            _refuse_azureml_assets(value, ctx, f"{at}[{i}]")


def _olive_entry(olive_type: str) -> Any:
    try:
        return olive_catalog.lookup(olive_type)
    except Exception:  # the catalog reads olive-ai's own list: without olive-ai it has none
        return None


def _through_olive(
    olive_type: str, spec: dict[str, Any], step: str, path: str, at: str, native: Any, ctx: TranslationContext
) -> dict[str, Any] | None:
    """The ``olive`` step running Olive's own pass class, or a named refusal."""
    if not olive_ai_installed():
        ctx.error(
            f"{at}.type", f"Olive pass {olive_type} runs through olive-ai, which is not installed", hint=OLIVE_INSTALL
        )
        return None
    entry = _olive_entry(olive_type)
    hardware = next((v for prefix, v in _HARDWARE_TYPES.items() if olive_type.lower().startswith(prefix)), None)
    if entry is None and hardware is not None:
        ctx.error(f"{at}.type", f"Olive pass {olive_type} needs {hardware[0]}", category=hardware[1])
        return None
    if entry is None:  # olive-ai itself has no such pass: Olive refuses the config too
        ctx.error(f"{at}.type", f"Olive pass type {olive_type!r} is not a pass of olive-ai {_olive_version()} or "
                  "olive-ext (older Olive releases had passes that are gone now)", value=olive_type, has_value=True,
                  hint=_closest_passes(olive_type), category="olive_refuses")  # fmt: skip
        return None
    if entry.needs:
        category = olive_catalog.needs_category(entry.needs)
        ctx.error(f"{at}.type", f"Olive pass {entry.name} {entry.needs}", category=category)
        return None
    config = dict(spec)
    for key, value in spec.items():  # data configs by name: Olive's pass gets the config itself
        if key.endswith("data_config") and isinstance(value, str) and value in ctx.olive_data:
            config[key] = ctx.olive_data[value]
            refuse_empty_olive_split(value, ctx)
    if isinstance(config.get("user_script"), str):  # the pass's hooks (example_input_func, transform_fn, ...)
        located = located_script(config, at, ctx)
        if located is None:
            return None
        config = located
    ctx.paths[f"passes.{step}.config"] = at
    ctx.paths[f"passes.{step}.olive_type"] = f"{path}.type"
    step_spec: dict[str, Any] = {"type": "olive", "olive_type": entry.name, "config": config}
    if ctx.olive_accelerator and ctx.olive_accelerator != ("cpu", "CPUExecutionProvider"):
        step_spec["device"], step_spec["execution_provider"] = ctx.olive_accelerator
    return step_spec
