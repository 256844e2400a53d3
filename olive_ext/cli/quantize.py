"""`olive-ext quantize`: quantize an HF LLM (through the genai model builder) or an ONNX model."""

from __future__ import annotations

import argparse

from olive_ext.cli.common import add_cache_dir, add_data_arguments, add_log_level, add_output, option

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


def add_arguments(p: argparse.ArgumentParser) -> None:
    from olive_ext.workflows.quantize import QuantizeOptions as O

    option(p, O, "model_name_or_path", "-m", "--model_name_or_path")
    option(p, O, "adapter_path", "-a", "--adapter_path")
    option(p, O, "algorithm")
    option(p, O, "precision")
    option(p, O, "block_size", type=int)
    option(p, O, "accuracy_level", type=int)
    option(p, O, "use_qdq_encoding", action="store_true")
    option(p, O, "lm_head")
    option(p, O, "provider")
    option(p, O, "parity", action="store_true")
    add_output(p, O)
    add_data_arguments(p, O, "split")
    add_cache_dir(p, O)
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    from olive_ext.cli.common import options_from_args
    from olive_ext.cli.summary import print_run_summary
    from olive_ext.progress import Progress
    from olive_ext.workflows.quantize import QuantizeOptions, run_quantize

    progress = Progress()
    result = run_quantize(options_from_args(QuantizeOptions, args), progress)
    print_run_summary(result, progress.console)
    return 0
