"""quantize: one model to int4/int8, HF LLMs through the genai builder, ONNX models with onnxruntime.

>>> import olive_ext
>>> result = olive_ext.quantize("out/ft/model", output_path="out/int4", precision="int4")  # doctest: +SKIP
>>> result.model_path  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from olive_ext.artifacts import Artifact, article
from olive_ext.data.spec import DataOptions
from olive_ext.engine.output import check_apart, ensure_output_free
from olive_ext.engine.results import RunResult
from olive_ext.errors import UserInputError
from olive_ext.models.folder import (
    COMPOSITE_HINT,
    absolute_if_local,
    check_head_kept,
    config_json,
    model_task,
    resolve_model_arg,
)
from olive_ext.models.gguf_header import GGUFLayoutError, quantized_file_type
from olive_ext.onnx.folder import model_file
from olive_ext.onnx.genai_builder import check_buildable
from olive_ext.options import validate_options, with_options_signature
from olive_ext.progress import Progress, progress_or_quiet
from olive_ext.quiet import api_call
from olive_ext.recipe import parse_recipe
from olive_ext.recipe.schema import Recipe
from olive_ext.targets.base import PROVIDERS, normalize_provider
from olive_ext.workflows.run import run_recipe

logger = logging.getLogger("olive_ext")

# --algorithm names (Olive's) -> our pass's names
ALGORITHMS = {"rtn": "rtn", "kquant": "k_quant", "hqq": "hqq"}


class QuantizeOptions(DataOptions):
    """Everything `olive-ext quantize` takes; flag names are Olive's."""

    model_name_or_path: str = Field(description="HF folder or hub id, .gguf, ONNX folder or file")
    output_path: str = Field(
        "quantized-model", description="output folder (Olive's default); an existing non-empty folder is kept "
        "unless overwrite"
    )
    adapter_path: str | None = Field(None, description="peft adapter to apply (merged before quantizing)")
    trust_remote_code: bool = Field(False, description="allow model code from the hub")
    algorithm: Literal["rtn", "kquant", "hqq"] | None = Field(
        None,
        description="weight rounding: rtn (round to nearest), kquant (llama.cpp k-quant), "
        "hqq (half-quadratic; its float zero points run slowly on the CPU EP). When not given: rtn for LLM "
        "builds and int4 ONNX models; int8 ONNX models get dynamic int8 (weights and activations) instead "
        "of a weight-only rounding",
    )
    precision: Literal["int4", "int8"] = Field("int4", description="weight precision")
    block_size: Literal[16, 32, 64, 128, 256] | None = Field(
        None, description="weights per quantization block (default: 32, as declared by the passes)"
    )
    accuracy_level: Literal[0, 1, 2, 3, 4] | None = Field(
        None, description="MatMulNBits compute type: 1 fp32, 2 fp16, 3 bf16, 4 int8 (default: 4 for LLM builds on "
        "CPU; unset (0) for ONNX inputs; none with hqq)"
    )
    use_qdq_encoding: bool = Field(
        False,
        description="QDQ nodes (DequantizeLinear + MatMul) instead of MatMulNBits; for int8 ONNX models: "
        "static QDQ quantization calibrated on the data",
    )
    lm_head: Literal["same", "int8", "float"] | None = Field(
        None, description="LM head precision: same as the body (default), int8 (LLM builds), or float (not quantized)"
    )
    provider: str = Field(
        "cpu", description="execution provider to build for: cpu, cuda, dml, webgpu; others are cross-builds"
    )
    parity: bool = Field(False, description="compare with the PyTorch source and fail beyond thresholds")
    split: str = Field("train", description="split of the calibration data")
    overwrite: bool = Field(False, description="replace an existing output folder")
    cache_dir: str | None = Field(
        None, description="cache of built models and evaluations (default: $OLIVE_EXT_CACHE or ~/.cache/olive-ext)"
    )


