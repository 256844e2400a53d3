"""`olive-ext auto-opt`: build candidates for the target, measure latency and accuracy, pick the best."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from olive_ext.cli.common import (
    add_cache_dir,
    add_data_arguments,
    add_executor,
    add_log_level,
    add_olive_accepted,
    add_output,
    option,
)

if TYPE_CHECKING:
    from olive_ext.workflows.auto_opt import AutoOptOptions

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
    "--num_splits": "not supported: olive-ext builds single-file models",
    "--use_model_builder": "not needed: LLMs always go through the onnxruntime-genai model builder",
    "--enable_search": "not needed: auto-opt always searches (see --search and --max_candidates)",
    "--memory": "not supported: use --max_size_mb to constrain model size",
    "--use_dynamo_exporter": "not needed: encoder exports try the dynamo exporter first",
    "--dynamic_to_fixed_shape_dim_param": "write an NPU recipe with a qdq_static pass instead (see recipes/)",
    # Olive 0.13 spells these with hyphens
    "--num-splits": "not supported: olive-ext builds single-file models",
    "--dynamic-to-fixed-shape-dim-param": "write an NPU recipe with a qdq_static pass (static_shapes) instead",
    "--dynamic-to-fixed-shape-dim-value": "write an NPU recipe with a qdq_static pass (static_shapes) instead",
    "--cost-model": "not supported: auto-opt measures each candidate's memory instead (--max_memory_mb)",
    "--mixed-precision-overrides-config": "not supported here; for int8 on sensitive layers of an LLM use a recipe "
    "with model_builder's mixed_layers_int8 (see recipes/smollm2-lora-int4-cpu.yaml)",
    "--use_qdq_encoding": "not an auto-opt flag here: `olive-ext quantize --use_qdq_encoding` writes QDQ models, and "
    "auto-opt --device npu builds calibrated QDQ candidates",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from olive_ext.workflows.auto_opt import AutoOptOptions as O

    option(p, O, "model_name_or_path", "-m", "--model_name_or_path")
    option(p, O, "adapter_path", "-a", "--adapter_path")
    option(p, O, "device", nargs="+")
    option(p, O, "provider")
    option(p, O, "precision")
    option(p, O, "gguf", type=bool)
    option(p, O, "olive_int4", type=bool)
    option(p, O, "use_ort_genai", type=bool)
    option(p, O, "trust_remote_code", action="store_true")
    option(p, O, "task", "-t", "--task")
    add_output(p, O)
    add_data_arguments(p, O, "eval_split")
    q = p.add_argument_group("measurement and selection")
    option(q, O, "metric")
    option(q, O, "max_accuracy_drop", type=float)
    option(q, O, "max_latency_ms", type=float)
    option(q, O, "max_size_mb", type=float)
    option(q, O, "objective")
    option(q, O, "search")
    option(q, O, "max_candidates", type=int)
    option(q, O, "seed", type=int)
    for name in ("threads", "warmup", "repeats", "max_repeats", "prompt_tokens", "new_tokens", "max_new_tokens"):
        option(q, O, name, type=int)
    option(q, O, "timing_tolerance", type=float)
    option(q, O, "teacher_forcing", type=bool)
    option(q, O, "racing")
    add_executor(p, O)
    o = p.add_argument_group("other")
    o.add_argument(
        "--dry_run",
        action="store_true",
        help="run the checks before work (flags, model, data rows, output, cache) and print each device's recipe; "
        "build nothing",
    )
    add_olive_accepted(o)
    add_cache_dir(p, O)
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    from olive_ext.cli.common import options_from_args
    from olive_ext.cli.summary import print_run_summary
    from olive_ext.errors import ConstraintsNotMetError
    from olive_ext.progress import Progress
    from olive_ext.workflows.auto_opt import AutoOptOptions, run_auto_opt

    opts = options_from_args(AutoOptOptions, args)
    if args.dry_run:
        return dry_run(opts)
    progress = Progress()
    try:
        result = run_auto_opt(opts, progress)
    except ConstraintsNotMetError as e:
        if e.result is not None:
            print_run_summary(e.result, progress.console)
        raise
    for run in result.runs.values():
        print_run_summary(run, progress.console)
    return 0


def dry_run(opts: AutoOptOptions) -> int:
    """The checks before work and each device's recipe, as run_auto_opt makes them; printed, nothing built."""
    import yaml

    from olive_ext.console import make_console
    from olive_ext.engine.preflight import check_recipe_before_work
    from olive_ext.recipe.schema import resolved_recipe
    from olive_ext.workflows.auto_opt import plan_auto_opt

    recipes = plan_auto_opt(opts)
    for recipe in recipes.values():
        check_recipe_before_work(recipe)  # as run_recipe does before its first step
    print(yaml.safe_dump_all([resolved_recipe(r) for r in recipes.values()], sort_keys=False, allow_unicode=True),
          end="")  # fmt: skip
    console = make_console(stderr=True)
    for device, recipe in recipes.items():
        pipelines = len(recipe.pipelines) or 1
        console.print(f"dry run: {device}: {pipelines} candidate pipeline{'s' if pipelines != 1 else ''}, "
                      f"nothing built (output {recipe.output.path})", highlight=False)  # fmt: skip
    return 0
