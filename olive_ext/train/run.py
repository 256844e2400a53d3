"""One fine-tuning run: data -> tokens -> base eval -> train -> fine-tuned eval -> adapter folder + metrics."""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olive_ext.data import load_rows, to_examples
from olive_ext.errors import MissingDependencyError, OliveExtError, UserInputError
from olive_ext.memory import peak_rss_mb, reset_peak_rss
from olive_ext.models.folder import config_json, tokenizer_folder
from olive_ext.onnx.folder import config_positions
from olive_ext.progress import Progress, progress_or_quiet
from olive_ext.train import distributed
from olive_ext.train.args import check_training_args
from olive_ext.train.device import choose_dtype, device_name, training_device, use_all_cores
from olive_ext.train.dtype_step import choose_dtype_by_step
from olive_ext.train.evaluation import evaluate_model
from olive_ext.train.features import Collator, PromptEncoder, RowDataset, pack, tokenize
from olive_ext.train.loss import LossFunction, unwrap
from olive_ext.train.model import add_adapter, continued_options, load_model, load_tokenizer
from olive_ext.train.options import RESUME_LATEST, RESUME_NO, FinetuneOptions
from olive_ext.train.trainer import TrainStats, make_callback, make_trainer, stop_on_interrupt

if TYPE_CHECKING:
    from olive_ext.data.spec import DatasetSpec

logger = logging.getLogger("olive_ext")

METRICS_FILE = "train_metrics.json"


class TrainingInterrupted(OliveExtError):
    """Ctrl-C (exit 130) or SIGTERM (143, as every other command) during training: a checkpoint was written; the
    message says how to continue."""

    exit_code = 130

    def __init__(self, message: str, hint: str | None = None, sigterm: bool = False) -> None:
        super().__init__(message, hint=hint)
        if sigterm:
            self.exit_code = 143


@dataclass
class FinetuneResult:
    """The adapter folder a run wrote, its metrics, and the trained model when asked for."""

    adapter_dir: Path
    metrics: dict[str, Any]
    model: Any = None  # the trained peft model, when asked for (keep_model)


@dataclass
class TrainingData:
    """The tokenized inputs of a run: tokenizer, prompt encoder, training rows (packed or not), eval set."""

    tokenizer: Any
    encoder: PromptEncoder
    train_set: Any
    eval_set: Any
    rows: list[Any]


@dataclass
class TrainingRun:
    """What the training phase leaves: the (unwrapped) model, the trainer, its stats, and memory peaks."""

    model: Any
    trainer: Any
    stats: TrainStats
    resume: Path | None
    train_peak: float | None


