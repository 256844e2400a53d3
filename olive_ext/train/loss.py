"""The causal-LM loss, computing vocabulary logits only where a label is.

A model's forward computes logits for every position (tokens x vocabulary); with the
loss on the response only, most of them are thrown away. For SmolLM2-135M the LM head
(576 x 49152) is about a fifth of the model's FLOPs per token. Here the decoder runs once,
the hidden states at labelled positions are gathered, and only those go through the head.

The head runs over bounded chunks of positions, so evaluation (no autograd) never holds more
than about ``CHUNK_ELEMENTS`` logits at once, whatever the vocabulary (262k for Gemma 3: a batch
of 8 x 256 tokens would be 2 GB of fp32 logits in one piece). Logit scaling and soft-capping
(Granite, Gemma 2/3) are applied as the models do. The fast path is checked against the model's
own loss on one row of the first batch; any model it does not reproduce (custom heads) uses the
full forward.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from olive_ext.train.features import IGNORE

logger = logging.getLogger("olive_ext")


def unwrap(model: Any) -> Any:
    """The transformers model under a peft wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _forward_kwargs(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}


def loss_sum_full(model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
    """(sum of token losses, number of target tokens) from the model's full logits."""
    import torch.nn.functional as F

    out = model(**_forward_kwargs(batch), use_cache=False)
    labels = batch["labels"][:, 1:]
    logits = out.logits[:, :-1]
    mask = labels != IGNORE
    loss = F.cross_entropy(logits[mask].float(), labels[mask], reduction="sum")
    return loss, mask.sum()


CHUNK_ELEMENTS = 2**25  # logits per chunk: 128 MB in fp32 (128 positions of a 262k vocabulary)


def chunk_rows(vocab: int) -> int:
    """Positions per chunk of logits for a ``vocab``-sized head."""
    return max(1, CHUNK_ELEMENTS // max(vocab, 1))


def head_logits(base: Any, hidden: Any) -> Any:
    """The LM head on ``hidden`` with the model's own output scaling and soft-capping."""
    import torch

    config = getattr(base, "config", None)
    logits = base.get_output_embeddings()(hidden)
    scale = getattr(config, "logits_scaling", None)  # Granite divides
    if scale:
        logits = logits / scale
    cap = getattr(config, "final_logit_softcapping", None)  # Gemma 2/3
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def loss_sum_selected(model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
    """(sum of token losses, number of target tokens), with the LM head applied to labelled positions only."""
    import torch
    import torch.nn.functional as F

    base = unwrap(model)
    hidden = base.get_decoder()(**_forward_kwargs(batch), use_cache=False)[0]
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    selected, targets = hidden[:, :-1][mask], labels[mask]
    rows = chunk_rows(base.get_output_embeddings().weight.shape[0])
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, selected.shape[0], rows):
        logits = head_logits(base, selected[start : start + rows])
        total = total + F.cross_entropy(logits.float(), targets[start : start + rows], reduction="sum")
    return total, mask.sum()


def _one_row(batch: dict[str, Any]) -> dict[str, Any]:
    """The row of ``batch`` with the most targets: the check's full forward then holds one row of logits."""
    row = int((batch["labels"] != IGNORE).sum(-1).argmax())
    return {k: v[row : row + 1] if hasattr(v, "shape") and v.dim() > 0 else v for k, v in batch.items()}


class LossFunction:
    """Chooses the fast path once, after checking it against the full forward on a real batch."""

    def __init__(self, enabled: bool = True) -> None:
        self.fast: bool | None = None if enabled else False
        self.check_delta: float | None = None

    def __call__(self, model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
        if type(model).__name__ == "DistributedDataParallel":
            # DDP reduces gradients through its own forward: calling the decoder under it skipped that (and raised
            # AttributeError on the wrapper after rank 0's evaluation before training had chosen the fast path)
            return loss_sum_full(model, batch)
        if self.fast is None:
            self.fast = self._check(model, batch)
        return loss_sum_selected(model, batch) if self.fast else loss_sum_full(model, batch)

    def _check(self, model: Any, batch: dict[str, Any]) -> bool:
        import torch

        base = unwrap(model)
        if not (hasattr(base, "get_decoder") and hasattr(base, "get_output_embeddings")):
            return False
        was_training = model.training
        model.eval()  # dropout off, so both paths see the same function
        try:
            with torch.no_grad():
                row = _one_row(batch)
                fast, n = loss_sum_selected(model, row)
                full, _ = loss_sum_full(model, row)
        except Exception as e:  # an architecture whose decoder cannot be called alone
            logger.debug("response-only logits unavailable (%s); using the full forward", e)
            return False
        finally:
            model.train(was_training)
        denom = max(int(n), 1)
        self.check_delta = abs(float(fast) - float(full)) / denom
        ok = self.check_delta <= 1e-3 * max(1.0, abs(float(full)) / denom)
        if not ok:
            logger.info("response-only logits differ from the model's (%.2e); using the full forward", self.check_delta)
        return ok


def mean_token_loss(model: Any, batches: Iterable[dict[str, Any]], loss_fn: LossFunction) -> float:
    """The loss per target token over ``batches`` (every token weighs alike, whatever batch it is in), in eval mode
    and without gradients; the model's mode is restored. The fine-tune's final eval loss and its --eval_steps curve
    both come from here (the Trainer's own loop averaged batch means)."""
    import torch

    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                loss_sum, n = loss_fn(model, batch)
                total, count = total + float(loss_sum), count + int(n)
    finally:
        model.train(was_training)
    return total / max(count, 1)
