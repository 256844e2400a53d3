"""`olive-ext quantize`: quantize an HF LLM (through the genai model builder) or an ONNX model."""

from __future__ import annotations

import argparse

from olive_ext.cli.common import (
    OLIVE_DATA_FLAGS,
    OLIVE_INPUT_MODEL_FLAGS,
    OLIVE_SHARED_CACHE_FLAGS,
    add_cache_dir,
    add_data_arguments,
    add_log_level,
    add_olive_accepted,
    add_output,
    option,
)

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
    **OLIVE_INPUT_MODEL_FLAGS,
    **OLIVE_SHARED_CACHE_FLAGS,
    **OLIVE_DATA_FLAGS,
    "-t": "not needed: olive-ext reads the task from the model",
    "--task": "not needed: olive-ext reads the task from the model",
    "--max_seq_len": "not needed: calibration rows are used whole",
    "--batch_size": "not needed: calibration reads one row at a time",
    "--implementation": "not needed: the algorithm picks the implementation (genai builder or onnxruntime)",
    "--act_precision": "use --use_qdq_encoding with data for static int8 (activation types are per preset)",
}
ALGORITHM_CHOICES = ("rtn", "kquant", "hqq")
PRECISION_CHOICES = ("int4", "int8")
_AS_OLIVE_PASS = (
    "write a recipe with an `olive` pass (olive_type: {}; needs {}) and run `olive-ext run --config RECIPE`"
)
# Olive's --algorithm and --precision values olive-ext quantize lacks -> what to write instead
OLIVE_ALGORITHMS = {
    "gptq": "run `olive-ext auto-opt -m MODEL -o OUT`: on cpu with olive-ai installed it builds Olive's GPTQ int4 "
    "among its candidates (--olive_int4; calibrated on a finetune output's training rows), or run "
    "`olive-ext run --config recipes/smollm2-gptq-int4-cpu.yaml` (a GPTQ recipe to adapt)",
    "awq": _AS_OLIVE_PASS.format("AutoAWQQuantizer", "olive-ai and autoawq"),
    "quarot": _AS_OLIVE_PASS.format("QuaRot", "olive-ai"),
    "spinquant": _AS_OLIVE_PASS.format("SpinQuant", "olive-ai"),
    **dict.fromkeys(
        ("lpbq", "seqmse", "adaround"),
        "Qualcomm AIMET techniques (Olive's AimetQuantization, needs "
        "aimet-onnx); for a QNN NPU model use --precision int8 --use_qdq_encoding with data",
    ),
}
OLIVE_PRECISIONS = {
    **dict.fromkeys(
        ("fp16", "bf16", "fp32"),
        "not a quantization: for a float ONNX model run `olive-ext auto-opt -m MODEL --precision fp16|fp32 -o OUT`",
    ),
    "uint8": "use --precision int8 (static QDQ: add --use_qdq_encoding and calibration data)",
    "uint4": "use --precision int4",
    "nf4": "NF4 is QLoRA's training format: `olive-ext finetune --method qlora`; for a 4-bit model use --precision "
    "int4",
}


RESUMES = True  # an interrupted run's finished steps are cached: the same command resumes


def add_arguments(p: argparse.ArgumentParser) -> None:
    from olive_ext.workflows.quantize import QuantizeOptions as O

    option(p, O, "model_name_or_path", "-m", "--model_name_or_path")
    option(p, O, "adapter_path", "-a", "--adapter_path")
    # no argparse choices: Olive's other values get what to write instead (main), not "invalid choice"
    option(p, O, "algorithm", choices=None, metavar="{" + ",".join(ALGORITHM_CHOICES) + "}")
    option(p, O, "precision", choices=None, metavar="{" + ",".join(PRECISION_CHOICES) + "}")
    option(p, O, "block_size", type=int)
    option(p, O, "accuracy_level", type=int)
    option(p, O, "use_qdq_encoding", action="store_true")
    option(p, O, "lm_head")
    option(p, O, "provider")
    option(p, O, "parity", action="store_true")
    option(p, O, "trust_remote_code", action="store_true")
    add_output(p, O)
    add_data_arguments(p, O, "split")
    o = p.add_argument_group("other")
    o.add_argument("--dry_run", action="store_true",
                   help="run the checks before work (flags, model, data, output, cache) and print the recipe; "
                   "quantize nothing")  # fmt: skip
    add_olive_accepted(o)
    add_cache_dir(p, O)
    add_log_level(p)


def check_choices(args: argparse.Namespace) -> None:
    """--algorithm and --precision are ours; Olive's other values get what olive-ext offers instead."""
    from olive_ext.errors import UserInputError

    for flag, ours, olive in (("algorithm", ALGORITHM_CHOICES, OLIVE_ALGORITHMS),
                              ("precision", PRECISION_CHOICES, OLIVE_PRECISIONS)):  # fmt: skip
        value = getattr(args, flag)
        if value is None or value in ours:
            continue
        instead = olive.get(value, "")
        raise UserInputError(f"--{flag} {value}: olive-ext quantize has {', '.join(ours)}" + (
            f"; {instead}" if instead else ""))  # fmt: skip


def main(args: argparse.Namespace) -> int:
    from olive_ext.cli.common import options_from_args
    from olive_ext.cli.summary import print_run_summary
    from olive_ext.progress import Progress
    from olive_ext.workflows.quantize import QuantizeOptions, plan_quantize, run_quantize

    check_choices(args)
    opts = options_from_args(QuantizeOptions, args)
    if args.dry_run:
        from olive_ext.cli.common import print_dry_run

        return print_dry_run({opts.model_name_or_path: plan_quantize(opts)}, what="pipeline")
    progress = Progress()
    result = run_quantize(opts, progress)
    print_run_summary(result, progress.console)
    return 0