def finetune(
    model_path: str,
    train_spec: DatasetSpec,
    eval_spec: DatasetSpec | None,
    opts: FinetuneOptions,
    out_dir: Path,
    *,
    checkpoint_dir: Path,
    cache_root: Path | None = None,
    progress: Progress | None = None,
    trust_remote_code: bool = False,
    callbacks: list[Any] | None = None,
    keep_model: bool = False,
    adapter_path: str | None = None,
) -> FinetuneResult:
    """Train an adapter on ``model_path``; write ``out_dir/adapter`` (with train_metrics.json) and return it.
    With ``adapter_path``, that adapter trains on (its rank, alpha and target modules) instead of a new one.

    Phases: check the tracker, read and tokenize the data, choose the dtype and load the model with
    its adapter, evaluate the base, train, evaluate the fine-tuned model, save the adapter and metrics.
    """
    from transformers import set_seed

    started = time.perf_counter()
    main = distributed.is_main()
    progress = progress_or_quiet(progress)
    if adapter_path:  # the adapter's own rank, alpha, targets and DoRA setting are trained and recorded
        opts = continued_options(opts, adapter_path)
    opts = within_context(opts, model_path)
    if opts.report_to != "none" and main:  # before any work: say what to install or configure
        _check_tracker(opts.report_to)
    device, threads = training_device(), use_all_cores()
    if distributed.local_world_size() > 1:  # the processes on this machine share its cores
        threads = _share_cores(threads)
    data = prepare_data(model_path, train_spec, eval_spec, opts, trust_remote_code, adapter_path)
    if opts.torch_dtype == "auto" and device == "cuda":  # a GPU: timed on the training step (train/dtype_step.py)
        dtype, dtype_info = choose_dtype_by_step(model_path, opts, data.rows, data.tokenizer.pad_token_id, device,
                                                 cache_root, trust_remote_code)  # fmt: skip
    else:
        dtype, dtype_info = choose_dtype(opts.torch_dtype, device, cache_root)
    set_seed(opts.seed)
    phases: dict[str, float | None] = {}  # peak RSS per phase, each measured on its own
    reset_peak_rss()
    with progress.task(f"loading {Path(model_path).name} ({opts.method}, {dtype}, {device})", total=None):
        model = add_adapter(load_model(model_path, opts, device, dtype, trust_remote_code), opts, adapter_path)
    loss_fn = LossFunction()
    evals: dict[str, Any] = {}
    phases["load"] = _phase_peak_rss_mb()
    if data.eval_set is not None and main:
        evals["base"] = evaluate_phase(model, data, loss_fn, opts, "base", progress, continued=bool(adapter_path))
        phases["base_eval"] = _phase_peak_rss_mb()
    # data-parallel: the other ranks train with this one from here (olive_ext.train.distributed)
    same_dtype = opts.model_copy(update={"torch_dtype": dtype})  # every rank trains in the dtype rank 0 chose
    distributed.send({"model_path": model_path, "train_spec": train_spec, "eval_spec": eval_spec, "opts": same_dtype,
                      "checkpoint_dir": checkpoint_dir, "cache_root": cache_root,
                      "trust_remote_code": trust_remote_code, "adapter_path": adapter_path})  # fmt: skip
    run = train_phase(model, data, loss_fn, opts, checkpoint_dir, device, dtype, callbacks, progress)
    phases["train"] = run.train_peak
    # data-parallel: the tokens of every process (each counted its own share of the batches)
    run.stats.tokens, run.stats.loss_tokens = distributed.total([run.stats.tokens, run.stats.loss_tokens])
    adapter_dir = out_dir / "adapter"
    _refuse_diverged(run.model, opts, run.trainer.state.global_step)
    if not main:  # only rank 0 evaluates and writes
        return FinetuneResult(adapter_dir, {"loss_curve": run.stats.loss_curve}, run.model if keep_model else None)
    try:
        if data.eval_set is not None:
            evals["finetuned"] = evaluate_phase(run.model, data, loss_fn, opts, "finetuned", progress)
            phases["finetuned_eval"] = _phase_peak_rss_mb()
        run.model.save_pretrained(adapter_dir)
        data.tokenizer.save_pretrained(adapter_dir)  # with its chat template: what the adapter was trained with
    except KeyboardInterrupt:  # (SIGTERM arrives as one too): the training is in its last checkpoint
        last = _latest_checkpoint(checkpoint_dir)
        if last is None:
            raise
        raise TrainingInterrupted(
            f"interrupted after training finished (step {run.trainer.state.global_step}), before the adapter was "
            f"written; the trained state is in {last}",
            hint=f"run the same command again: it resumes from {last} and trains no step again",
        ) from None
    phases["save"] = _phase_peak_rss_mb()
    _drop_checkpoints(opts, checkpoint_dir)
    metrics = run_metrics(opts, data, run, loss_fn, evals, device, threads, dtype, dtype_info, started)
    metrics["peak_rss_mb"] = max((v for v in phases.values() if v), default=None)
    metrics["peak_rss_mb_by_phase"] = phases
    (adapter_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return FinetuneResult(adapter_dir, metrics, run.model if keep_model else None)


def _share_cores(threads: int) -> int:
    """Intra-op threads when several training processes run on this machine: its cores split between them."""
    import torch

    share = max(1, threads // distributed.local_world_size())
    torch.set_num_threads(share)
    return share


def within_context(opts: FinetuneOptions, model_path: str) -> FinetuneOptions:
    """``opts`` with max_seq_len cut to the positions the model has (config.json's max_position_embeddings or
    n_positions), said once: rows past them trained on positions the model never learned, and auto-opt then
    refused the same rows ("no eval row fits the model's context")."""
    positions = config_positions(config_json(model_path))
    if positions is None or positions >= opts.max_seq_len:
        return opts
    logger.warning("the model has %d positions: --max_seq_len %d is cut to %d (longer rows are truncated or skipped)",
                   positions, opts.max_seq_len, positions)  # fmt: skip
    return opts.model_copy(update={"max_seq_len": positions})


def follow(message: dict[str, Any], progress: Progress | None = None) -> FinetuneResult:
    """A rank other than 0: train with rank 0 on what it sent (see olive_ext.train.distributed); write nothing."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="olive-ext-rank-") as tmp:
        return finetune(message["model_path"], message["train_spec"], message["eval_spec"], message["opts"],
                        Path(tmp), checkpoint_dir=message["checkpoint_dir"], cache_root=message["cache_root"],
                        progress=progress, trust_remote_code=message["trust_remote_code"],
                        adapter_path=message.get("adapter_path"))  # fmt: skip


def prepare_data(
    model_path: str,
    train_spec: DatasetSpec,
    eval_spec: DatasetSpec | None,
    opts: FinetuneOptions,
    trust_remote_code: bool = False,
    adapter_path: str | None = None,
) -> TrainingData:
    """Read both splits, turn rows into examples, tokenize them (answers only in the loss), pack if asked.

    The tokenizer is ``adapter_path``'s where it carries one: an adapter trained on goes on with its added tokens
    (they were split as plain text, and the adapter saved after lost them)."""
    tokenizer, train_rows, eval_rows = load_inputs(tokenizer_folder(model_path, adapter_path), train_spec, eval_spec,
                                                   trust_remote_code)  # fmt: skip
    train_examples = to_examples(train_rows, train_spec, tokenizer)
    if not opts.train_on_prompt:
        check_answers(train_examples, train_spec)
    eval_examples = to_examples(eval_rows, eval_spec, tokenizer) if eval_spec and eval_rows is not None else []
    _warn_shared(train_examples, eval_examples)
    warn_foreign_tokens(train_spec.text_template, tokenizer)
    encoder = PromptEncoder(tokenizer, _generation_eos(model_path))
    train_set = tokenize(train_examples, encoder, opts.max_seq_len, opts.train_on_prompt, "training")
    eval_set = (
        tokenize(eval_examples, encoder, opts.max_seq_len, opts.train_on_prompt, "eval") if eval_examples else None
    )
    for name, data in (("training", train_set), ("eval", eval_set)):
        if data is not None and (data.dropped_too_long or data.truncated):
            logger.warning("%s data: %d examples truncated to --max_seq_len %d, %d left with no answer and skipped",
                           name, data.truncated, opts.max_seq_len, data.dropped_too_long)  # fmt: skip
    rows = pack(train_set.rows, opts.max_seq_len) if opts.packing else train_set.rows
    return TrainingData(tokenizer, encoder, train_set, eval_set, rows)


def _warn_shared(train: list[Any], evals: list[Any]) -> None:
    """Say when eval examples are also training examples (overlapping splits, or duplicated rows): the eval loss and
    exact match, and auto-opt's accuracy reference measured on the same split, then overstate new data."""
    seen = {e.text for e in train}
    shared = sum(1 for e in evals if e.text in seen)
    if shared:
        logger.warning(
            "%d of %d eval examples are also training examples (the same text): the eval figures overstate how the "
            "model does on new data; give an --eval_split that does not overlap --train_split", shared, len(evals)
        )


# what chat-template control tokens look like across families: <|im_end|>, <|eot_id|>, [INST], <start_of_turn>, </s>
_CONTROL_TOKEN = re.compile(r"<\|[^|<>\s]{1,40}\|>|\[/?INST\]|</?(?:start_of_turn|end_of_turn|s)>")


def warn_foreign_tokens(template: str | None, tokenizer: Any) -> None:
    """Warn about control tokens in a text template that this model's tokenizer does not know as one token (a
    Llama 3 template's <|eot_id|> on a ChatML model): they are trained as pieces of plain text, and the model's own
    end-of-turn is never learnt."""
    if not template:
        return
    foreign = [t for t in dict.fromkeys(_CONTROL_TOKEN.findall(template))
               if len(tokenizer.encode(t, add_special_tokens=False)) > 1]  # fmt: skip
    if foreign:
        own = sorted(t for t in tokenizer.all_special_tokens if _CONTROL_TOKEN.fullmatch(t))
        logger.warning(
            "the text template holds %s, which this model's tokenizer does not know as one token: it is trained as "
            "plain text pieces; this model's control tokens are %s (or drop --text_template: alpaca and chat rows "
            "use the model's own chat template)", ", ".join(foreign), ", ".join(own) or "none",
        )


def check_answers(examples: list[Any], spec: DatasetSpec) -> None:
    """Refuse training data whose answers are all empty (the loss would teach the model to say nothing); warn
    when some are."""
    # the bare answer where the format knows it (a chat template adds its end-of-turn to an empty one)
    empty = sum(1 for e in examples if not (e.reference if e.reference is not None else
                                            e.response.removesuffix(e.answer_end)).strip())  # fmt: skip
    if not empty:
        return
    where = f"{spec.data_files or spec.name} ({spec.split})"
    if empty == len(examples):
        raise UserInputError(
            f"training data {where}: every row's answer is empty, so the loss would teach the model to answer "
            "nothing",
            hint="check the answer column the template ends with (or --response_field); --train_on_prompt trains "
            "on the whole text instead",
        )
    logger.warning("training data %s: %d of %d rows have an empty answer (they teach the model to answer nothing)",
                   where, empty, len(examples))  # fmt: skip


def _refuse_diverged(model: Any, opts: FinetuneOptions, step: int) -> None:
    """Training that left NaN or infinite trained weights (a learning rate far too high) is refused before the adapter
    is written: it was saved and reported as a fine-tune (exit 0) whose every answer is garbage."""
    import torch

    bad = [name for name, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
    if bad:
        raise OliveExtError(
            f"training diverged: after step {step}, {len(bad)} trained weight tensor(s) hold NaN or infinite values "
            f"(e.g. {bad[0]}); nothing was written",
            hint=f"train again with a lower --learning_rate (it was {opts.learning_rate:g})",
        )


def evaluate_phase(
    model: Any, data: TrainingData, loss_fn: LossFunction, opts: FinetuneOptions, which: str, progress: Progress,
    continued: bool = False,
) -> dict[str, Any]:
    """Eval loss (and exact match of greedy answers) of ``which`` model ('base' or 'finetuned') on the eval set.
    ``continued``: the run goes on training a given adapter, so its 'base' is the model with that adapter."""
    label = "fine-tuned" if which == "finetuned" else "base + given adapter" if continued else which
    with progress.task(f"eval: {label} model", total=None):
        result = evaluate_model(
            model,
            data.encoder,
            data.eval_set,
            loss_fn,
            which="finetuned" if continued else which,
            batch_size=opts.per_device_eval_batch_size,
            max_new_tokens=opts.eval_max_new_tokens,
            max_prompt_tokens=opts.max_seq_len,
            with_generation=opts.eval_generate,
        )
    logger.info("%s model: %s", label, _eval_line(result))
    return result


def _padding_free_width(model: Any, opts: FinetuneOptions, device: str) -> int:
    """The hidden size that lets the collator run batches as one unpadded row (0: always pad).

    CPU only, where a pad position costs as much as a real one. Off by default: on the tone task's rows
    (lengths alike) it measured no faster than padding (benchmarks/RESULTS.md, "Fine-tuning step")."""
    if not opts.padding_free or device != "cpu":
        return 0
    return int(getattr(getattr(unwrap(model), "config", None), "hidden_size", 0) or 0)


def train_phase(
    model: Any,
    data: TrainingData,
    loss_fn: LossFunction,
    opts: FinetuneOptions,
    checkpoint_dir: Path,
    device: str,
    dtype: str,
    callbacks: list[Any] | None,
    progress: Progress,
) -> TrainingRun:
    """Run the Trainer (resuming when asked); Ctrl-C leaves a checkpoint and raises TrainingInterrupted."""
    import torch

    # rows one optimizer step takes, over every process (torchrun: each takes its own batch); without the world size
    # an epoch under two processes was two epochs
    per_step = opts.per_device_train_batch_size * opts.gradient_accumulation_steps * distributed.world_size()
    if note := uneven_rows(len(data.rows), opts.per_device_train_batch_size, distributed.world_size()):
        logger.warning("%s", note)
    steps_per_epoch = max(1, math.ceil(len(data.rows) / per_step))
    total_steps = opts.max_steps or max(1, math.ceil(steps_per_epoch * opts.num_train_epochs))
    args = _training_arguments(opts, checkpoint_dir, device, dtype, total_steps, data.eval_set is not None)
    resume = _resume_path(opts.resume_from_checkpoint, Path(args.output_dir))
    if opts.resume_from_checkpoint is None and (resume := _latest_checkpoint(checkpoint_dir, whole=True)):
        # the same command again after an interrupt: this fine-tune's own checkpoint folder, which only an interrupted
        # run of the same options leaves (a finished one removes it, unless --save_steps). "A rerun resumes" said the
        # interrupt, and it started over from step 0, replacing the checkpoint (resuming measured identical)
        logger.warning("resuming from %s, which an interrupted run of this same fine-tune left "
                       "(--resume_from_checkpoint false starts over)", resume)  # fmt: skip
    if resume is not None:
        _check_resume(resume, Path(args.output_dir), opts)
    stats = TrainStats()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    eval_rows = RowDataset(data.eval_set.rows) if data.eval_set else None
    with (
        progress.task(f"fine-tuning ({opts.method})", total=total_steps) as bar,
        stop_on_interrupt(progress.console) as stop,
    ):
        callback = make_callback(stats, bar, stop)
        collate = Collator(data.tokenizer.pad_token_id, hidden_size=_padding_free_width(model, opts, device))
        trainer = make_trainer(
            model, args, RowDataset(data.rows), eval_rows, collate, loss_fn, stats, [callback, *(callbacks or [])]
        )
        try:
            if resume is not None and _finished(resume, total_steps, trainer):
                # the Trainer would train one more step past max_steps; the checkpoint is the trained state
                stats.start_step = trainer.state.global_step
            else:
                trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        finally:
            _finish_tracker_run(opts.report_to)
    # Mixed precision wraps the model's forward in autocast; drop it so that evaluation, merging and
    # callers see the model as loaded (its own dtype), exactly as the saved adapter will be reloaded.
    model = trainer.accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    if stats.interrupted:
        last = _latest_checkpoint(Path(args.output_dir))
        raise TrainingInterrupted(
            f"training interrupted at step {trainer.state.global_step} of {total_steps}; checkpoint saved to {last}",
            sigterm=bool(stop.get("sigterm")),
            hint=f"run the same command again: it resumes from {last} (--resume_from_checkpoint false starts over; "
            "another command's checkpoint is taken with --resume_from_checkpoint FOLDER)",
        )
    train_peak = _phase_peak_rss_mb()  # the checkpoints stay until rank 0 has written the adapter (finetune)
    return TrainingRun(model, trainer, stats, resume, train_peak)


def _finished(checkpoint: Path, total_steps: int, trainer: Any) -> bool:
    """Whether ``checkpoint`` holds a finished training (its last step's checkpoint, left by a run interrupted while
    it evaluated or saved the trained model); if so, its adapter weights and trainer state are loaded instead."""
    from peft import set_peft_model_state_dict
    from peft.utils import load_peft_weights
    from transformers import TrainerState

    state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    if state.global_step < total_steps:
        return False
    set_peft_model_state_dict(trainer.model, load_peft_weights(str(checkpoint), device=str(trainer.args.device)))
    trainer.state = state
    return True


def _drop_checkpoints(opts: FinetuneOptions, checkpoint_dir: Path) -> None:
    """Remove the run's checkpoints once its adapter is written (kept when --save_steps asked for them)."""
    if opts.save_steps:
        logger.info("checkpoints kept in %s", checkpoint_dir)
    elif distributed.is_main():  # only interrupt and last-step checkpoints live here: this run is done with them
        shutil.rmtree(checkpoint_dir, ignore_errors=True)


def run_metrics(
    opts: FinetuneOptions,
    data: TrainingData,
    run: TrainingRun,
    loss_fn: LossFunction,
    evals: dict[str, Any],
    device: str,
    threads: int,
    dtype: str,
    dtype_info: Any,
    started: float,
) -> dict[str, Any]:
    """train_metrics.json: what was trained on what, the loss curve, speed, memory and the evals."""
    import torch

    trainable, total_params = run.model.get_nb_trainable_parameters()
    stats, state = run.stats, run.trainer.state
    steps_run = state.global_step - stats.start_step
    return {
        "method": opts.method,
        "device": device,
        "device_name": device_name(device),
        "threads": threads if device == "cpu" else None,
        "processes": distributed.world_size(),
        "torch_dtype": dtype,
        "dtype_choice": dtype_info,
        "response_only_logits": bool(loss_fn.fast),
        "trainable_parameters": int(trainable),
        "total_parameters": int(total_params),
        "train_examples": len(data.train_set.rows),
        "train_rows": len(data.rows),
        "eval_examples": len(data.eval_set.rows) if data.eval_set else 0,
        "truncated": data.train_set.truncated,
        "dropped_too_long": data.train_set.dropped_too_long,
        "steps": state.global_step,
        "steps_this_run": steps_run,
        "epochs": round(float(state.epoch or 0), 3),
        "resumed_from": str(run.resume) if run.resume else None,
        "final_loss": stats.loss_curve[-1]["loss"] if stats.loss_curve else None,
        # the Trainer's mean over the run's steps: what there is when no step was logged (--logging_steps > steps)
        "mean_train_loss": next(
            (round(float(h["train_loss"]), 5) for h in reversed(state.log_history) if "train_loss" in h), None
        ),
        "loss_curve": stats.loss_curve,
        "eval_curve": stats.eval_curve,
        "train_tokens": stats.tokens,
        "train_target_tokens": stats.loss_tokens,
        "train_seconds": round(stats.seconds, 2),
        "train_tokens_per_second": round(stats.tokens / stats.seconds, 1) if stats.seconds > 0 else None,
        "seconds_per_step": round(stats.seconds / steps_run, 3) if steps_run else None,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "train_peak_rss_mb": run.train_peak,
        "gpu_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None,
        "eval": evals,
        "options": opts.canonical(),
    }


def uneven_rows(rows: int, per_device: int, processes: int) -> str | None:
    """What a data-parallel run does to too few rows: each process's batch is filled by repeating rows (the
    sampler pads), so some rows count twice per step; None when each process gets a batch of its own rows."""
    if processes <= 1 or rows >= per_device * processes:
        return None
    fits = max(1, rows // processes)
    return (f"{rows} training rows for {processes} processes x --per_device_train_batch_size {per_device}: rows are "
            f"repeated to fill every process's batch, so some count twice in a step; give more rows or "
            f"--per_device_train_batch_size {fits}")  # fmt: skip


def load_inputs(
    tokenizer_path: str, train_spec: DatasetSpec, eval_spec: DatasetSpec | None, trust_remote_code: bool = False
) -> tuple[Any, Any, Any]:
    """(tokenizer, train rows, eval rows); every model and data problem is reported in one error."""

    problems: list[UserInputError] = []
    loaded: list[Any] = []
    for load in (
        lambda: load_tokenizer(tokenizer_path, trust_remote_code),
        lambda: load_rows(train_spec),
        lambda: load_rows(eval_spec) if eval_spec else None,
    ):
        try:
            loaded.append(load())
        except UserInputError as e:
            problems.append(e)
            loaded.append(None)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        hints = list(dict.fromkeys(p.hint for p in problems if p.hint))
        raise UserInputError("; ".join(dict.fromkeys(p.message for p in problems)), hint="; ".join(hints) or None)
    return loaded[0], loaded[1], loaded[2]


def _eval_line(result: dict[str, Any]) -> str:
    text = f"eval loss {result['eval_loss']:.4f}"
    if "exact_match" in result:
        text += f", exact match {result['exact_match']:.1f}% of {result['examples']}"
    if "left_out" in result:
        text += f" ({result['left_out']})"
    return text


def _generation_eos(model_path: str) -> list[int]:
    """End-of-turn ids from the model's generation config (chat models often stop on several)."""
    try:
        from transformers import GenerationConfig

        eos = GenerationConfig.from_pretrained(model_path).eos_token_id
    except Exception:
        return []
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, list) else [eos])]


def _training_arguments(opts: FinetuneOptions, checkpoint_dir: Path, device: str, dtype: str, total_steps: int,
                        has_eval: bool) -> Any:  # fmt: skip
    from transformers import TrainingArguments

    logging_steps = opts.logging_steps or max(1, total_steps // 50)
    fields = getattr(TrainingArguments, "__dataclass_fields__", {})
    ckpt = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    kwargs: dict[str, Any] = {
        "output_dir": str(checkpoint_dir),
        "per_device_train_batch_size": opts.per_device_train_batch_size,
        "per_device_eval_batch_size": opts.per_device_eval_batch_size,
        "gradient_accumulation_steps": opts.gradient_accumulation_steps,
        "learning_rate": opts.learning_rate,
        "max_steps": total_steps,
        "warmup_steps": opts.warmup_steps,
        "weight_decay": opts.weight_decay,
        "lr_scheduler_type": "linear",
        "logging_strategy": "steps",
        "logging_steps": logging_steps,
        "eval_strategy": "steps" if has_eval and opts.eval_steps else "no",
        "eval_steps": opts.eval_steps,
        "save_strategy": "steps" if opts.save_steps else "no",
        "save_steps": opts.save_steps or 500,
        "report_to": [] if opts.report_to == "none" else [opts.report_to],
        "seed": opts.seed,
        "bf16": dtype == "bfloat16",
        "fp16": dtype == "float16",
        # transformers 5.2x renamed gradient_checkpointing to activation_checkpointing (the old name warns)
        ckpt: opts.gradient_checkpointing and opts.method != "qlora",
        f"{ckpt}_kwargs": {"use_reentrant": False} if opts.gradient_checkpointing else None,
        "remove_unused_columns": False,
        "prediction_loss_only": True,
        "train_sampling_strategy": "group_by_length" if opts.group_by_length and not opts.packing else "random",
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": device == "cuda",
        "disable_tqdm": True,
        "use_cpu": device == "cpu",
        "log_level": "warning",
    }
    if opts.report_to == "tensorboard" and opts.logging_dir:
        import os

        os.environ["TENSORBOARD_LOGGING_DIR"] = opts.logging_dir
    kwargs.update(check_training_args(opts.training_args))
    return TrainingArguments(**kwargs)


def _check_tracker(name: str) -> None:
    """The tracker is installed, and wandb (unless offline) has credentials: found now, not after loading the model."""
    import os

    _require(name, f"--report_to {name}")
    if name == "wandb" and os.environ.get("WANDB_MODE", "").lower() not in {"offline", "disabled", "dryrun"}:
        import wandb

        try:
            wandb.login(verify=False)  # reads WANDB_API_KEY, ~/.netrc or wandb's settings; prompts on a terminal
        except wandb.errors.UsageError as e:
            raise UserInputError(
                f"--report_to wandb: {e}",
                hint="run `wandb login` or set WANDB_API_KEY; or set WANDB_MODE=offline to write the run "
                "locally (no network) and upload it later with `wandb sync`",
            ) from e


def _finish_tracker_run(name: str) -> None:
    """Close the wandb run transformers opened: it stays open otherwise, and the next fine-tune in the same
    process (a notebook, a recipe with two lora passes) would log into it."""
    import sys

    wandb = sys.modules.get("wandb") if name == "wandb" else None
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def _require(module: str, purpose: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(module, purpose)


def _latest_checkpoint(folder: Path, whole: bool = False) -> Path | None:
    """The highest-numbered checkpoint-N folder in ``folder``; ``whole``: of those with a trainer state and an
    adapter (a SIGKILL can leave an empty one)."""
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()
             and (not whole or ((p / "trainer_state.json").is_file() and any(p.glob("adapter_model.*"))))]  # fmt: skip
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def _resume_path(value: str | None, checkpoint_dir: Path) -> Path | None:
    if not value or value.lower() in RESUME_NO:
        return None
    if value.lower() in RESUME_LATEST:
        last = _latest_checkpoint(checkpoint_dir)
        if last is None:
            raise UserInputError(
                f"--resume_from_checkpoint {value}: this run has no checkpoint yet (looked in {checkpoint_dir})"
            )
        return last
    path = Path(value).expanduser()
    if not (path / "trainer_state.json").exists():
        inner = _latest_checkpoint(path) if path.is_dir() else None
        if inner is None:
            raise UserInputError(f"--resume_from_checkpoint {value} is not a checkpoint folder (no trainer_state.json)")
        path = inner
    return path


def _check_resume(checkpoint: Path, own: Path, opts: FinetuneOptions) -> None:
    """Refuse a checkpoint whose adapter has another shape than this run's (peft's list of size mismatches, 28
    lines, said it); say when it comes from another run: its weights, optimizer and learning-rate schedule are
    restored, so this run's --learning_rate and schedule flags do not apply, and its data was other data."""
    config_file = checkpoint / "adapter_config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text())
        ours = {"lora_r": opts.lora_r, "lora_alpha": opts.lora_alpha}
        theirs = {"lora_r": config.get("r"), "lora_alpha": config.get("lora_alpha")}
        differ = [f"--{k} {ours[k]} (the checkpoint's: {theirs[k]})" for k in ours
                  if theirs[k] is not None and float(theirs[k]) != float(ours[k])]  # fmt: skip
        if differ:
            raise UserInputError(f"--resume_from_checkpoint {checkpoint} holds an adapter of another shape: "
                                 + ", ".join(differ), hint="resume with the flags it was trained with")  # fmt: skip
    if checkpoint.resolve().parent != own.resolve():
        logger.warning("resuming from %s, a checkpoint of another fine-tune (other options or data, or moved): its "
                       "weights, optimizer and learning-rate schedule are restored, so this run's --learning_rate and "
                       "schedule flags do not apply to the steps left", checkpoint)  # fmt: skip


def _phase_peak_rss_mb() -> float | None:
    """The peak RSS since the last reset, then reset, so that the next phase is measured on its own."""
    peak = peak_rss_mb()
    reset_peak_rss()
    return peak
