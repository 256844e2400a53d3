"""export: a fine-tuned (or any local Llama, Mistral or Qwen2 HF) model written for another runtime (GGUF for
llama.cpp), or its adapter merged into the base as a Hugging Face model (LLaMA-Factory's `export`).

>>> import olive_ext
>>> out = olive_ext.export("out/ft", output_path="out/gguf", quant="Q4_K_M")  # doctest: +SKIP
>>> olive_ext.package(out.output_dir, "bundles/tone-gguf")  # doctest: +SKIP

The output folder is like every olive-ext output (``model/`` plus ``model_config.json``), so
``package`` turns it into a bundle with an Ollama Modelfile and ``chat``/``auto-opt`` read it.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from olive_ext.artifacts import Artifact, article
from olive_ext.data import smoke_prompts
from olive_ext.data.spec import DatasetSpec
from olive_ext.deploy.bundle import chat_template_text
from olive_ext.deploy.manifest import text_sha256
from olive_ext.engine.output import staged_output
from olive_ext.engine.preflight import check_before_work
from olive_ext.engine.results import OutputFolder
from olive_ext.engine.runner import BNB_DEQUANTIZE, implicit_conversion
from olive_ext.errors import MissingDependencyError, UserInputError
from olive_ext.evaluate.backends.llama_cpp import gguf_in
from olive_ext.models.folder import resolve_model_arg, write_model_config
from olive_ext.models.gguf_header import quantized_file_type
from olive_ext.models.hub import hub_model_folder
from olive_ext.onnx.runtime import LLAMACPP_INSTALL, llama_cpp_available
from olive_ext.options import Options, field_of, validate_options, with_options_signature
from olive_ext.passes.dequantize_hf import dequantize_folder
from olive_ext.passes.gguf_export import (
    EXPORT_HINT,
    GgufExport,
    GgufExportConfig,
    GgufQuantName,
    export_gguf,
    source_problem,
)
from olive_ext.passes.gguf_to_hf import convert_gguf
from olive_ext.passes.merge_adapter import merge_adapter_into
from olive_ext.quiet import api_call
from olive_ext.recipe.llama_factory import (
    is_llama_factory_config,
    is_llama_factory_export,
    llama_factory_export_options,
    llama_factory_problem,
)
from olive_ext.recipe.load import read_recipe_file
from olive_ext.workflows.run import in_chat_form

logger = logging.getLogger("olive_ext")


class ExportOptions(Options):
    """Everything `olive-ext export` takes."""

    model_name_or_path: str = Field(
        description="`finetune` output folder or local Hugging Face Llama, Mistral or Qwen2 folder"
    )
    output_path: str = Field(description="output folder; an existing non-empty folder is kept unless overwrite")
    adapter_path: str | None = Field(None, description="peft adapter folder to merge in first")
    format: Literal["gguf", "hf"] | None = Field(
        None,
        description="what to write: gguf (llama.cpp, Ollama), or hf (the adapter merged into its base, as "
        "safetensors: LLaMA-Factory's `export`); unset: gguf, and hf for a LLaMA-Factory export YAML",
    )
    quant: GgufQuantName = field_of(GgufExportConfig, "quant")
    trust_remote_code: bool = Field(False, description="allow model code from the hub")
    overwrite: bool = Field(False, description="replace an existing output folder")


@dataclass
class ExportResult(OutputFolder):
    """The written output folder and its model file."""

    output_dir: Path
    model_file: Path
    info: dict[str, Any]


def run_export(opts: ExportOptions) -> ExportResult:
    """Write the export the options describe; every input is checked before any work."""
    out = Path(opts.output_path)
    # the checks the other commands make (quantized and pickled weights, hub models offline, the output apart)
    check_before_work(model=opts.model_name_or_path, cache_dir=None, output=out, overwrite=opts.overwrite)
    if opts.format == "hf":
        if "quant" in opts.model_fields_set:  # it was ignored: the merged model came out unquantized
            raise UserInputError(f"--quant {opts.quant} is for --format gguf: --format hf writes the merged model "
                                 "unquantized, as safetensors",
                                 hint="leave out --quant, or pass --format gguf")  # fmt: skip
        return _export_merged(opts, out)
    if not llama_cpp_available():
        raise MissingDependencyError("llama-cpp-python", "export --format gguf", LLAMACPP_INSTALL)
    source = resolve_model_arg(opts.model_name_or_path, opts.adapter_path)
    source = hub_model_folder(source)  # "it is not a local Hugging Face folder" before
    if source.kind not in ("hf", "gguf"):
        raise UserInputError(
            f"{opts.model_name_or_path} holds {article(source.kind)} {source.kind} model; export writes GGUF from a "
            "Hugging Face model or from another GGUF",
            hint="give the `finetune` output folder (or its base model and --adapter_path)",
        )
    problem = (GgufExport.check_input(source) if source.kind == "hf" else None) or source_problem(source)
    if problem:  # a GGUF input's architecture before it is dequantized ("quantized again" was warned first)
        raise UserInputError(f"cannot export {opts.model_name_or_path}: {problem}", hint=EXPORT_HINT)
    with staged_output(out, opts.overwrite) as stage, tempfile.TemporaryDirectory(prefix="olive-ext-") as tmp:
        if source.kind == "gguf":  # a downloaded GGUF in another quant type: dequantized (gguf_to_hf), requantized
            # an export output's folder names no file ("does not appear to have a file named ." before): its .gguf
            found = gguf_in(Path(source.path))
            gguf_file = source.gguf_file or (found.name if found else "")
            quantized = quantized_file_type(Path(source.path) / gguf_file) if gguf_file else None
            if quantized:  # llama.cpp's own quantizer refuses this without --allow-requantize
                logger.warning("%s is quantized already (%s): it is dequantized and quantized again to %s, which "
                               "adds a second rounding; export from the Hugging Face model instead when you have "
                               "it", gguf_file, quantized, opts.quant)  # fmt: skip
            convert_gguf(Path(source.path), gguf_file, Path(tmp) / "model")
            source = Artifact("hf", str(Path(tmp) / "model"), source.adapter_path, meta=source.meta)
            problem = GgufExport.check_input(source)
            if problem:
                raise UserInputError(f"cannot export {opts.model_name_or_path}: {problem}")
        elif implicit_conversion(source) == BNB_DEQUANTIZE:  # a bitsandbytes base: llama.cpp reads plain tensors
            dequantize_folder(Path(source.path), Path(tmp) / "model", opts.trust_remote_code)
            source = Artifact("hf", str(Path(tmp) / "model"), source.adapter_path, meta=source.meta)
        export_gguf(source, stage / "model", opts.quant, opts.trust_remote_code)
        info = _model_config(source.meta, source.adapter_path, stage / "model", opts.quant)
        write_model_config(stage, info)
    model_file = gguf_in(out / "model")
    assert model_file is not None
    return ExportResult(out, model_file, info)


def _export_merged(opts: ExportOptions, out: Path) -> ExportResult:
    """--format hf: the adapter merged into its Hugging Face base, saved as safetensors with the fine-tune's
    tokenizer and chat template (what LLaMA-Factory's `export` writes)."""
    source = hub_model_folder(resolve_model_arg(opts.model_name_or_path, opts.adapter_path))
    if source.kind != "hf" or not source.adapter_path:
        what = f"{article(source.kind)} {source.kind} model" if source.kind != "hf" else "no adapter"
        raise UserInputError(
            f"--format hf merges an adapter into its Hugging Face base, and {opts.model_name_or_path} holds {what}",
            hint="give the `finetune` output folder, or the base model with --adapter_path",
        )
    with staged_output(out, opts.overwrite) as stage, tempfile.TemporaryDirectory(prefix="olive-ext-") as tmp:
        base = source.path
        if implicit_conversion(source) == BNB_DEQUANTIZE:  # a QLoRA's 4-bit base: merged into plain weights
            dequantize_folder(Path(source.path), Path(tmp) / "model", opts.trust_remote_code)
            base = str(Path(tmp) / "model")
        merge_adapter_into(base, source.adapter_path, stage / "model", "auto", opts.trust_remote_code)
        info = {**_model_config(source.meta, source.adapter_path, stage / "model"), "kind": "hf", "model": "model",
                "merged_adapter": str(Path(source.adapter_path).resolve())}  # fmt: skip
        write_model_config(stage, info)
    return ExportResult(out, out / "model", info)


def _model_config(
    meta: dict[str, Any], adapter_path: str | None, model: Path, quant: str | None = None
) -> dict[str, Any]:
    """model_config.json of the export: a GGUF for llama.cpp (``quant``), or the merged Hugging Face model, with
    what package needs from the fine-tune."""
    info: dict[str, Any] = (
        {"kind": "gguf", "model": "model", "runtime": "llama.cpp", "quant": quant, "precision": quant} if quant else {}
    )
    template = chat_template_text(Path(adapter_path)) if adapter_path else None
    if template:  # the template used in fine-tuning: verify checks the bundle ships the same one
        info["finetune_chat_template_sha256"] = text_sha256(template)
    spec = meta.get("eval_data")
    if isinstance(spec, dict):
        info["eval_data"] = spec
        from transformers import AutoTokenizer  # with an eval split only

        tokenizer = functools.cache(lambda: AutoTokenizer.from_pretrained(model))  # loaded once, when asked
        prompts = _smoke_prompts(spec, tokenizer)
        if prompts:
            info["smoke_prompts"] = prompts
        text_template = spec.get("text_template")
        # fine-tuned on prompts of another form than the chat template: chat and serve say so (as for auto-opt's)
        if adapter_path and isinstance(text_template, str) and not _in_chat_form(text_template, tokenizer):
            info["text_template"] = text_template
    return info


def _in_chat_form(template: str, tokenizer: Callable[[], Any]) -> bool:
    try:
        return in_chat_form(template, tokenizer())
    except Exception:  # an unreadable tokenizer: chat says what it needs itself
        return True


def _smoke_prompts(spec: dict[str, Any], tokenizer: Callable[[], Any]) -> list[str]:
    """Up to three prompts of the fine-tune's eval split (for verify's smoke generation); none when unreadable."""
    try:
        return smoke_prompts(DatasetSpec.model_validate(spec), tokenizer)
    except Exception:  # smoke prompts are a nicety: verify falls back to a greeting
        return []


def llama_factory_export_values(path: str | Path) -> tuple[dict[str, Any], list[str]]:
    """The :class:`ExportOptions` values of a LLaMA-Factory export config (what `llamafactory-cli export FILE`
    runs: the adapter merged into its base as a Hugging Face model), and notes on keys whose effect differs here."""
    raw = read_recipe_file(path)
    if is_llama_factory_config(raw):
        problem = llama_factory_problem(raw, Path(path).parent)
        raise UserInputError(f"{path}: a LLaMA-Factory training config, not an export config", hint=problem.hint)
    if not is_llama_factory_export(raw):
        missing = ", ".join(k for k in ("model_name_or_path", "export_dir") if k not in raw)
        raise UserInputError(f"{path} is not a LLaMA-Factory export config: it has no {missing}",
                             hint="export takes -m MODEL -o OUTPUT, or a LLaMA-Factory export YAML "
                             "(model_name_or_path, adapter_name_or_path, export_dir)")  # fmt: skip
    values, notes = llama_factory_export_options(raw, str(path))
    base = Path(path).parent  # LLaMA-Factory runs from where it is started; a path found only beside the YAML is used
    for key in ("model_name_or_path", "adapter_path"):
        given = Path(values[key]).expanduser()
        if not given.is_absolute() and not given.exists() and (base / given).exists():
            values[key] = str(base / given)
    return values, notes


@api_call()
def export(model_name_or_path: str | Path, output_path: str | Path, **options: Any) -> ExportResult:
    """Write a model for another runtime (``olive-ext export``): today GGUF quantized by llama.cpp.

    ``options`` are :class:`ExportOptions` fields: ``format``, ``quant``, ``adapter_path``, ``overwrite``.
    """
    values = {"model_name_or_path": model_name_or_path, "output_path": output_path, **options}
    return run_export(validate_options(ExportOptions, values))


with_options_signature(export, ExportOptions)
