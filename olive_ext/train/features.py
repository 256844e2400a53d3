"""Examples -> token ids and labels: response-only loss, end-of-turn tokens, truncation, packing, padding.

The prompt and the response are tokenized separately and concatenated, exactly as at
inference time (the prompt is tokenized alone, then the model continues), so the model
learns the token boundary it will meet when generating. Each response ends with an
end-of-sequence token (appended when the text lacks one) so the model learns to stop.
A multi-turn chat's earlier assistant turns are tokenized as pieces of their own and
carry loss too (the end-of-turn the chat template puts after each is part of its piece).
Batches are padded to their own longest row, never to ``max_seq_len``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from olive_ext.data.formats import Example, encode_prompt, leading_bos
from olive_ext.errors import UserInputError

IGNORE = -100


@dataclass
class TokenizedSet:
    """Rows ready for the collator, plus what happened on the way."""

    rows: list[dict[str, list[int]]]
    examples: list[Example]  # the examples kept, in row order (before packing)
    dropped_too_long: int = 0
    truncated: int = 0
    loss_tokens: int = 0
    lengths: list[int] = field(default_factory=list)


class PromptEncoder:
    """Tokenizes prompts and responses the same way for training and for generation."""

    def __init__(self, tokenizer: Any, eos_ids: Sequence[int] = ()) -> None:
        self.tokenizer = tokenizer
        self.bos_id: int | None = leading_bos(tokenizer)
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        self.eos_ids = list(dict.fromkeys([*eos, *eos_ids]))

    def prompt(self, text: str) -> list[int]:
        return encode_prompt(self.tokenizer, text, self.bos_id)

    def response(self, text: str) -> list[int]:
        ids = self.piece(text)
        if self.eos_ids and not any(i in self.eos_ids for i in ids):
            ids.append(self.eos_ids[0])  # teach the model to stop after the answer
        return ids

    def piece(self, text: str) -> list[int]:
        """Ids of text that continues a sequence (no BOS, no EOS added)."""
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        return ids

    def prompt_with_labels(self, example: Example, train_on_prompt: bool = False) -> tuple[list[int], list[int]]:
        """The prompt's ids and labels: ignored, except the earlier answers of a multi-turn chat."""
        if not example.prompt_turns:
            ids = self.prompt(example.prompt)
            return ids, ids.copy() if train_on_prompt else [IGNORE] * len(ids)
        ids, labels = [], []
        for k, text in enumerate(example.prompt_turns):
            part = self.prompt(text) if k == 0 else self.piece(text)
            ids += part
            labels += part if train_on_prompt or k % 2 else [IGNORE] * len(part)
        return ids, labels


def tokenize(
    examples: Sequence[Example],
    encoder: PromptEncoder,
    max_seq_len: int,
    train_on_prompt: bool = False,
    what: str = "training",
) -> TokenizedSet:
    """Token ids and labels per example; examples left with no loss token by truncation are dropped."""
    out = TokenizedSet(rows=[], examples=[])
    shortest_dropped: int | None = None
    for ex in examples:
        prompt, prompt_labels = encoder.prompt_with_labels(ex, train_on_prompt)
        response = encoder.response(ex.response)
        ids = prompt + response
        labels = ids.copy() if not prompt else prompt_labels + response
        if len(ids) > max_seq_len:
            ids, labels = ids[:max_seq_len], labels[:max_seq_len]
            out.truncated += 1
        n_loss = sum(1 for t in labels[1:] if t != IGNORE)  # position 0 is never predicted
        if n_loss == 0:
            out.dropped_too_long += 1
            length = len(prompt) + len(response)
            shortest_dropped = length if shortest_dropped is None else min(shortest_dropped, length)
            continue
        out.rows.append({"input_ids": ids, "labels": labels})
        out.examples.append(ex)
        out.lengths.append(len(ids))
        out.loss_tokens += n_loss
    if not out.rows:
        if shortest_dropped is not None:
            raise UserInputError(
                f"every {what} example is cut to nothing by --max_seq_len {max_seq_len}: no answer token is left "
                f"(the shortest example has {shortest_dropped} tokens)",
                hint=f"raise --max_seq_len to at least {shortest_dropped}",
            )
        raise UserInputError(f"the {what} data has no examples")
    return out


