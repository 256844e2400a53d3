"""Eval loss and exact-match accuracy of greedy answers (teacher-forced where that is exact), for the base and
the fine-tuned model."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from olive_ext.evaluate.backends.torch_lm import TorchLMBackend
from olive_ext.evaluate.exact_match import exact_match
from olive_ext.evaluate.teacher_forcing import forced_output
from olive_ext.train.features import Collator, PromptEncoder, TokenizedSet
from olive_ext.train.loss import LossFunction, mean_token_loss


def eval_loss(model: Any, data: TokenizedSet, batch_size: int, pad_id: int, loss_fn: LossFunction) -> float:
    """Mean loss per target token over the eval rows (batched by length)."""
    device = next(model.parameters()).device
    collate = Collator(pad_id)
    order = sorted(range(len(data.rows)), key=lambda i: data.lengths[i])
    batches = (collate([data.rows[i] for i in order[start : start + batch_size]])
               for start in range(0, len(order), batch_size))  # fmt: skip
    on_device = ({k: v.to(device) if hasattr(v, "to") else v for k, v in b.items()} for b in batches)
    return mean_token_loss(model, on_device, loss_fn)


def generate(
    model: Any,
    encoder: PromptEncoder,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int,
    max_prompt_tokens: int,
) -> list[str]:
    """Greedy continuations of ``prompts`` (batched, left-padded, stopping at end-of-turn)."""
    import torch

    tok = encoder.tokenizer
    device = next(model.parameters()).device
    encoded = [encoder.prompt(p)[-max_prompt_tokens:] for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    outputs: list[str] = [""] * len(encoded)
    pad = tok.pad_token_id
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    use_cache = base.config.use_cache
    base.config.use_cache = True
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                longest = max(len(encoded[i]) for i in idx)
                ids = torch.full((len(idx), longest), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), longest), dtype=torch.long)
                for row, i in enumerate(idx):
                    seq = encoded[i]
                    ids[row, longest - len(seq) :] = torch.tensor(seq)
                    mask[row, longest - len(seq) :] = 1
                out = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=encoder.eos_ids or None,
                    pad_token_id=pad,
                )
                for row, i in enumerate(idx):
                    outputs[i] = tok.decode(out[row, longest:], skip_special_tokens=True).strip()
    finally:
        base.config.use_cache = use_cache
        model.train(was_training)
    return outputs


def greedy_answers(
    model: Any,
    encoder: PromptEncoder,
    prompts: Sequence[str],
    references: Sequence[str],
    max_new_tokens: int,
    batch_size: int,
    max_prompt_tokens: int,
) -> tuple[list[str], int]:
    """The greedy answers :func:`generate` gives, and how many rows teacher forcing settled without decoding.

    One forward pass over ``prompt + reference`` per row shows whether greedy decoding would emit the
    reference and then stop (olive_ext.evaluate.teacher_forcing, the rule auto-opt scores with); such a
    row's answer is the reference's tokens decoded. Every other row is generated as before, batched."""
    tok = encoder.tokenizer
    encoded = [encoder.prompt(p)[-max_prompt_tokens:] for p in prompts]
    answers = [encoder.piece(r) for r in references]
    eos = set(encoder.eos_ids)
    eligible = [i for i in range(len(prompts)) if encoded[i] and 0 < len(answers[i]) <= max_new_tokens]
    outputs: list[str | None] = [None] * len(prompts)
    if eligible and eos:
        was_training = model.training
        model.eval()
        try:
            backend = TorchLMBackend.from_model(model, eos)
            predictions = backend.forced_predictions([(encoded[i], answers[i]) for i in eligible])
        finally:
            model.train(was_training)
        for i, forced in zip(eligible, predictions, strict=True):
            if forced_output(forced, answers[i], eos, max_new_tokens):
                outputs[i] = tok.decode(answers[i], skip_special_tokens=True).strip()
    todo = [i for i, out in enumerate(outputs) if out is None]
    if todo:
        decoded = generate(model, encoder, [prompts[i] for i in todo], max_new_tokens, batch_size, max_prompt_tokens)
        for i, text in zip(todo, decoded, strict=True):
            outputs[i] = text
    return [o or "" for o in outputs], len(prompts) - len(todo)


GENERATION_BATCH = 32  # decode steps cost about the same at 8 and 32 rows on a CPU: fewer, fuller batches
ANSWER_SLACK_TOKENS = 4  # an answer longer than the longest reference by more than this cannot match exactly


@contextlib.contextmanager
def adapter_state(model: Any, which: str) -> Iterator[None]:
    """Evaluate ``base`` (adapter disabled) or ``finetuned`` (adapter merged into the weights when exact).

    Merging removes the adapter's extra matmuls from every forward: eval runs ~3x faster. It is exact for fp32
    weights only: 4-bit (QLoRA) weights cannot take it, and bf16/fp16 weights round the adapter's small deltas away
    (a bf16 fine-tune of SmolLM2 reported 35% exact match where its saved adapter, as every later step loads it,
    scores 60%), then keep what unmerging cannot take back. There the adapter stays separate.
    """
    if not hasattr(model, "disable_adapter"):
        yield
        return
    if which == "base":
        with model.disable_adapter():
            yield
        return
    import torch

    base = model.get_base_model()
    quantized = getattr(base, "is_quantized", False) or getattr(base, "is_loaded_in_4bit", False)
    if quantized or any(p.dtype in (torch.bfloat16, torch.float16) for p in base.parameters()):
        yield
        return
    model.merge_adapter()
    try:
        yield
    finally:
        model.unmerge_adapter()


def evaluate_model(
    model: Any,
    encoder: PromptEncoder,
    data: TokenizedSet,
    loss_fn: LossFunction,
    *,
    which: str,
    batch_size: int,
    max_new_tokens: int,
    max_prompt_tokens: int,
    with_generation: bool,
    samples: int = 5,
) -> dict[str, Any]:
    """eval_loss, and exact_match (percent) over the examples that have a reference answer."""
    started = time.perf_counter()
    pad = encoder.tokenizer.pad_token_id
    with adapter_state(model, which):
        result: dict[str, Any] = {"eval_loss": round(eval_loss(model, data, batch_size, pad, loss_fn), 5)}
        # rows with an empty answer are not scored, as auto-opt leaves them out: both say "of N" of the same rows
        with_refs = [ex for ex in data.examples if ex.reference is not None and ex.reference.strip()]
        if with_generation and with_refs:
            refs = [str(ex.reference) for ex in with_refs]
            ends = [ex.answer_end for ex in with_refs]  # a template's text after the answer is generated too
            longest = max(len(encoder.piece(r + e)) for r, e in zip(refs, ends, strict=True))
            limit = min(max_new_tokens, longest + ANSWER_SLACK_TOKENS)
            prompts = [ex.prompt for ex in with_refs]
            preds, forced = greedy_answers(
                model, encoder, prompts, refs, limit, max(batch_size, GENERATION_BATCH), max_prompt_tokens
            )
            result["exact_match"] = round(exact_match(preds, refs, ends), 2)
            result["examples"] = len(refs)
            if unscored := len(data.examples) - len(refs):  # said, as auto-opt says it ("exact match of 5" of 6 rows)
                result["left_out"] = f"{unscored} of {len(data.examples)} eval rows not scored (with an empty answer)"
            result["forced_rows"] = forced
            result["max_new_tokens"] = limit
            result["samples"] = [
                {"prompt": ex.prompt[-120:], "reference": ref, "prediction": pred}
                for ex, ref, pred in list(zip(with_refs, refs, preds, strict=True))[:samples]
            ]
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result
