"""`olive-ext optimize`: Olive's ``optimize`` command (which replaced its ``auto-opt``), measured.

Olive's ``optimize`` builds one pipeline chosen from the precision and execution provider it is given. Here the
same flags build every olive-ext candidate of that precision for that provider (int4: block sizes, k-quant, GPTQ,
RTN), measure them and keep the best, as :mod:`olive_ext.workflows.auto_opt` does, writing ONNX models only
(llama.cpp candidates are an auto-opt choice). Olive's own knobs narrow the candidates: ``block_size`` fixes every
quantizer's block, ``extra_mb_options`` go to every model-builder build, ``use_qdq_format`` asks for QDQ weights,
``exporter`` is checked against the model. Defaults are Olive's: fp32, the CPU, ``optimized-model``.

    >>> import olive_ext
    >>> best = olive_ext.optimize("out/ft", output_path="out/int4", precision="int4")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from olive_ext.errors import UserInputError
from olive_ext.models.folder import model_task, resolve_model_arg
from olive_ext.options import validate_options, with_options_signature
from olive_ext.passes.model_builder import ModelBuilder, ModelBuilderConfig
from olive_ext.passes.weight_quant import BlockSize
from olive_ext.progress import Progress, progress_or_quiet
from olive_ext.quiet import api_call
from olive_ext.targets.base import PROVIDERS, Device, normalize_provider
from olive_ext.workflows.auto_opt import AutoOptOptions, AutoOptResult, PipelineShaper, run_auto_opt

# Olive's optimize precisions olive-ext does not build -> what to ask for instead
OLIVE_ONLY_PRECISIONS = {
    "uint4": "int4: its candidates include olive-ai's asymmetric RTN (Olive's uint4 is asymmetric GPTQ)",
    "bf16": "fp16 (GPU) or fp32: the genai builds here are fp32, fp16, int8 and int4",
    "int16": "int8, or `auto-opt --device npu` for QDQ encoders with 16-bit activations",
    "uint16": "int8, or `auto-opt --device npu` for QDQ encoders with 16-bit activations",
    "uint8": "int8, or `auto-opt --device npu` for QDQ encoders with 8-bit activations",
    "int32": "fp32 (no 32-bit integer quantization is built)",
    "uint32": "fp32 (no 32-bit integer quantization is built)",
}
BUILDER_BLOCK_SIZES: tuple[int, ...] = get_args(BlockSize)  # the builds' block sizes (Olive rounds to these silently)
# Olive's exporter -> the onnx_export pass's exporter for encoders (LLMs take model_builder only)
ENCODER_EXPORTERS = {"dynamo_exporter": "dynamo", "torchscript_exporter": "torchscript"}
# Olive's optimize providers olive-ext does not build for -> what to do instead
OLIVE_ONLY_PROVIDERS = {
    "NvTensorRTRTXExecutionProvider": "TensorRT-RTX builds need NVIDIA's SDK and GPU; give --provider "
    "CUDAExecutionProvider for a CUDA build",
    "OpenVINOExecutionProvider": "OpenVINO builds are a recipe step here: write a recipe with an openvino_convert "
    "pass (or run an Olive config with OpenVINOOptimumConversion) and `olive-ext run --config`",
}
QUANT_PARAMS = ("block_size", "accuracy_level", "symmetric", "algorithm", "nodes_to_exclude")
OLIVE_PRECISIONS = ("int4", "int8", "int16", "int32", "uint4", "uint8", "uint16", "uint32", "fp16", "fp32", "bf16")


class OptimizeOptions(AutoOptOptions):
    """Everything `olive-ext optimize` takes: auto-opt's options with Olive's optimize defaults and knobs."""

    output_path: str = Field(
        "optimized-model", description="output folder (Olive's default); an existing non-empty folder is kept "
        "unless overwrite"
    )  # fmt: skip
    device: list[Device] = Field(  # empty until given: then read from the provider
        default_factory=list, description="target device (default: the provider's, else cpu)"
    )
    precision: Literal["fp32", "fp16", "int8", "int4"] = Field(
        "fp32", description="the precision to build (Olive's default fp32); its candidates are measured"
    )
    gguf: bool = Field(False, description="also try llama.cpp GGUF candidates (Olive's optimize writes ONNX only)")
    exporter: Literal["model_builder", "dynamo_exporter", "torchscript_exporter", "optimum_exporter"] | None = Field(
        None, description="model_builder for LLMs (the default), dynamo_exporter or torchscript_exporter for encoders"
    )
    block_size: int | None = Field(
        None, description=f"int4/int8 quantization block size: one of {', '.join(map(str, BUILDER_BLOCK_SIZES))}"
    )
    extra_mb_options: dict[str, str | int | bool] = Field(
        default_factory=dict,
        description="extra model builder options, as Olive writes them: 'int4_is_symmetric=true,int4_accuracy_level=4'",
    )
    use_qdq_format: bool = Field(False, description="QDQ weights (DequantizeLinear + MatMul) instead of MatMulNBits")
    modality: Literal["text"] = Field("text", description="accepted for Olive: text is the only modality")

    @field_validator("precision", mode="before")
    @classmethod
    def _olive_only_precision(cls, value: Any) -> Any:
        if value in OLIVE_ONLY_PRECISIONS:
            raise ValueError(f"olive-ext does not build {value}; ask for {OLIVE_ONLY_PRECISIONS[value]}")
        return value

    @field_validator("gguf")
    @classmethod
    def _gguf_precisions(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("precision") not in ("int4", "int8"):
            raise ValueError(f"llama.cpp candidates are int4 and int8 (Q4_0, Q4_K_M, Q8_0): give --precision int4 or "
                             f"int8, or drop --gguf (here {info.data.get('precision')})")  # fmt: skip
        return value

    @field_validator("block_size")
    @classmethod
    def _builder_block_size(cls, value: int | None, info: ValidationInfo) -> int | None:
        sizes = ", ".join(map(str, BUILDER_BLOCK_SIZES))
        if value == -1:
            raise ValueError(f"per-channel (-1) is not built; give a block size: {sizes}")
        if value is not None and value not in BUILDER_BLOCK_SIZES:
            raise ValueError(f"one of {sizes} (Olive rounds {value} to the closest without saying so)")
        if value is not None and info.data.get("precision") not in ("int4", "int8"):
            raise ValueError(f"a block size quantizes weights: give --precision int4 or int8 (not "
                             f"{info.data.get('precision')})")  # fmt: skip
        return value

    @field_validator("extra_mb_options", mode="before")
    @classmethod
    def _key_values(cls, value: Any) -> Any:
        """Olive's text form ``key=value,key=value`` (as its --extra_mb_options takes it) -> a dict."""
        if not isinstance(value, str):
            return value
        pairs = [item.strip() for item in value.split(",") if item.strip()]
        if bad := [p for p in pairs if "=" not in p or not p.split("=", 1)[0].strip()]:
            raise ValueError(f"{bad[0]!r} is not key=value (write them as 'key=value,key=value')")
        parsed: dict[str, Any] = {}
        for key, text in ((k.strip(), v.strip()) for k, v in (p.split("=", 1) for p in pairs)):
            if key in parsed:
                raise ValueError(f"{key} given twice: give each option once")
            if not text:
                raise ValueError(f"{key}= has no value (write {key}=VALUE)")
            parsed[key] = _typed(text)
        return parsed

    @field_validator("extra_mb_options")
    @classmethod
    def _builder_accepts(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Checked as the model_builder pass will check them (keys the builder reads: it ignores others without a
        word), before any work; quantization keys only for a quantized precision, no second block size."""
        params = _as_builder(value)
        quant = sorted(k for k in params if k in QUANT_PARAMS)
        precision = info.data.get("precision", "fp32")
        if quant and precision not in ("int4", "int8"):
            raise ValueError(f"{', '.join(quant)} set{'s' if len(quant) == 1 else ''} quantization, and --precision is "
                             f"{precision}: give --precision int4 or int8, or drop them")  # fmt: skip
        given = info.data.get("block_size")
        if given is not None and params.get("block_size") not in (None, given):
            raise ValueError(f"a block size of {params['block_size']} here and --block_size {given}: give one")
        try:
            ModelBuilderConfig.model_validate({"precision": info.data.get("precision", "fp32"), **_as_builder(value)})
        except ValidationError as e:  # its first message
            loc = ".".join(map(str, e.errors()[0]["loc"]))
            msg = str(e.errors()[0]["msg"]).removeprefix("Value error, ")
            raise ValueError(f"{loc + ': ' if loc else ''}{msg}") from None
        return value

    @field_validator("use_qdq_format")
    @classmethod
    def _qdq_is_int4(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("precision") != "int4":
            raise ValueError(f"QDQ weights are built for int4 (the model builder's use_qdq): give --precision int4 "
                             f"(here {info.data.get('precision')})")  # fmt: skip
        return value

    @model_validator(mode="before")
    @classmethod
    def _device_of_provider(cls, data: Any) -> Any:
        """Olive's optimize reads the device from the provider when no device is given."""
        if isinstance(data, dict) and not data.get("device"):  # an unknown provider: said by _known_provider
            provider = normalize_provider(str(data["provider"])) if data.get("provider") else None
            data = {**data, "device": [next((d for d, names in PROVIDERS.items() if provider in names), "cpu")]}
        return data

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str | None) -> str | None:
        """Olive's optimize providers: those olive-ext builds for, else what to do instead."""
        if value is None:
            return value
        provider = normalize_provider(value)
        known = [p for names in PROVIDERS.values() for p in names]
        if provider in OLIVE_ONLY_PROVIDERS:
            raise ValueError(OLIVE_ONLY_PROVIDERS[provider])
        if provider not in known:
            raise ValueError(f"not an execution provider olive-ext builds for (one of {', '.join(known)})")
        return value

    def builder_params(self) -> dict[str, Any]:
        """``extra_mb_options`` as model_builder parameters (see _as_builder)."""
        return _as_builder(self.extra_mb_options)


