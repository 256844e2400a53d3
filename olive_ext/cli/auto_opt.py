"""`olive-ext auto-opt`: build candidates for the target, measure latency and accuracy, pick the best."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from olive_ext.cli.common import (
    OLIVE_DATA_FLAGS,
    OLIVE_INPUT_MODEL_FLAGS,
    OLIVE_SHARED_CACHE_FLAGS,
    add_cache_dir,
    add_data_arguments,
    add_executor,
    add_log_level,
    add_olive_accepted,
    add_output,
    option,
    print_dry_run,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from olive_ext.progress import Progress
    from olive_ext.workflows.auto_opt import AutoOptOptions, AutoOptResult, PipelineShaper

NAME = "auto-opt"
HELP = "convert a model (and adapter) to ONNX for a device: build candidates, measure them, pick the best"
DESCRIPTION = """Build several ONNX candidates for each target (precisions, quantization methods, block
sizes, graph options), measure each on the target (time to first token, decode latency and
throughput, peak memory, size, task accuracy), keep those that meet the constraints and pick
the best by the objective. Writes model/ (loadable by onnxruntime-genai), candidates.json,
lineage.json, report.md, report.html (with a Pareto chart) and recipe.yaml (rerun it with
`olive-ext run --config`). Builds and measurements are cached: a second identical run is fast.

  olive-ext auto-opt -m out/ft --device cpu -o out/onnx
  olive-ext auto-opt -m model.gguf --data_files eval.jsonl --text_template "Q: {q}\\nA: {a}" -o out
  olive-ext auto-opt -m models/llama/ft/model --adapter_path models/llama/ft/adapter \\
      --device cpu --provider CPUExecutionProvider --use_ort_genai -o models/llama/onnx

--dry_run runs the checks a real run makes before its first build (flags, model, data rows,
output, cache) and prints the recipe of each device; it builds and measures nothing.
"""
ORDER = 20
OLIVE_REPLACEMENTS = {
    **OLIVE_INPUT_MODEL_FLAGS,
    **OLIVE_SHARED_CACHE_FLAGS,
    **OLIVE_DATA_FLAGS,
    "--batch_size": "not needed: each candidate is scored row by row (one teacher-forced pass per row)",
    "--num_splits": "not supported: olive-ext builds single-file models",
    "--use_model_builder": "not needed: LLMs always go through the onnxruntime-genai model builder",
    "--enable_search": "not needed: auto-opt always searches (see --search and --max_candidates)",
    "--memory": "not supported (olive-ext splits no models across devices): --max_memory_mb MB leaves out candidates "
    "whose peak memory while running is over it",
    "--use_dynamo_exporter": "not needed: encoder exports try the dynamo exporter first",
    "--dynamic_to_fixed_shape_dim_param": "write an NPU recipe with a qdq_static pass instead (see recipes/)",
    # Olive 0.13 spells these with hyphens
    "--num-splits": "not supported: olive-ext builds single-file models",
    "--dynamic-to-fixed-shape-dim-param": "write an NPU recipe with a qdq_static pass (static_shapes) instead",
    "--dynamic-to-fixed-shape-dim-value": "write an NPU recipe with a qdq_static pass (static_shapes) instead",
    "--cost-model": "not supported: auto-opt measures each candidate's peak memory (limit it with --max_memory_mb)",
    "--mixed-precision-overrides-config": "not supported here; for int8 on sensitive layers of an LLM use a recipe "
    "with model_builder's mixed_layers_int8 (see recipes/smollm2-lora-int4-cpu.yaml)",
    "--use_qdq_encoding": "not an auto-opt flag here: `olive-ext quantize --use_qdq_encoding` writes QDQ models, and "
    "auto-opt --device npu builds calibrated QDQ candidates",
}


RESUMES = True  # an interrupted run's finished steps are cached: the same command resumes


def add_arguments(p: argparse.ArgumentParser) -> None:
    from olive_ext.workflows.auto_opt import AutoOptOptions

    add_auto_opt_arguments(p, AutoOptOptions)


def add_auto_opt_arguments(
    p: argparse.ArgumentParser, model: type[AutoOptOptions], precisions: list[str] | None = None
) -> None:
    """auto-opt's flags from options model ``model`` (auto-opt's, or a command's built on it, as optimize);
    ``precisions``: the --precision choices when they are not the model's."""
    option(p, model, "model_name_or_path", "-m", "--model_name_or_path")
    option(p, model, "adapter_path", "-a", "--adapter_path")
    option(p, model, "device", nargs="+")
    option(p, model, "provider")
    option(p, model, "precision", **({"choices": precisions} if precisions else {}))
    option(p, model, "gguf", type=bool)
    option(p, model, "olive_int4", type=bool)
    option(p, model, "use_ort_genai", type=bool)
    option(p, model, "trust_remote_code", action="store_true")
    option(p, model, "task", "-t", "--task")
    add_output(p, model)
    add_data_arguments(p, model, "eval_split", "--split")  # --split: Olive's auto-opt and optimize spell it so
    q = p.add_argument_group("measurement and selection")
    option(q, model, "metric")
    option(q, model, "max_accuracy_drop", type=float)
    option(q, model, "max_latency_ms", type=float)
    option(q, model, "max_size_mb", type=float)
    option(q, model, "max_memory_mb", type=float)
    option(q, model, "objective")
    option(q, model, "search")
    option(q, model, "max_candidates", type=int)
    option(q, model, "seed", type=int)
    for name in ("threads", "warmup", "repeats", "max_repeats", "prompt_tokens", "new_tokens", "max_new_tokens"):
        option(q, model, name, type=int)
    option(q, model, "timing_tolerance", type=float)
    option(q, model, "teacher_forcing", type=bool)
    option(q, model, "racing")
    add_executor(p, model)
    o = p.add_argument_group("other")
    o.add_argument(
        "--dry_run",
        action="store_true",
        help="run the checks before work (flags, model, data rows, output, cache) and print each device's recipe; "
        "build nothing",
    )
    add_olive_accepted(o)
    add_cache_dir(p, model)
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    from olive_ext.cli.common import options_from_args
    from olive_ext.workflows.auto_opt import AutoOptOptions, run_auto_opt

    opts = options_from_args(AutoOptOptions, args)
    if args.dry_run:
        return dry_run(opts)
    return run_and_summarize(lambda progress: run_auto_opt(opts, progress))


def run_and_summarize(run: Callable[[Progress], AutoOptResult]) -> int:
    """Run ``run`` with a progress display, then print each device's summary (also when constraints are not met)."""
    from olive_ext.cli.summary import print_run_summary
    from olive_ext.errors import ConstraintsNotMetError
    from olive_ext.progress import Progress

    progress = Progress()
    try:
        result = run(progress)
    except ConstraintsNotMetError as e:
        if e.result is not None:
            print_run_summary(e.result, progress.console)
        raise
    for one in result.runs.values():
        print_run_summary(one, progress.console)
    return 0


def dry_run(opts: AutoOptOptions, shape: PipelineShaper | None = None) -> int:
    """The checks before work and each device's recipe, as run_auto_opt makes them; printed, nothing built."""
    from olive_ext.workflows.auto_opt import plan_auto_opt

    return print_dry_run(plan_auto_opt(opts, shape))