def quantize_passes(kind: str, task: str, opts: QuantizeOptions, has_data: bool) -> dict[str, dict[str, Any]]:
    """The recipe passes for this input kind and these flags."""
    algo = ALGORITHMS[opts.algorithm] if opts.algorithm else None
    passes: dict[str, dict[str, Any]] = {}
    llm = kind in ("hf", "gguf") and task == "text-generation"
    if llm and opts.use_qdq_encoding and opts.precision == "int8":
        raise UserInputError(
            "--precision int8 --use_qdq_encoding on an LLM: onnxruntime's weight-only quantizer writes QDQ for 4-bit "
            "weights only, and the genai builder writes MatMulNBits",
            hint="use --precision int4 --use_qdq_encoding (DequantizeLinear + MatMul), or --precision int8 without it",
        )
    if llm:
        # hqq, and the QDQ encoding (the genai builder writes MatMulNBits whatever use_qdq says), quantize the
        # fp32 build with onnxruntime's weight-only quantizer, as for an ONNX input
        if algo == "hqq" or opts.use_qdq_encoding:
            passes["build"] = {"type": "model_builder", "precision": "fp32"}
        else:
            build: dict[str, Any] = {"type": "model_builder", "precision": opts.precision, "algorithm": algo or "rtn"}
            if opts.block_size:
                build["block_size"] = opts.block_size
            if opts.accuracy_level is not None:
                build["accuracy_level"] = opts.accuracy_level
            if opts.lm_head:
                build["lm_head"] = opts.lm_head
            passes["build"] = build
            return passes
    elif kind in ("hf", "gguf"):
        passes["export"] = {"type": "onnx_export"}
    if opts.lm_head == "int8" and "build" not in passes:
        raise UserInputError("--lm_head int8 applies to LLM builds; for ONNX models use same or float")
    if algo == "hqq":  # both were recorded in model_config.json and not applied
        if opts.lm_head == "int8":
            raise UserInputError("--lm_head int8 with --algorithm hqq: onnxruntime's HQQ quantizer writes every "
                                 "MatMul (the head too) in 4 bits", hint="use --lm_head float or same")  # fmt: skip
        if opts.accuracy_level is not None:
            raise UserInputError("--accuracy_level with --algorithm hqq: onnxruntime's HQQ quantizer sets no "
                                 "accuracy level", hint="leave it out, or use --algorithm rtn or kquant")  # fmt: skip
    if opts.precision == "int8" and algo is None and not opts.block_size and not llm:
        if opts.use_qdq_encoding:
            if not has_data:
                raise UserInputError(
                    "--precision int8 --use_qdq_encoding quantizes statically and needs calibration data",
                    hint="add --data_files FILE (with --text_field or --text_template)",
                )
            passes["quantize"] = {"type": "qdq_static"}
        else:
            passes["quantize"] = {"type": "int8_dynamic"}
        if opts.accuracy_level is not None:  # the option of 4/8-bit weight blocks (MatMulNBits): ignored here before
            raise UserInputError("--accuracy_level applies to block-quantized weights (MatMulNBits); --precision "
                                 "int8 quantizes this model with onnxruntime's int8 quantizer, which has none",
                                 hint="leave it out, or add --algorithm rtn for 8-bit MatMulNBits")  # fmt: skip
        if opts.lm_head == "float" and passes["quantize"]["type"] == "qdq_static":
            raise UserInputError("--lm_head float with static QDQ (--use_qdq_encoding) is not supported",
                                 hint="leave --lm_head out, or drop --use_qdq_encoding (dynamic int8)")  # fmt: skip
        if opts.lm_head == "float":
            passes["quantize"]["lm_head"] = "float"
        return passes
    weight: dict[str, Any] = {"type": "int4_weight", "bits": 4 if opts.precision == "int4" else 8}
    # onnxruntime's default weight-only quantizer is block RTN (and the only one writing QDQ).
    onnx_algo = "default" if algo in (None, "rtn") else algo
    weight |= {"algorithm": onnx_algo, "quant_format": "qdq" if opts.use_qdq_encoding else "qoperator"}
    for key in ("block_size", "accuracy_level"):
        if getattr(opts, key) is not None:
            weight[key] = getattr(opts, key)
    if opts.lm_head == "float":
        weight["lm_head"] = "float"
    passes["quantize"] = weight
    return passes


_QUANTIZED_OPS = {"MatMulNBits": "int4/int8 weights (MatMulNBits)", "MatMulInteger": "int8 (dynamic)",
                  "DynamicQuantizeMatMul": "int8 (dynamic)", "QLinearMatMul": "int8 (static)",
                  "DequantizeLinear": "QDQ"}  # fmt: skip


def already_quantized(source: Artifact) -> str | None:
    """How an ONNX or genai input is quantized already (its graph's quantized MatMuls), or None.

    Quantizing it again did nothing and was recorded as the new precision: an int4 model "quantized to int8" kept its
    4-bit MatMulNBits while its model_config.json said int8."""
    if source.kind not in ("onnx", "genai"):
        return None
    import onnx

    try:
        graph = onnx.load(str(model_file(source)), load_external_data=False).graph
    except Exception:  # unreadable here: the build's own checks say why
        return None
    found = [_QUANTIZED_OPS[n.op_type] for n in graph.node if n.op_type in _QUANTIZED_OPS]
    return found[0] if found else None


def warn_requantized_gguf(source: Artifact) -> None:
    """Warn that a quantized GGUF (Q4_K_M...) is dequantized and quantized again (a second rounding), as export does;
    it went on without a word before, while a quantized ONNX input is refused."""
    if source.kind != "gguf" or not source.gguf_file:
        return
    try:
        quantized = quantized_file_type(Path(source.path) / source.gguf_file)
    except (GGUFLayoutError, OSError):  # not a readable GGUF: the checks before work name the file and the problem
        return
    if quantized:
        logger.warning("%s is quantized already (%s): transformers dequantizes it, and quantizing it again adds a "
                       "second rounding to the first; quantize the original F16/F32 weights (the Hugging Face model "
                       "or an F16/F32 GGUF) when you have them", source.gguf_file, quantized)  # fmt: skip