def _as_builder(extra: dict[str, Any]) -> dict[str, Any]:
    """Builder extra options as model_builder parameters: those the pass has fields for (int4_block_size,
    int4_is_symmetric, int4_algo_config...) lifted onto them, as for an Olive config; the rest in extra_options."""
    # Olive's int4_op_types_to_quantize is the builder's op_types_to_quantize (the builder ignores the Olive name)
    extra = {("op_types_to_quantize" if k == "int4_op_types_to_quantize" else k): v for k, v in extra.items()}
    return ModelBuilder.from_olive({"extra_options": extra}) if extra else {}


def _typed(text: str) -> Any:
    """A key=value option's value as the builder's options parser reads it: true/false, integers, else text."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


def shaped_pipelines(opts: OptimizeOptions) -> PipelineShaper:
    """The function that narrows auto-opt's candidate pipelines to what ``opts`` asks (block size, builder
    options, QDQ, exporter), dropping those that became the same."""

    def shape(pipelines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for pipeline in pipelines:
            section = {name: dict(step) for name, step in pipeline.items()}
            if not all([_shape_step(step, opts) for step in section.values()]):
                continue
            key = json.dumps(section, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                out.append(section)
        return out

    return shape


def _shape_step(step: dict[str, Any], opts: OptimizeOptions) -> bool:
    """One pipeline step rewritten in place for ``opts``; False when the pipeline cannot be what ``opts`` asks."""
    kind = step.get("type")
    quantized = step.get("precision") in ("int4", "int8")
    params = opts.builder_params()
    block_size = opts.block_size or params.get("block_size")
    if kind == "model_builder":
        if opts.block_size is not None and quantized:
            step["block_size"] = opts.block_size
        if opts.use_qdq_format and quantized:
            if any(step.get(k) not in (None, False, "same") for k in ("lm_head", "mixed_layers_int8")):
                return False  # int8 layers beside QDQ int4 are not built: the candidates that can be QDQ are kept
            step["use_qdq"] = True
        extra = params.pop("extra_options", {})
        step.update(params)
        if extra:
            step["extra_options"] = {**step.get("extra_options", {}), **extra}
    elif kind == "olive" and "group_size" in step.get("config", {}):  # olive-ai's RTN/GPTQ quantize the weights the
        config = dict(step["config"])  # build then writes as they are: they follow the same block and symmetry
        if block_size is not None:
            config["group_size"] = block_size
        if "symmetric" in params:
            config["sym"] = params["symmetric"]
        step["config"] = config
    elif kind == "onnx_export" and opts.exporter in ENCODER_EXPORTERS:
        step["exporter"] = ENCODER_EXPORTERS[opts.exporter]
    return True


def check_model_options(opts: OptimizeOptions) -> None:
    """``exporter`` names the way olive-ext converts this model, and ``use_qdq_format`` is for an LLM; else refused,
    naming what olive-ext does for this model."""
    task = model_task(resolve_model_arg(opts.model_name_or_path, opts.adapter_path))
    if opts.exporter == "optimum_exporter":
        raise UserInputError("--exporter optimum_exporter: optimum is not used (optimum-onnx needs transformers < "
                             "4.58)", hint="drop --exporter: LLMs go through the onnxruntime-genai model builder, "
                             "encoders through torch.onnx")  # fmt: skip
    if task == "text-generation" and opts.exporter not in (None, "model_builder"):
        raise UserInputError(f"--exporter {opts.exporter}: olive-ext builds language models with the onnxruntime-genai "
                             "model builder (a torch.onnx export of a transformers 5 LLM is not a genai model)",
                             hint="drop --exporter or give --exporter model_builder")  # fmt: skip
    if task != "text-generation" and opts.exporter == "model_builder":
        raise UserInputError(
            f"--exporter model_builder builds language models; {opts.model_name_or_path} is a {task} model",
            hint="drop --exporter, or give dynamo_exporter or torchscript_exporter",
        )
    knobs = [f for f, given in (("--block_size", opts.block_size is not None),
                                 ("--extra_mb_options", bool(opts.extra_mb_options))) if given]  # fmt: skip
    if knobs and task != "text-generation":
        raise UserInputError(f"{', '.join(knobs)}: model-builder options, and {opts.model_name_or_path} is a {task} "
                             "model (exported with torch.onnx, then int8 by onnxruntime)",
                             hint=f"drop {', '.join(knobs)}")  # fmt: skip
    if opts.use_qdq_format and task != "text-generation":
        raise UserInputError("--use_qdq_format: encoders get QDQ models on NPUs (`--device npu`); on the CPU their "
                             "int8 is dynamic", hint="drop --use_qdq_format, or give --device npu")  # fmt: skip


def run_optimize(opts: OptimizeOptions, progress: Progress | None = None) -> AutoOptResult:
    """Check Olive's knobs against the model, then run auto-opt with the candidates they narrow."""
    check_model_options(opts)
    return run_auto_opt(opts, progress, shaped_pipelines(opts))


@api_call()
def optimize(
    model_name_or_path: str | Path,
    output_path: str | Path = "optimized-model",
    *,
    progress: Progress | None = None,
    **options: Any,
) -> AutoOptResult:
    """Olive's ``optimize``: the candidates of one precision built, measured, the best kept (``olive-ext optimize``).

    ``options`` are :class:`OptimizeOptions` fields, named like the CLI flags (``precision``, ``provider``,
    ``block_size``, ``extra_mb_options``, and auto-opt's data and constraint options).
    """
    opts = validate_options(
        OptimizeOptions, {"model_name_or_path": model_name_or_path, "output_path": output_path, **options}
    )
    return run_optimize(opts, progress_or_quiet(progress))


with_options_signature(optimize, OptimizeOptions)
