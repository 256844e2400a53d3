"""Greedy answers by teacher forcing: one forward pass per row instead of token-by-token decoding.

Greedy decoding emits the reference answer (then stops) exactly when every reference token is the
argmax at its position and an end token is the argmax right after it. One forward pass over
``prompt + answer`` shows all those argmaxes at once, so for such a row the greedy output *is*
the reference tokens, without decoding. Every other row is decoded as before, so the outputs, and
the exact match scored on them in the parent, are the ones generation gives:

- a row whose forced argmaxes differ from the reference is decoded (its answer is wrong, or right
  only after normalization: another tokenization, case, a final period);
- a row where any checked argmax leads its runner-up by less than :data:`MIN_MARGIN` logits is
  decoded too: the batched pass and step-by-step decoding may round differently, and only a near
  tie could turn that into another token;
- a row whose answer is longer than ``max_new_tokens`` is decoded (generation would cut it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from olive_ext.evaluate.backends import Forced, LMBackend

# Lead (in logits) of the argmax over the runner-up below which a row is decoded instead; rounding
# differences between a batched pass and step-by-step decoding are ~1e-4 logits in fp32 and int4.
MIN_MARGIN = 0.05


@dataclass
class GreedyRows:
    """Greedy outputs (token ids, end token dropped) and how many rows teacher forcing settled."""

    outputs: list[list[int]]
    forced: int = 0
    decoded: int = 0


def forced_output(forced: Forced, answer: list[int], eos_ids: set[int], max_new_tokens: int) -> bool:
    """Whether greedy decoding emits exactly ``answer`` (then ends or hits ``max_new_tokens``)."""
    stop = len(answer) < max_new_tokens  # at the limit generation ends without an end token
    checked = len(answer) + (1 if stop else 0)
    if forced.tokens[: len(answer)] != answer or (stop and forced.tokens[len(answer)] not in eos_ids):
        return False
    return min(forced.margins[:checked]) >= MIN_MARGIN


def greedy_rows(
    backend: LMBackend,
    prompts: Sequence[list[int]],
    answers: Sequence[list[int]] | None,
    max_new_tokens: int,
) -> GreedyRows:
    """Greedy answers for ``prompts``: teacher-forced where ``answers`` allow it, decoded otherwise."""
    out = GreedyRows([[] for _ in prompts])
    todo = list(range(len(prompts)))
    if answers is not None:
        limit = getattr(backend, "context_length", None)
        eligible = [
            i
            for i in todo
            if prompts[i]
            and 0 < len(answers[i]) <= max_new_tokens
            and (limit is None or len(prompts[i]) + len(answers[i]) < limit)
        ]
        predictions = backend.forced_predictions([(prompts[i], answers[i]) for i in eligible]) if eligible else []
        settled = set()
        for i, forced in zip(eligible, predictions, strict=True):
            if forced_output(forced, answers[i], backend.eos_ids, max_new_tokens):
                out.outputs[i] = list(answers[i])
                settled.add(i)
        out.forced = len(settled)
        todo = [i for i in todo if i not in settled]
    for i in todo:
        out.outputs[i] = backend.generate(prompts[i], max_new_tokens).tokens
    out.decoded = len(todo)
    return out