def pack(rows: list[dict[str, list[int]]], max_len: int) -> list[dict[str, list[int]]]:
    """First-fit-decreasing packing into rows of at most ``max_len`` tokens.

    ``position_ids`` restart at 0 for each example; with no attention mask, transformers
    builds a block-diagonal causal mask from them, so packed examples do not attend to
    each other. The first token of each example is never a target.
    """
    bins: list[list[dict[str, list[int]]]] = []
    space: list[int] = []
    for row in sorted(rows, key=lambda r: len(r["input_ids"]), reverse=True):
        n = len(row["input_ids"])
        for i, free in enumerate(space):
            if n <= free:
                bins[i].append(row)
                space[i] -= n
                break
        else:
            bins.append([row])
            space.append(max_len - n)
    return [concatenate(group) for group in bins]


def concatenate(rows: Sequence[dict[str, list[int]]]) -> dict[str, list[int]]:
    """One row holding ``rows`` one after another, ``position_ids`` restarting at 0 for each.

    The first token of each example is not a target (it is never one in a row of its own either),
    so the examples' loss terms and their count are the same as when they are batched with padding.
    """
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for row in rows:
        ids += row["input_ids"]
        labels += [IGNORE, *row["labels"][1:]]
        positions += row.get("position_ids") or list(range(len(row["input_ids"])))
    return {"input_ids": ids, "labels": labels, "position_ids": positions}


FLATTEN_MAX_TOKENS = 4096  # a one-row batch's block-diagonal mask is (tokens x tokens)


class Collator:
    """Pads a batch to its longest row (right padding; pad positions carry no loss).

    ``hidden_size`` (the model's) turns on padding-free batches: a batch becomes one row with no
    padding (:func:`concatenate`: the same examples and loss terms, attention kept per example by
    the ``position_ids``) when that costs less. On CPU a pad position costs as much as a real one;
    the one row's attention, with a block-diagonal mask, grows with the square of its length. A
    layer's linear FLOPs per token are about 12 x hidden^2 x 2, its attention's 4 x hidden per
    attended token (halved by causal skipping in a padded row, not in the masked one row), so the
    one row is used when ``T (1 + 2T/k) < n L (1 + L/k)``, ``k = 6 x hidden_size``, and T is at most
    ``FLATTEN_MAX_TOKENS``. 0 never flattens.
    """

    def __init__(self, pad_id: int, multiple_of: int = 1, hidden_size: int = 0) -> None:
        self.pad_id = pad_id
        self.multiple_of = multiple_of
        self.hidden_size = hidden_size

    def flattens(self, lengths: Sequence[int]) -> bool:
        """Whether a batch of rows of these lengths is cheaper as one unpadded row."""
        if self.hidden_size <= 0 or len(lengths) < 2:
            return False
        total, longest, k = sum(lengths), max(lengths), 6 * self.hidden_size
        return total <= FLATTEN_MAX_TOKENS and total * (1 + 2 * total / k) < len(lengths) * longest * (1 + longest / k)

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        if self.flattens([len(r["input_ids"]) for r in rows]):
            rows = [concatenate(rows)]
        longest = max(len(r["input_ids"]) for r in rows)
        if self.multiple_of > 1:
            longest = -(-longest // self.multiple_of) * self.multiple_of
        n = len(rows)
        ids = torch.full((n, longest), self.pad_id, dtype=torch.long)
        labels = torch.full((n, longest), IGNORE, dtype=torch.long)
        packed = "position_ids" in rows[0]
        mask = torch.zeros((n, longest), dtype=torch.long)
        positions = torch.zeros((n, longest), dtype=torch.long)
        for i, row in enumerate(rows):
            k = len(row["input_ids"])
            ids[i, :k] = torch.tensor(row["input_ids"])
            labels[i, :k] = torch.tensor(row["labels"])
            mask[i, :k] = 1
            if packed:
                positions[i, :k] = torch.tensor(row["position_ids"])
                positions[i, k:] = torch.arange(longest - k)  # padding is its own segment
        batch: dict[str, Any] = {"input_ids": ids, "labels": labels, "real_tokens": mask.sum()}
        if packed:
            batch["position_ids"] = positions  # no attention_mask: transformers derives the packed mask
        else:
            batch["attention_mask"] = mask
        return batch


class RowDataset:
    """A list of rows as a map-style dataset (the Trainer's length grouping reads ``input_ids``)."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]
