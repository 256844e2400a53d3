"""LLaMA-Factory training configs given where a recipe goes: recognised, and answered with the `olive-ext finetune`
command that does the same run (their keys are no recipe's, and each was refused as an Olive key)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from olive_ext.data.load import LLAMA_FACTORY_REGISTRY, registry_flags
from olive_ext.errors import Problem

# keys only a LLaMA-Factory config has together: its training stage and how it fine-tunes
_MARKERS = {"stage", "finetuning_type"}
# LLaMA-Factory key -> `olive-ext finetune` flag (same meaning)
_FLAGS = {
    "model_name_or_path": "-m",
    "adapter_name_or_path": "--adapter_path",
    "output_dir": "-o",
    "learning_rate": "--learning_rate",
    "num_train_epochs": "--num_train_epochs",
    "max_steps": "--max_steps",
    "per_device_train_batch_size": "--per_device_train_batch_size",
    "gradient_accumulation_steps": "--gradient_accumulation_steps",
    "lora_rank": "--lora_r",
    "lora_alpha": "--lora_alpha",
    "lora_dropout": "--lora_dropout",
    "cutoff_len": "--max_seq_len",
    "max_samples": "--max_samples",
    "seed": "--seed",
    "warmup_steps": "--warmup_steps",
    "logging_steps": "--logging_steps",
    "save_steps": "--save_steps",
}


_TRAINING_ARGS = ("lr_scheduler_type", "max_grad_norm", "weight_decay", "optim")  # `finetune` takes them as flags
# keys that change nothing in the trained adapter (bookkeeping, logging, the run's plumbing): not listed as dropped
_NO_EFFECT = {"stage", "do_train", "finetuning_type", "dataset", "dataset_dir", "template", "quantization_bit",
              "use_dora", "lora_target", "bf16", "fp16", "overwrite_output_dir", "overwrite_cache", "plot_loss",
              "preprocessing_num_workers", "dataloader_num_workers", "ddp_timeout", "report_to", "run_name",
              "trust_remote_code", "save_only_model", "logging_dir", "do_eval", "eval_strategy", "eval_steps",
              "per_device_eval_batch_size", "resume_from_checkpoint", "flash_attn", "quantization_method"}  # fmt: skip


def is_llama_factory_config(raw: dict[str, Any]) -> bool:
    """Whether a mapping is a LLaMA-Factory training config (``stage`` and ``finetuning_type`` at the top)."""
    return set(raw) >= _MARKERS


def llama_factory_problem(raw: dict[str, Any], base_dir: Path | None) -> Problem:
    """The refusal of a LLaMA-Factory config, with the `olive-ext finetune` command that runs it."""
    args = ["olive-ext", "finetune"]
    for key, flag in _FLAGS.items():
        if raw.get(key) is not None:
            args += [flag, str(raw[key])]
    if raw.get("lora_rank") is not None and raw.get("lora_alpha") is None:  # LLaMA-Factory: alpha = 2 x rank
        args += ["--lora_alpha", str(2 * int(raw["lora_rank"]))]
    method = "dora" if raw.get("use_dora") else "qlora" if str(raw.get("quantization_bit")) == "4" else "lora"
    args += ["--method", method]
    notes = []
    datasets = [d.strip() for d in str(raw.get("dataset") or "").split(",") if d.strip()]
    folder = Path(str(raw.get("dataset_dir") or "data"))
    # LLaMA-Factory reads dataset_dir from where it runs (its examples/ YAMLs are run from the repository's root):
    # there first, then beside the YAML
    beside = folder if folder.is_absolute() or base_dir is None else base_dir / folder
    folder = folder if (folder / LLAMA_FACTORY_REGISTRY).is_file() else beside
    known = registry_flags(folder / LLAMA_FACTORY_REGISTRY)
    for k, dataset in enumerate(datasets):
        if dataset not in known:
            notes.append(f"dataset {dataset!r} is not in {folder / LLAMA_FACTORY_REGISTRY}: pass its file with -d json "
                         "--data_files FILE")  # fmt: skip
        elif k == 0:
            flags, its_notes = known[dataset]
            args += shlex.split(flags)
            notes += its_notes
        else:  # one dataset per run here: the others named, to merge into one file (or pass as a comma list)
            flags, its_notes = known[dataset]
            notes.append(f"dataset {dataset!r} too: {flags}{''.join(f' ({n})' for n in its_notes)} (olive-ext reads "
                         "one dataset per run: files of one format go together as --data_files a.jsonl,b.jsonl)")
    target = str(raw.get("lora_target") or "all")
    if target != "all":  # LLaMA-Factory's "all" is every linear layer: olive-ext's default too
        args += ["--target_modules", target]
    if raw.get("bf16") or raw.get("fp16"):
        args += ["--torch_dtype", "bfloat16" if raw.get("bf16") else "float16"]
    for key in _TRAINING_ARGS:
        if raw.get(key) is not None:
            args += [f"--{key}", str(raw[key])]
    if raw.get("finetuning_type") not in (None, "lora"):
        notes.append(f"finetuning_type {raw['finetuning_type']}: olive-ext trains LoRA adapters (LoRA, QLoRA, DoRA)")
    if raw.get("stage") not in (None, "sft"):
        notes.append(f"stage {raw['stage']}: olive-ext fine-tunes supervised (sft) only")
    if raw.get("template"):
        notes.append(f"template {raw['template']}: olive-ext uses the model's own chat template")
    dropped = sorted(k for k in raw if k not in _FLAGS and k not in _NO_EFFECT and k not in _TRAINING_ARGS
                     and raw[k] not in (None, False, ""))  # fmt: skip
    if dropped:  # the command must not look like the same run when it is not (they were left out without a word)
        notes.append("not carried over: " + ", ".join(f"{k}: {raw[k]}" for k in dropped) + " (olive-ext finetune "
                     "has no such option: the run differs there)")  # fmt: skip
    return Problem(
        "",
        "this is a LLaMA-Factory training config, not a recipe or an Olive run config",
        hint="run `" + shlex.join(args) + "`" + (" (" + "; ".join(notes) + ")" if notes else ""),
    )
