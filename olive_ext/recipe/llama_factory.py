"""LLaMA-Factory configs. A training config given where a recipe goes is recognised and answered with the
`olive-ext finetune` command that does the same run (their keys are no recipe's, and each was refused as an Olive
key); an export config (`llamafactory-cli export merge.yaml`) is what `olive-ext export merge.yaml` runs."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from olive_ext.data.load import LLAMA_FACTORY_REGISTRY, registry_flags
from olive_ext.errors import Problem, UserInputError

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
              "val_size",
              "preprocessing_num_workers", "dataloader_num_workers", "ddp_timeout", "report_to", "run_name",
              "trust_remote_code", "save_only_model", "logging_dir", "do_eval", "eval_strategy", "eval_steps",
              "per_device_eval_batch_size", "resume_from_checkpoint", "flash_attn", "quantization_method"}  # fmt: skip


def is_llama_factory_config(raw: dict[str, Any]) -> bool:
    """Whether a mapping is a LLaMA-Factory training config (``stage`` and ``finetuning_type`` at the top)."""
    return set(raw) >= _MARKERS


def is_llama_factory_export(raw: dict[str, Any]) -> bool:
    """Whether a mapping is a LLaMA-Factory export config: the model and where to write its merge."""
    return {"model_name_or_path", "export_dir"} <= set(raw) and "stage" not in raw


# export keys -> what olive-ext does instead, said beside the merge (the run differs there, or not at all)
_EXPORT_NOTES = {
    "template": "the chat template is the fine-tune's own (its adapter folder's tokenizer), not a named one",
    "export_size": "shards are transformers' default size",
    "export_device": "merged on the CPU",
    "export_legacy_format": "written as safetensors only (olive-ext writes no pickles)",
    "export_hub_model_id": "not pushed to the hub (olive-ext works offline; push model/ with `hf upload`)",
    "infer_dtype": "the base model's dtype is kept",
}
_EXPORT_DEFAULTS = {"export_size": 5, "export_device": "cpu", "infer_dtype": "auto"}  # LLaMA-Factory's: what we do too
_EXPORT_KEYS = {"model_name_or_path", "adapter_name_or_path", "export_dir", "finetuning_type", "trust_remote_code"}


def llama_factory_export_options(raw: dict[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    """The `olive-ext export` options of a LLaMA-Factory export config (the adapter merged into its base, written
    as a Hugging Face model), and notes on the keys whose effect differs here. Raises what olive-ext cannot do."""
    adapters = [a.strip() for a in str(raw.get("adapter_name_or_path") or "").split(",") if a.strip()]
    if raw.get("export_quantization_bit"):
        raise UserInputError(
            f"{where}: export_quantization_bit {raw['export_quantization_bit']} quantizes with GPTQ, which olive-ext "
            "does not run",
            hint="drop export_quantization_bit and quantize the merged model for its runtime: `olive-ext export "
            "-m MODEL -a ADAPTER --format gguf --quant Q4_K_M` (llama.cpp, Ollama) or `olive-ext auto-opt -m MODEL "
            "--adapter_path ADAPTER --precision int4` (onnxruntime, measured)",
        )
    if len(adapters) > 1:
        raise UserInputError(
            f"{where}: adapter_name_or_path names {len(adapters)} adapters; olive-ext merges one",
            hint="merge them one after another: export the first, then give its export_dir as model_name_or_path",
        )
    if not adapters:
        kind = raw.get("finetuning_type") or "lora"
        raise UserInputError(
            f"{where}: no adapter_name_or_path: there is nothing to merge into {raw['model_name_or_path']}",
            hint="a full or freeze fine-tune is a Hugging Face model already: give it to `olive-ext auto-opt -m` or "
            "`olive-ext export --format gguf`" if kind != "lora" else "name the LoRA adapter in adapter_name_or_path",
        )
    values: dict[str, Any] = {"model_name_or_path": str(raw["model_name_or_path"]), "adapter_path": adapters[0],
                              "output_path": str(raw["export_dir"]), "format": "hf"}  # fmt: skip
    if raw.get("trust_remote_code"):
        values["trust_remote_code"] = True
    notes = [f"{key}: {_EXPORT_NOTES[key]}" for key in _EXPORT_NOTES
             if raw.get(key) not in (None, "", False, _EXPORT_DEFAULTS.get(key))]  # fmt: skip
    other = sorted(k for k in raw if k not in _EXPORT_KEYS and k not in _EXPORT_NOTES and k != "export_quantization_bit"
                   and raw[k] not in (None, False, ""))  # fmt: skip
    if other:
        notes.append("not carried over: " + ", ".join(f"{k}: {raw[k]}" for k in other))
    return values, notes


def llama_factory_export_problem(name: str = "THIS.yaml") -> Problem:
    """The answer to a LLaMA-Factory export config given where a recipe goes."""
    return Problem("", "this is a LLaMA-Factory export config, not a recipe or an Olive run config",
                   hint=f"run `olive-ext export {name}`, as `llamafactory-cli export {name}` (the adapter merged "
                   "into its base; add --format gguf for llama.cpp and Ollama)")  # fmt: skip


def is_llama_factory_inference(raw: dict[str, Any]) -> bool:
    """Whether a mapping is a LLaMA-Factory inference config (`llamafactory-cli chat|api FILE`): a model with its
    template or backend, nothing to train or export."""
    return "model_name_or_path" in raw and bool({"template", "infer_backend"} & set(raw)) and not (
        {"stage", "export_dir"} & set(raw))  # fmt: skip


def llama_factory_config_problem(raw: dict[str, Any], base_dir: Path | None, name: str = "THIS.yaml") -> Problem | None:
    """What to run instead of a LLaMA-Factory config (training, export or inference), or None when ``raw`` is none:
    the one place `run`/`validate` and the CLI's `train|chat|api FILE.yaml` recognise them."""
    if is_llama_factory_config(raw):
        return llama_factory_problem(raw, base_dir)
    if is_llama_factory_export(raw):
        return llama_factory_export_problem(name)
    if is_llama_factory_inference(raw):
        model, adapter = raw["model_name_or_path"], raw.get("adapter_name_or_path")
        build = f"olive-ext auto-opt -m {model}" + (f" --adapter_path {adapter}" if adapter else "") + " -o OUT"
        return Problem("", "this is a LLaMA-Factory inference config: olive-ext chats with (and serves) a model "
                       "built for this machine", hint=f"run `{build}`, then `olive-ext chat -m OUT` (`olive-ext "
                       "serve -m OUT` for an OpenAI-compatible API)")  # fmt: skip
    return None


def _val_size_splits(value: Any) -> list[str]:
    """LLaMA-Factory's ``val_size`` (a share below 1, or a row count) as the two split flags that hold out as many
    rows (it was named "not carried over ... no such option")."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return []
    if value < 1:
        kept = round(100 * (1 - value))
        return ["--train_split", f"train[:{kept}%]", "--eval_split", f"train[{kept}%:]"]
    return ["--train_split", f"train[:-{int(value)}]", "--eval_split", f"train[-{int(value)}:]"]


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
    args += _val_size_splits(raw.get("val_size"))
    if raw.get("overwrite_output_dir") is True:
        args += ["--overwrite"]
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
