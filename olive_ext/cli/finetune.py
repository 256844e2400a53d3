"""`olive-ext finetune`: LoRA / QLoRA / DoRA with Olive's flags; fast on CPU, on the GPU when there is one."""

from __future__ import annotations

import argparse
from typing import Any

from olive_ext.cli.common import add_cache_dir, add_data_arguments, add_log_level, add_output, parse_bool

NAME = "finetune"
HELP = "fine-tune a LoRA, QLoRA or DoRA adapter on a dataset (fast on CPU, uses the GPU when there is one)"
DESCRIPTION = """Fine-tune an adapter with peft and the transformers Trainer. Batches are padded to their
own longest example and grouped by length, logits are computed only where the loss is, and the
dtype is the fastest correct one for the device (measured once per machine). The loss covers
the answer only (a template's trailing {column}, alpaca's output, the last assistant turn)
unless --train_on_prompt.

Writes: adapter/ (peft files, tokenizer, chat template), model/ (the base model as a Hugging
Face folder; the merged model with --merge), model_config.json (so `olive-ext auto-opt -m
<output>` takes the folder), train_metrics.json (loss curve, eval loss and exact match of the
base and the fine-tuned model, tokens/s, wall time, peak memory) and recipe.yaml (rerun it with
`olive-ext run --config`). Other transformers TrainingArguments pass through (--warmup_steps 10).
Ctrl-C writes a checkpoint and says how to continue (--resume_from_checkpoint).

  olive-ext finetune -m SmolLM2-135M-Instruct.Q4_1.gguf -d json --data_files recipes/data/tone.jsonl \\
      --train_split "train[:480]" --eval_split "train[480:]" \\
      --text_template "Phrase: {phrase}\\nTone: {tone}" --max_steps 40 -o out/ft
  olive-ext finetune -m models/llama --method qlora --use_chat_template -d json --data_files chat.jsonl -o out/q
"""
ORDER = 10
ACCEPTS_EXTRA_ARGS = True
OLIVE_REPLACEMENTS = {
    "--task_name": "not a finetune flag (in Olive either): finetune trains a causal LM; write a classification "
    "task as a template whose trailing {column} is the label, e.g. --text_template 'Phrase: {phrase}\\nTone: {tone}'",
    "--train_subset": "dataset configurations (subsets) are not supported; use a local file (-d json --data_files)",
    "--eval_subset": "dataset configurations (subsets) are not supported; use a local file (-d json --data_files)",
    "--batch_size": "use --per_device_train_batch_size (and --per_device_eval_batch_size)",
    "--input_cols": "use --text_template '...{column}...' to say which columns make the text",
    "--add_special_tokens": "not needed: the tokenizer's BOS is added when the model expects it, EOS after answers",
    "--account_name": "not supported: olive-ext caches locally (--cache_dir)",
    "--container_name": "not supported: olive-ext caches locally (--cache_dir)",
    "--test": "not supported: pass a small local model with -m",
}
_TASKS = {"text-generation", "text-generation-with-past", "causal-lm"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.allow_abbrev = False  # unknown flags pass through to TrainingArguments; never guess a prefix
    p.add_argument("-m", "--model_name_or_path", default=None, help="hub id, local HF folder, or a .gguf file")
    p.add_argument("--trust_remote_code", action="store_true", help="allow model code from the hub")
    p.add_argument("-t", "--task", default="text-generation", help="accepted for Olive: finetune trains causal LMs")
    add_output(p, default="finetuned-adapter")
    add_data_arguments(p, "--train_split", "train")
    p.add_argument("--eval_split", default=None, help="split for eval loss and exact match, e.g. 'train[-100:]'")
    lora = p.add_argument_group("adapter")
    lora.add_argument("--method", choices=["lora", "qlora", "dora"], default="lora", help="default: lora")
    lora.add_argument("--lora_r", type=int, default=16, help="rank (default 16)")
    lora.add_argument("--lora_alpha", type=float, default=32, help="scaling numerator (default 32)")
    lora.add_argument("--lora_dropout", type=float, default=0.0, help="default 0: dropout masks cost ~19%% per step")
    lora.add_argument("--target_modules", default=None, help="comma-separated; default: all attention and MLP linears")
    lora.add_argument("--double_quant", type=parse_bool, default=False, help="qlora: quantize the constants too")
    lora.add_argument("--quant_type", choices=["nf4", "fp4"], default="nf4", help="qlora: 4-bit type")
    lora.add_argument("--merge", action="store_true", help="also merge the adapter: model/ holds the merged model")
    t = p.add_argument_group("training")
    t.add_argument("--max_steps", type=int, default=None, help="optimizer steps (overrides --num_train_epochs)")
    t.add_argument("--num_train_epochs", type=float, default=1.0, help="default 1")
    t.add_argument("--learning_rate", type=float, default=2e-4, help="default 2e-4")
    t.add_argument("--per_device_train_batch_size", type=int, default=4, help="default 4")
    t.add_argument("--per_device_eval_batch_size", type=int, default=8, help="default 8")
    t.add_argument("--gradient_accumulation_steps", type=int, default=1, help="default 1")
    t.add_argument("--max_seq_len", type=int, default=1024, help="truncation limit; batches are never padded to it")
    t.add_argument("--torch_dtype", default="auto", help="auto (default: fastest correct, measured), float32, "
                   "bfloat16, float16")  # fmt: skip
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--logging_steps", type=int, default=None, help="default: about 50 points over the run")
    t.add_argument("--eval_steps", type=int, default=None, help="eval loss every N steps (default: at the end)")
    t.add_argument("--save_steps", type=int, default=None, help="checkpoint every N steps (Ctrl-C always does)")
    t.add_argument("--resume_from_checkpoint", default=None, help="checkpoint folder, or 'true' for the latest")
    t.add_argument("--report_to", default="none", help="none, tensorboard or mlflow")
    t.add_argument("--logging_dir", default=None, help="tensorboard log folder")
    for flag, default, text in (
        ("--packing", False, "pack several examples per row (attention stays per example)"),
        ("--group_by_length", True, "batch similar lengths together (default true)"),
        ("--train_on_prompt", False, "loss on the prompt too (default: answer only)"),
        ("--gradient_checkpointing", False, "less memory, ~30%% slower (default false)"),
        ("--eval_generate", True, "exact match of greedy generations on the eval split (default true)"),
    ):
        t.add_argument(flag, nargs="?", const=True, default=default, type=parse_bool, help=text)
    t.add_argument("--eval_max_new_tokens", type=int, default=16, help="generation limit for exact match")
    o = p.add_argument_group("other")
    o.add_argument("--dry_run", action="store_true", help="check the flags and data, print the recipe, train nothing")
    o.add_argument("--save_config_file", action="store_true", help="accepted for Olive: recipe.yaml is always written")
    o.add_argument("--disable_telemetry", action="store_true", help="accepted for Olive: olive-ext sends nothing")
    add_cache_dir(p)
    add_log_level(p)


_OPTION_FLAGS = ("method", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "double_quant", "quant_type",
                 "max_steps", "num_train_epochs", "learning_rate", "per_device_train_batch_size",
                 "per_device_eval_batch_size", "gradient_accumulation_steps", "max_seq_len", "torch_dtype", "seed",
                 "logging_steps", "eval_steps", "save_steps", "resume_from_checkpoint", "report_to", "logging_dir",
                 "packing", "group_by_length", "train_on_prompt", "gradient_checkpointing", "eval_generate",
                 "eval_max_new_tokens")  # fmt: skip


def build_recipe(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe this command line means (validated by the caller)."""
    from olive_ext.cli.common import dataset_spec_from_args
    from olive_ext.errors import UserInputError

    pairs = _olive_extra_flags(args)
    given = {
        "-m/--model_name_or_path": args.model_name_or_path,
        "-d/--data_name or --data_files": args.data_name or args.data_files,
    }
    missing = [flag for flag, value in given.items() if not value]
    if missing:
        raise UserInputError(
            f"olive-ext finetune needs {' and '.join(missing)}",
            hint="e.g. olive-ext finetune -m model.gguf -d json --data_files train.jsonl "
            "--text_template 'Q: {question}\\nA: {answer}' -o out/ft",
        )
    if args.task not in _TASKS:
        raise UserInputError(
            f"--task {args.task}: finetune trains causal language models (text-generation)",
            hint="write a classification task as a template whose trailing {column} is the label",
        )
    options: dict[str, Any] = {k: getattr(args, k) for k in _OPTION_FLAGS}
    options["training_args"] = _training_args(pairs, options)
    train = dataset_spec_from_args(args, args.train_split)
    data = {"train": train.model_dump(mode="json", exclude_none=True)}
    step: dict[str, Any] = {"type": "lora", **options, "train_data": "train"}
    if args.eval_split:
        data["eval"] = dataset_spec_from_args(args, args.eval_split).model_dump(mode="json", exclude_none=True)
        step["eval_data"] = "eval"
    passes: dict[str, Any] = {"finetune": step}
    if args.merge:
        passes["merge"] = {"type": "merge_adapter"}
    recipe: dict[str, Any] = {
        "input_model": {"path": args.model_name_or_path, "trust_remote_code": args.trust_remote_code},
        "data": data,
        "passes": passes,
        "output": {"path": args.output_path, "overwrite": args.overwrite},
    }
    if args.cache_dir:
        recipe["cache_dir"] = args.cache_dir
    return recipe


def _olive_extra_flags(args: argparse.Namespace) -> dict[str, Any]:
    """Unknown `--flag value` pairs; flags Olive has and we do not get what to write instead."""
    from olive_ext.errors import UserInputError
    from olive_ext.train.args import parse_flag_pairs

    pairs = parse_flag_pairs(list(args.extra_args or []))
    replaced = [f"--{k}: {OLIVE_REPLACEMENTS['--' + k]}" for k in pairs if "--" + k in OLIVE_REPLACEMENTS]
    if replaced:
        raise UserInputError("; ".join(replaced), hint="see olive-ext finetune --help")
    return pairs


def _training_args(pairs: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """transformers TrainingArguments (checked, typed); those we have a field for become that field."""
    from olive_ext.train.args import check_training_args
    from olive_ext.train.options import FinetuneOptions

    for flag, dtype in (("bf16", "bfloat16"), ("fp16", "float16")):  # Olive/HF mixed-precision switches
        if flag in pairs and parse_bool(str(pairs.pop(flag))):
            options["torch_dtype"] = dtype
    checked = check_training_args(pairs, known_elsewhere=list(_OPTION_FLAGS))
    for key in [k for k in checked if k in FinetuneOptions.model_fields and k != "training_args"]:
        options[key] = checked.pop(key)
    return checked


def main(args: argparse.Namespace) -> int:
    from olive_ext.engine.output import ensure_output_free
    from olive_ext.recipe.load import parse_recipe

    raw = build_recipe(args)
    recipe = parse_recipe(raw)
    if args.dry_run:
        import yaml

        from olive_ext.api import resolved_recipe

        print(yaml.safe_dump(resolved_recipe(recipe), sort_keys=False, allow_unicode=True), end="")
        return 0
    ensure_output_free(args.output_path, args.overwrite)
    from olive_ext.engine.progress import Progress
    from olive_ext.train.finish import finish_output, print_summary

    progress = Progress()
    from olive_ext.api import run

    result = run(recipe, progress=progress)
    metrics = finish_output(result, merged=args.merge)
    print_summary(metrics, result, progress.console)
    return 0
