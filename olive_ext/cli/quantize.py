"""`olive-ext quantize`: quantize an HF LLM (through the genai model builder) or an ONNX model."""

from __future__ import annotations

import argparse
from typing import Any

from olive_ext.cli.common import add_cache_dir, add_data_arguments, add_log_level, add_output

NAME = "quantize"
HELP = "quantize a model to int4/int8: HF LLMs through the genai builder, ONNX models with onnxruntime"
DESCRIPTION = """Quantize one model, with Olive's flags.

  HF or GGUF LLM   -> model_builder (int4/int8 MatMulNBits; --algorithm hqq builds fp32 then int4_weight)
  HF encoder       -> onnx_export, then as an ONNX model
  ONNX/genai model -> int4: int4_weight (MatMulNBits, or QDQ with --use_qdq_encoding)
                      int8: int8_dynamic; with --use_qdq_encoding and data: qdq_static (calibrated);
                            with an explicit --algorithm rtn/kquant: 8-bit weight-only MatMulNBits

The model is smoke-run on the CPU execution provider before it is written; --parity also
compares it with the PyTorch source and fails it beyond the default thresholds.

  olive-ext quantize -m HuggingFaceTB/SmolLM2-135M-Instruct --precision int4 -o out/int4
  olive-ext quantize -m model.gguf --algorithm kquant --block_size 128 -o out/kq --parity
  olive-ext quantize -m out/onnx/model --precision int4 --algorithm hqq -o out/hqq
  olive-ext quantize -m minilm/ --precision int8 --use_qdq_encoding --data_files cal.jsonl --text_field text -o q
"""
ORDER = 30
OLIVE_REPLACEMENTS = {
    "--implementation": "not needed: the algorithm picks the implementation (genai builder or onnxruntime)",
    "--act_precision": "use --use_qdq_encoding with data for static int8 (activation types are per preset)",
}
_ALGORITHMS = {"rtn": "rtn", "kquant": "k_quant", "hqq": "hqq", "default": "default"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model_name_or_path", required=True, help="HF folder or hub id, .gguf, ONNX folder or file")
    p.add_argument("-a", "--adapter_path", default=None, help="peft adapter to apply (merged before quantizing)")
    p.add_argument(
        "--algorithm",
        choices=sorted(_ALGORITHMS),
        default=None,
        help="weight rounding: rtn (round to nearest; default), kquant (llama.cpp k-quant), "
        "hqq (half-quadratic; its float zero points run slowly on the CPU EP)",
    )
    p.add_argument("--precision", choices=["int4", "int8"], default="int4", help="weight precision (default int4)")
    p.add_argument(
        "--block_size", type=int, choices=[16, 32, 64, 128, 256], default=None,
        help="weights per quantization block (default: 32 for LLM builds, 128 for ONNX models)",
    )  # fmt: skip
    p.add_argument(
        "--accuracy_level", type=int, choices=[0, 1, 2, 3, 4], default=None,
        help="MatMulNBits compute type: 1 fp32, 2 fp16, 3 bf16, 4 int8 (default: 4 on CPU)",
    )  # fmt: skip
    p.add_argument("--use_qdq_encoding", action="store_true", help="QDQ nodes (DequantizeLinear + MatMul) instead of "
                   "MatMulNBits; for int8 ONNX models: static QDQ quantization calibrated on --data_files")  # fmt: skip
    p.add_argument(
        "--lm_head", choices=["same", "int8", "float"], default=None,
        help="LM head precision: same as the body (default), int8 (LLM builds), or float (not quantized)",
    )  # fmt: skip
    p.add_argument(
        "--provider", default="cpu",
        help="execution provider to build for: cpu (default), cuda, dml, webgpu; others are cross-builds",
    )  # fmt: skip
    p.add_argument("--parity", action="store_true", help="compare with the PyTorch source and fail beyond thresholds")
    add_output(p)
    add_data_arguments(p, "--split", "train")
    add_cache_dir(p)
    add_log_level(p)


def quantize_passes(kind: str, task: str, args: argparse.Namespace, has_data: bool) -> dict[str, dict[str, Any]]:
    """The recipe passes for this input kind and these flags."""
    from olive_ext.errors import UserInputError

    algo = _ALGORITHMS[args.algorithm] if args.algorithm else None
    passes: dict[str, dict[str, Any]] = {}
    if kind in ("hf", "gguf") and task == "text-generation":
        if algo == "hqq":
            passes["build"] = {"type": "model_builder", "precision": "fp32"}
        else:
            build: dict[str, Any] = {"type": "model_builder", "precision": args.precision, "algorithm": algo or "rtn"}
            if args.use_qdq_encoding:
                build["use_qdq"] = True
            if args.block_size:
                build["block_size"] = args.block_size
            if args.accuracy_level is not None:
                build["accuracy_level"] = args.accuracy_level
            if args.lm_head:
                build["lm_head"] = args.lm_head
            passes["build"] = build
            return passes
    elif kind in ("hf", "gguf"):
        passes["export"] = {"type": "onnx_export"}
    if args.lm_head == "int8" and "build" not in passes:
        raise UserInputError("--lm_head int8 applies to LLM builds; for ONNX models use same or float")
    if args.precision == "int8" and algo in (None, "default") and not args.block_size:
        if args.use_qdq_encoding:
            if not has_data:
                raise UserInputError(
                    "--precision int8 --use_qdq_encoding quantizes statically and needs calibration data",
                    hint="add --data_files FILE (with --text_field or --text_template)",
                )
            passes["quantize"] = {"type": "qdq_static"}
        else:
            passes["quantize"] = {"type": "int8_dynamic"}
        return passes
    weight: dict[str, Any] = {"type": "int4_weight", "bits": 4 if args.precision == "int4" else 8}
    # onnxruntime's default weight-only quantizer is block RTN (and the only one writing QDQ).
    onnx_algo = "default" if algo in (None, "rtn") else algo
    weight |= {"algorithm": onnx_algo, "quant_format": "qdq" if args.use_qdq_encoding else "qoperator"}
    for key in ("block_size", "accuracy_level"):
        if getattr(args, key) is not None:
            weight[key] = getattr(args, key)
    if args.lm_head == "float":
        weight["lm_head"] = "float"
    passes["quantize"] = weight
    return passes


def main(args: argparse.Namespace) -> int:
    from olive_ext.api import run
    from olive_ext.autoopt import model_task
    from olive_ext.cli.common import dataset_spec_from_args
    from olive_ext.cli.summary import print_run_summary
    from olive_ext.engine.output import ensure_output_free
    from olive_ext.engine.progress import Progress
    from olive_ext.model_folder import resolve_model_arg
    from olive_ext.recipe import parse_recipe
    from olive_ext.targets.base import PROVIDERS, normalize_provider

    ensure_output_free(args.output_path, args.overwrite)
    source = resolve_model_arg(args.model_name_or_path, args.adapter_path)
    task = model_task(source)
    data = dataset_spec_from_args(args, args.split)
    passes = quantize_passes(source.kind, task, args, data is not None)
    if args.parity:
        passes["parity"] = {"type": "parity_check"}
    provider = normalize_provider(args.provider)
    device = next((d for d, providers in PROVIDERS.items() if provider in providers), "cpu")
    raw: dict[str, Any] = {
        "input_model": {
            "path": source.path, "kind": source.kind, "adapter_path": source.adapter_path,
            "gguf_file": source.gguf_file, "task": task,
        },
        "data": {"calibration": data.model_dump(mode="json", exclude_none=True)} if data is not None else {},
        "passes": passes,
        "targets": [{"device": device, "provider": provider}],
        "output": {"path": args.output_path, "overwrite": args.overwrite},
        "cache_dir": args.cache_dir,
    }  # fmt: skip
    progress = Progress()
    result = run(parse_recipe(raw), progress=progress)
    print_run_summary(result, progress.console)
    return 0
