"""`olive-ext auto-opt`: build candidates for the target, measure latency and accuracy, pick the best."""

from __future__ import annotations

import argparse

from olive_ext.cli.common import add_cache_dir, add_data_arguments, add_log_level, add_output, parse_bool

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
"""
ORDER = 20
OLIVE_REPLACEMENTS = {
    "--num_splits": "not supported: olive-ext builds single-file models",
    "--use_model_builder": "not needed: LLMs always go through the onnxruntime-genai model builder",
    "--enable_search": "not needed: auto-opt always searches (see --search and --max_candidates)",
    "--memory": "not supported: use --max_size_mb to constrain model size",
    "--use_dynamo_exporter": "not needed: encoder exports try the dynamo exporter first",
    "--dynamic_to_fixed_shape_dim_param": "write an NPU recipe with a qdq_static pass instead (see recipes/)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-m", "--model_name_or_path", required=True, help="HF folder, hub id, .gguf file, or a `finetune` output folder"
    )
    p.add_argument("-a", "--adapter_path", default=None, help="peft adapter folder to apply")
    p.add_argument(
        "--device",
        nargs="+",
        default=["cpu"],
        choices=["cpu", "gpu", "npu"],
        help="one or more targets; each gets its own candidates (default: cpu)",
    )
    p.add_argument(
        "--provider",
        default=None,
        help="execution provider, e.g. CPUExecutionProvider, CUDAExecutionProvider, QNNExecutionProvider",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "fp16", "int8", "int4"],
        help="auto (default) searches the target's precisions; otherwise only this one",
    )
    p.add_argument(
        "--use_ort_genai",
        nargs="?",
        const=True,
        default=True,
        type=parse_bool,
        help="accepted for Olive compatibility: LLM outputs are always onnxruntime-genai folders",
    )
    p.add_argument("--trust_remote_code", action="store_true", help="allow model code from the hub")
    add_output(p)
    add_data_arguments(p, "--eval_split", "train")
    q = p.add_argument_group("measurement and selection")
    q.add_argument(
        "--metric",
        choices=["exact_match", "accuracy", "perplexity"],
        default=None,
        help="task metric on the eval data (default: exact_match for LLMs, accuracy for classifiers)",
    )
    q.add_argument(
        "--max_accuracy_drop",
        type=float,
        default=1.0,
        help="points of accuracy a candidate may lose against the fp32 model (default 1.0)",
    )
    q.add_argument("--max_latency_ms", type=float, default=None, help="per-token decode latency limit (p50)")
    q.add_argument("--max_size_mb", type=float, default=None, help="model size limit")
    q.add_argument(
        "--objective",
        choices=["latency", "throughput", "size", "accuracy"],
        default="latency",
        help="what to optimize among candidates that meet the constraints (default latency)",
    )
    q.add_argument("--search", choices=["grid", "random", "tpe"], default="grid", help="search strategy")
    q.add_argument("--max_candidates", type=int, default=None, help="candidate budget per device")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--threads", type=int, default=None, help="intra-op threads when measuring (default: all cores)")
    q.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    q.add_argument("--repeats", type=int, default=3, help="timed runs (min/median/max are reported)")
    q.add_argument("--prompt_tokens", type=int, default=64, help="prompt length for time to first token")
    q.add_argument("--new_tokens", type=int, default=32, help="tokens decoded per timed run")
    q.add_argument("--max_new_tokens", type=int, default=16, help="answer length limit for exact match")
    add_cache_dir(p)
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    from olive_ext.autoopt import AutoOptOptions, auto_opt
    from olive_ext.cli.common import dataset_spec_from_args
    from olive_ext.cli.summary import print_run_summary
    from olive_ext.engine.progress import Progress

    evaluate = {k: getattr(args, k) for k in ("warmup", "repeats", "prompt_tokens", "new_tokens", "max_new_tokens")}
    if args.threads:
        evaluate["threads"] = args.threads
    opts = AutoOptOptions(
        model=args.model_name_or_path,
        output=args.output_path,
        adapter_path=args.adapter_path,
        devices=list(dict.fromkeys(args.device)),
        provider=args.provider,
        precision=args.precision,
        data=dataset_spec_from_args(args, args.eval_split),
        metric=args.metric,
        max_accuracy_drop=args.max_accuracy_drop,
        max_latency_ms=args.max_latency_ms,
        max_size_mb=args.max_size_mb,
        objective=args.objective,
        search=args.search,
        max_candidates=args.max_candidates,
        seed=args.seed,
        overwrite=args.overwrite,
        cache_dir=args.cache_dir,
        trust_remote_code=args.trust_remote_code,
        evaluate=evaluate,
    )
    from olive_ext.errors import ConstraintsNotMetError

    progress = Progress()
    try:
        results = auto_opt(opts, progress)
    except ConstraintsNotMetError as e:
        if e.result is not None:
            print_run_summary(e.result, progress.console)
        raise
    for result in results:
        print_run_summary(result, progress.console)
    return 0
