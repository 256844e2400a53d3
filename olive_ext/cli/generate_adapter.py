"""`olive-ext generate-adapter`: one ONNX base, many LoRA adapters switched at run time."""

from __future__ import annotations

import argparse

from olive_ext.cli.common import add_cache_dir, add_data_arguments, add_log_level, add_output

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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-m",
        "--model_name_or_path",
        "--base_model_path",
        dest="model_name_or_path",
        required=True,
        help="the base: HF folder, hub id or .gguf file",
    )
    p.add_argument(
        "-a",
        "--adapter_path",
        "--adapter_paths",
        dest="adapter_path",
        nargs="+",
        required=True,
        help="peft adapter folders or finetune output folders (space- or comma-separated)",
    )
    p.add_argument(
        "--adapter_format",
        choices=["onnx_adapter", "safetensors", "numpy"],
        default="onnx_adapter",
        help="onnx_adapter for onnxruntime-genai (default); safetensors/numpy for other runtimes",
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "int4"],
        default="fp32",
        help="base precision (LoRA weights stay float either way)",
    )
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--provider", default=None, help="execution provider (default: the device's first)")
    p.add_argument("--check_prompts", type=int, default=4, help="prompts used to check each adapter")
    add_output(p)
    add_data_arguments(p, "--eval_split", "train")
    add_cache_dir(p)
    add_log_level(p)


def main(args: argparse.Namespace) -> int:
    from olive_ext.cli.common import dataset_spec_from_args
    from olive_ext.console import make_console
    from olive_ext.engine.progress import Progress
    from olive_ext.generate_adapter import GenerateAdapterOptions, generate_adapters

    adapters = [a.strip() for item in args.adapter_path for a in item.split(",") if a.strip()]
    opts = GenerateAdapterOptions(
        model=args.model_name_or_path,
        adapters=adapters,
        output=args.output_path,
        precision=args.precision,
        device=args.device,
        provider=args.provider,
        adapter_format=args.adapter_format,
        data=dataset_spec_from_args(args, args.eval_split),
        prompts=args.check_prompts,
        cache_dir=args.cache_dir,
        overwrite=args.overwrite,
    )
    progress = Progress()
    checks = generate_adapters(opts, progress)
    console = make_console()
    for c in checks:
        n = c.numbers
        console.print(
            f"[green]ok[/] {c.name}: max |logit delta| {n['max_abs_delta']:.2e}, top-1 "
            f"{n['top1_agreement']:.3f}, greedy prefix {n.get('greedy_prefix_match', 1):.2f}"
        )
    console.print(
        f"output: {args.output_path}  (try: olive-ext chat -m {args.output_path} --adapter {checks[-1].name})"
    )
    return 0
