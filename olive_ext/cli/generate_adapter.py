"""`olive-ext generate-adapter`: one ONNX base, many LoRA adapters switched at run time."""

from __future__ import annotations

import argparse

from olive_ext.cli.common import (
    OLIVE_SHARED_CACHE_FLAGS,
    add_cache_dir,
    add_data_arguments,
    add_log_level,
    add_olive_accepted,
    add_output,
    option,
)

NAME = "generate-adapter"
HELP = "build one ONNX base plus an adapter file per LoRA adapter, each checked against peft"
DESCRIPTION = """Build the base model once with LoRA weights as inputs, write each adapter as an
.onnx_adapter file (onnxruntime's adapter format) named after it, and prove each one: its
logits and greedy tokens in onnxruntime-genai against PyTorch with the peft adapter, and the
base with no adapter active against the base model. Adapters that do not fit the base are
refused before anything is built; adapters that fail their check are not shipped.

  olive-ext generate-adapter -m model.gguf --adapter_path out/tone out/city -o out/multi
  olive-ext generate-adapter --base_model_path models/base --adapter_paths adapters/a,adapters/b -o out/multi
  olive-ext chat -m out/multi --adapter tone
"""
ORDER = 30
OLIVE_REPLACEMENTS = {
    **OLIVE_SHARED_CACHE_FLAGS,
    "--save_config_file": "not needed: generate-adapter writes no workflow config; adapter_report.json records what "
    "was built and checked",
    "--dry_run": "not supported here: generate-adapter checks its inputs before building, and `olive-ext auto-opt "
    "--dry_run` prints what a build would be",
    "--adapter_type": "not needed: olive-ext reads each adapter's type from its adapter_config.json (LoRA only; DoRA "
    "and others are merged by auto-opt --adapter_path)",
}


RESUMES = True  # an interrupted run's finished steps are cached: the same command resumes


def add_arguments(p: argparse.ArgumentParser) -> None:
    from olive_ext.workflows.generate_adapter import GenerateAdapterOptions as O

    option(p, O, "model_name_or_path", "-m", "--model_name_or_path", "--base_model_path")
    option(p, O, "adapter_path", "-a", "--adapter_path", "--adapter_paths", nargs="+")
    option(p, O, "adapter_format")
    option(p, O, "precision")
    option(p, O, "device")
    option(p, O, "provider")
    option(p, O, "check_prompts", type=int)
    add_output(p, O)
    add_data_arguments(p, O, "eval_split")
    add_olive_accepted(p.add_argument_group("other"), config_file=False)
    add_cache_dir(p, O)
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    from olive_ext.cli.common import options_from_args
    from olive_ext.console import make_console
    from olive_ext.progress import Progress
    from olive_ext.workflows.generate_adapter import GenerateAdapterOptions, generate_adapters

    opts = options_from_args(GenerateAdapterOptions, args)
    checks = generate_adapters(opts, Progress())
    console = make_console()
    for c in checks:
        n = c.numbers
        console.print(
            f"[green]ok[/] {c.name}: max |logit delta| {n['max_abs_delta']:.2e}, top-1 "
            f"{n['top1_agreement']:.3f}, greedy prefix {n.get('greedy_prefix_match', 1):.2f}"
        )
    runnable = getattr(args, "adapter_format", "onnx_adapter") == "onnx_adapter"  # others: for the user's runtime
    hint = f"  (try: olive-ext chat -m {args.output_path} --adapter {checks[-1].name})" if runnable else ""
    console.print(f"output: {args.output_path}{hint}")
    return 0
