"""`olive-ext optimize`: Olive's optimize command (its replacement for auto-opt), with the candidates measured."""

from __future__ import annotations

import argparse

from olive_ext.cli.auto_opt import OLIVE_REPLACEMENTS as AUTO_OPT_REPLACEMENTS
from olive_ext.cli.auto_opt import add_auto_opt_arguments
from olive_ext.cli.common import OLIVE_INPUT_MODEL_FLAGS, option

NAME = "optimize"
HELP = "Olive's optimize: build a model at one precision for a provider (its candidates measured, the best kept)"
DESCRIPTION = """Olive's `optimize` flags, run as olive-ext runs auto-opt: every candidate of the asked precision for
the provider is built (int4: block sizes, k-quant with int8 layers, olive-ai's GPTQ and RTN), measured (latency,
throughput, memory, size and, with eval data, accuracy) and the best is kept, where Olive builds one pipeline
unmeasured. Olive's defaults hold: --precision fp32, the CPU, -o optimized-model. --block_size fixes every
quantizer's block size; --extra_mb_options go to every model-builder build; --use_qdq_format writes QDQ weights.
Outputs are ONNX (onnxruntime-genai folders for LLMs); `auto-opt` also tries llama.cpp GGUF candidates.

  olive-ext optimize --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct --precision int4 --output_path models/qwen
  olive-ext optimize -m out/ft --device cpu --provider CPUExecutionProvider --precision int4 -o out/int4
  olive-ext optimize -m out/ft --precision int4 --block_size 128 --extra_mb_options int4_is_symmetric=false
"""
ORDER = 21
OLIVE_REPLACEMENTS = {
    **OLIVE_INPUT_MODEL_FLAGS,
    "--act_precision": "not supported: LLMs keep float activations (int4/int8 weights only; QNN and VitisAI LLM "
    "builds need their SDKs); for encoders, `--device npu` builds QDQ candidates whose activation types (uint8, "
    "uint16) are measured, not chosen by a flag",
    "--num_split": "not supported: olive-ext builds single-file models",
    "--memory": AUTO_OPT_REPLACEMENTS["--memory"],
    **dict.fromkeys(
        ("--dim_param", "--dim_value"),
        "not supported for LLMs; encoders with fixed shapes: a recipe with a qdq_static pass (static_shapes)",
    ),
    "--surgeries": "write a recipe with a GraphSurgeries pass (run through olive-ai) and run `olive-ext run --config`",
    "--enable_aot": "not supported: ahead-of-time compilation needs the QNN SDK and device",
    "--qnn_env_path": "not supported: QNN builds need the QNN SDK and device",
}


RESUMES = True  # an interrupted run's finished steps are cached: the same command resumes


def add_arguments(p: argparse.ArgumentParser) -> None:
    from olive_ext.workflows.optimize import OLIVE_PRECISIONS, OptimizeOptions

    add_auto_opt_arguments(p, OptimizeOptions, precisions=list(OLIVE_PRECISIONS))
    g = p.add_argument_group("Olive's optimize options")
    option(g, OptimizeOptions, "exporter")
    option(g, OptimizeOptions, "block_size", type=int)
    option(g, OptimizeOptions, "extra_mb_options")
    option(g, OptimizeOptions, "use_qdq_format", action="store_true")
    option(g, OptimizeOptions, "modality")


def main(args: argparse.Namespace) -> int:
    from olive_ext.cli.auto_opt import dry_run, run_and_summarize
    from olive_ext.cli.common import options_from_args
    from olive_ext.workflows.optimize import OptimizeOptions, check_model_options, run_optimize, shaped_pipelines

    opts = options_from_args(OptimizeOptions, args)
    if args.dry_run:
        check_model_options(opts)
        return dry_run(opts, shaped_pipelines(opts))
    return run_and_summarize(lambda progress: run_optimize(opts, progress))
