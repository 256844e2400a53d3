"""`olive-ext finetune`: LoRA / QLoRA / DoRA with Olive's flags; fast on CPU, on the GPU when there is one."""

from __future__ import annotations

import argparse
from typing import Any

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

NAME = "finetune"
HELP = "fine-tune a LoRA, QLoRA or DoRA adapter on a dataset (fast on CPU, uses the GPU when there is one)"
DESCRIPTION = """Fine-tune an adapter with peft and the transformers Trainer. Batches are padded to their
own longest example and grouped by length, logits are computed only where the loss is, and the
dtype is the fastest correct one for the device (measured: once per machine on a CPU, on a
training step on a GPU). The loss covers the answers only (a template's last {column} with any
end-of-turn text after it, alpaca's output, every assistant turn of a chat) unless
--train_on_prompt. --dry_run reads a few rows of each split and tokenizes them, so a misspelt
column stops it before any work.

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
    **OLIVE_INPUT_MODEL_FLAGS,
    **OLIVE_SHARED_CACHE_FLAGS,
    **OLIVE_DATA_FLAGS,
    "--task_name": "not a finetune flag (in Olive either): finetune trains a causal LM; write a classification "
    "task as a template whose trailing {column} is the label, e.g. --text_template 'Phrase: {phrase}\\nTone: {tone}'",
    "--train_subset": "dataset configurations (subsets) are not supported; use a local file (-d json --data_files)",
    "--eval_subset": "dataset configurations (subsets) are not supported; use a local file (-d json --data_files)",
    "--batch_size": "use --per_device_train_batch_size (and --per_device_eval_batch_size)",
    # Unsloth's FastLanguageModel / get_peft_model and TRL's SFTConfig names (README "Coming from Unsloth")
    "--load_in_4bit": "use --method qlora (the base loaded in 4-bit NF4 with bitsandbytes, as Unsloth's "
    "load_in_4bit=True)",
    "--load_in_8bit": "8-bit bases are not trained by olive-ext: use --method qlora (4-bit) or --method lora",
    "--dataset_text_field": "use --text_field COLUMN (a column of ready text)",
    "--random_state": "use --seed",
    "--use_rslora": "not a switch here: rsLoRA scales the update by lora_alpha/sqrt(r), olive-ext (peft's default) "
    "by lora_alpha/r; for the same scaling pass --lora_alpha equal to your alpha times sqrt(--lora_r)",
    "--use_gradient_checkpointing": "use --gradient_checkpointing true (Unsloth's 'unsloth' mode is its own "
    "offloading; olive-ext uses transformers' checkpointing)",
    "--dataset_num_proc": "not needed: olive-ext tokenizes in one process and caches the result",
}


# training flags and their types, in --help order (defaults and help come from FinetuneOptions)
_TRAINING_FLAGS: tuple[tuple[str, type], ...] = (
    ("max_steps", int), ("num_train_epochs", float), ("learning_rate", float), ("per_device_train_batch_size", int),
    ("per_device_eval_batch_size", int), ("gradient_accumulation_steps", int), ("max_seq_len", int),
    ("torch_dtype", str), ("seed", int), ("logging_steps", int), ("eval_steps", int), ("save_steps", int),
    ("resume_from_checkpoint", str), ("report_to", str), ("logging_dir", str), ("packing", bool),
    ("padding_free", bool), ("group_by_length", bool), ("train_on_prompt", bool), ("gradient_checkpointing", bool),
    ("eval_generate", bool), ("eval_max_new_tokens", int),
)  # fmt: skip


RESUMES = True  # an interrupted run's finished steps are cached: the same command resumes


def add_arguments(p: argparse.ArgumentParser) -> None:
    from olive_ext.workflows.finetune import FinetuneRunOptions as O

    p.allow_abbrev = False  # unknown flags pass through to TrainingArguments; never guess a prefix
    option(p, O, "model_name_or_path", "-m", "--model_name_or_path")
    option(p, O, "adapter_path")
    option(p, O, "trust_remote_code", action="store_true")
    option(p, O, "task", "-t", "--task")
    add_output(p, O)
    add_data_arguments(p, O, "train_split")
    option(p, O, "eval_split")
    lora = p.add_argument_group("adapter")
    option(lora, O, "method")
    option(lora, O, "lora_r", type=int)
    option(lora, O, "lora_alpha", type=float)
    option(lora, O, "lora_dropout", type=float)
    option(lora, O, "target_modules")
    option(lora, O, "double_quant", type=bool)
    option(lora, O, "quant_type")
    option(lora, O, "merge", action="store_true")
    t = p.add_argument_group("training")
    for name, kind in _TRAINING_FLAGS:
        option(t, O, name, type=kind)
    o = p.add_argument_group("other")
    o.add_argument(
        "--dry_run",
        action="store_true",
        help="check the flags, read a few rows of each split and tokenize them with the model's tokenizer, "
        "print the recipe; train nothing",
    )
    add_olive_accepted(o)
    add_cache_dir(p, O)
    add_log_level(p)


def _olive_extra_flags(args: argparse.Namespace) -> dict[str, Any]:
    """Unknown `--flag value` pairs; flags Olive has and we do not get what to write instead."""
    from olive_ext.errors import UserInputError
    from olive_ext.train.args import parse_flag_pairs

    pairs = parse_flag_pairs(list(args.extra_args or []))
    replaced = [f"--{k}: {OLIVE_REPLACEMENTS['--' + k]}" for k in pairs if "--" + k in OLIVE_REPLACEMENTS]
    if replaced:
        raise UserInputError("; ".join(replaced), hint="see olive-ext finetune --help")
    return pairs


def main(args: argparse.Namespace) -> int:
    from olive_ext.options import validate_options
    from olive_ext.progress import Progress
    from olive_ext.workflows.finetune import FinetuneRunOptions, finetune_recipe, run_finetune

    values = {name: getattr(args, name) for name in FinetuneRunOptions.model_fields if getattr(args, name, None)
              is not None}  # fmt: skip
    opts = validate_options(FinetuneRunOptions, {**values, "training_args": _olive_extra_flags(args)})
    if args.dry_run:
        import yaml

        from olive_ext.console import make_console
        from olive_ext.engine.preflight import check_recipe_before_work
        from olive_ext.recipe.schema import resolved_recipe
        from olive_ext.workflows.finetune import check_data

        recipe = finetune_recipe(opts)
        checked = check_data(opts, recipe)  # reads a few rows with the model's tokenizer: exit 2 names what's wrong
        check_recipe_before_work(recipe)  # then the real run's checks (output, cache), as it would fail on them
        print(yaml.safe_dump(resolved_recipe(recipe), sort_keys=False, allow_unicode=True), end="")
        console = make_console(stderr=True)
        for line in checked:
            console.print(f"checked {line}", highlight=False)
        return 0
    from olive_ext.train import distributed

    main_rank = distributed.is_main()  # under torchrun / accelerate launch, rank 0 alone shows and writes
    progress = Progress(enabled=main_rank)
    result = run_finetune(opts, progress)
    if main_rank:
        print_summary(result.metrics, result.run, progress.console)
    return 0


def print_summary(metrics: dict[str, Any], result: Any, console: Any) -> None:
    """The fine-tune's outcome in a few lines: steps, speed, eval before and after, where it was written."""
    if not metrics:
        console.print(f"wrote {result.output_dir}")
        return
    evals = metrics.get("eval") or {}
    lines = [
        f"[bold]fine-tuned[/] {metrics.get('method')} on {metrics.get('device')} ({metrics.get('torch_dtype')}): "
        f"{metrics.get('steps')} steps, "
        + (f"final loss {metrics['final_loss']}" if metrics.get("final_loss") is not None
           else f"mean loss {metrics.get('mean_train_loss')} (no step logged: --logging_steps is above the steps)")
        + (" (reused from cache)" if metrics.get("cache_hit") else ""),
        f"  {metrics.get('train_tokens_per_second')} train tokens/s (non-pad), {metrics.get('train_seconds')} s "
        f"training, peak RSS {metrics.get('peak_rss_mb')} MB",
    ]
    if "base" in evals and "finetuned" in evals:
        base, ft = evals["base"], evals["finetuned"]
        lines.append(f"  eval loss {base['eval_loss']:.4f} -> {ft['eval_loss']:.4f}")
        if "exact_match" in base and "exact_match" in ft:
            lines.append(
                f"  exact match {base['exact_match']:.1f}% -> {ft['exact_match']:.1f}% "
                f"({ft['examples']} eval examples, {metrics.get('torch_dtype')})"
            )
    lines.append(f"  wrote {result.output_dir} (adapter/, model/, model_config.json, train_metrics.json, recipe.yaml)")
    for line in lines:
        console.print(line, highlight=False)