def quantize_recipe(opts: QuantizeOptions) -> Recipe:
    """The recipe these options mean for the model's kind and task."""
    source = resolve_model_arg(opts.model_name_or_path, opts.adapter_path)
    if source.kind not in ("hf", "gguf", "onnx", "genai"):  # "pass 'int4_weight' takes genai/onnx models, but
        raise UserInputError(  # input_model gives a composite model": passes the user never wrote
            f"{opts.model_name_or_path} is {article(source.kind)} {source.kind} model; quantize takes a Hugging Face "
            "model, a .gguf, or an ONNX or onnxruntime-genai model",
            hint=COMPOSITE_HINT if source.kind == "composite" else "quantize the model it was built from",
        )
    if opts.adapter_path and source.kind in ("onnx", "genai"):  # ignored before: the output was the base model
        raise UserInputError(
            f"-a {opts.adapter_path}: a peft adapter is merged into a Hugging Face or GGUF model before quantizing; "
            f"{opts.model_name_or_path} is {article(source.kind)} {source.kind} model, which cannot take one here",
            hint="quantize the Hugging Face model with -a (olive-ext quantize -m HF_MODEL -a ADAPTER), or build "
            "onnxruntime adapters for the ONNX model with `olive-ext generate-adapter`",
        )
    if (done := already_quantized(source)) is not None:
        raise UserInputError(
            f"{opts.model_name_or_path} is quantized already ({done}): quantizing it again would not change it",
            hint="quantize its source model (the Hugging Face folder, or the fp32 ONNX model) instead",
        )
    warn_requantized_gguf(source)
    task = model_task(source)
    check_head_kept(source, opts.model_name_or_path, None)
    if opts.parity and source.kind in ("onnx", "genai"):  # found by the parity step after the quantization before
        raise UserInputError(
            "--parity compares a build with the PyTorch model it came from, and an ONNX input has none here",
            hint="quantize the Hugging Face model itself with --parity (-m its folder), or leave --parity out",
        )
    data = opts.to_spec(opts.split)
    passes = quantize_passes(source.kind, task, opts, data is not None)
    if source.kind == "hf" and any(p["type"] == "model_builder" for p in passes.values()):
        check_buildable(config_json(source.path), opts.model_name_or_path, source.path)
    if data is not None and not opts.parity and not any(p["type"] == "qdq_static" for p in passes.values()):
        what = " then ".join(f"{p['type']} ({p.get('precision') or p.get('bits', '')})" for p in passes.values())
        logger.warning("the data flags are not used: %s calibrates on nothing (static QDQ, --precision int8 "
                       "--use_qdq_encoding, calibrates on the rows; --parity checks on their prompts)",
                       what)  # fmt: skip
        data = None
    if opts.parity:
        passes["parity"] = {"type": "parity_check"}
    provider = normalize_provider(opts.provider)
    device = next((d for d, providers in PROVIDERS.items() if provider in providers), None)
    if device is None:  # "provider 'tpu' does not run on device 'cpu'" named a device the user never gave
        known = sorted({p for providers in PROVIDERS.values() for p in providers})
        raise UserInputError(f"--provider {opts.provider!r} is not an execution provider olive-ext builds for",
                             hint=f"use cpu, cuda, dml, webgpu, or one of {', '.join(known)}")  # fmt: skip
    raw: dict[str, Any] = {
        "input_model": {
            # absolute: model_config.json and recipe.yaml record them, valid from any folder
            "path": absolute_if_local(source.path), "kind": source.kind,
            "adapter_path": absolute_if_local(source.adapter_path) if source.adapter_path else None,
            "gguf_file": source.gguf_file, "task": task, "trust_remote_code": opts.trust_remote_code,
        },
        "data": {"calibration": data.model_dump(mode="json", exclude_none=True)} if data is not None else {},
        "passes": passes,
        "targets": [{"device": device, "provider": provider}],
        "output": {"path": opts.output_path, "overwrite": opts.overwrite},
        "cache_dir": opts.cache_dir,
    }  # fmt: skip
    return parse_recipe(raw)


def plan_quantize(opts: QuantizeOptions) -> Recipe:
    """The recipe, after the checks on the output folder (``--dry_run`` prints it)."""
    check_apart(opts.model_name_or_path, opts.output_path)  # the specific refusal first: it would delete the input
    ensure_output_free(opts.output_path, opts.overwrite)
    return quantize_recipe(opts)


def run_quantize(opts: QuantizeOptions, progress: Progress | None = None) -> RunResult:
    """Quantize as the options say and write the output folder."""
    return run_recipe(plan_quantize(opts), progress=progress)


@api_call()
def quantize(
    model_name_or_path: str | Path, output_path: str | Path, *, progress: Progress | None = None, **options: Any
) -> RunResult:
    """Quantize one model (``olive-ext quantize``); ``options`` are :class:`QuantizeOptions` fields."""
    values = {"model_name_or_path": model_name_or_path, "output_path": output_path, **options}
    return run_quantize(validate_options(QuantizeOptions, values), progress_or_quiet(progress))


with_options_signature(quantize, QuantizeOptions)
