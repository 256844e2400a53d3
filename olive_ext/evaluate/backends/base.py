"""The backend protocol: what a runtime returns to the evaluator (greedy tokens, timings, NLL, teacher-forced top-2)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Generation:
    """Greedy output for one prompt. ``step_seconds[0]`` covers the prompt and the first token."""

    tokens: list[int] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)


class LMBackend(ABC):
    """A causal LM that generates greedily and scores continuations."""

    eos_ids: set[int]

    @abstractmethod
    def generate(self, prompt: list[int], max_new_tokens: int, min_new_tokens: int = 0) -> Generation:
        """Greedy decoding, stopping at an end token once ``min_new_tokens`` are out."""

    @abstractmethod
    def continuation_nll(self, prompt: list[int], continuation: list[int]) -> float:
        """Sum of -log p(continuation token | everything before it)."""

    @abstractmethod
    def forced_predictions(self, rows: list[tuple[list[int], list[int]]]) -> list[Forced]:
        """Teacher forcing: for each (prompt, answer), one forward pass over ``prompt + answer``;
        the argmax at the ``len(answer) + 1`` positions that predict each answer token and the token after."""


@dataclass
class Forced:
    """What one teacher-forced pass predicts: the argmax token at each answer position (and the one
    after the answer), and its lead over the runner-up logit, which says how safe the argmax is."""

    tokens: list[int]
    margins: list[float]


def top2(logits: Any) -> Forced:
    """Argmax and top-1 minus top-2 gap of each row of a (positions, vocab) numpy array."""
    import numpy as np

    rows = np.asarray(logits, dtype=np.float32)
    best = rows.argmax(axis=-1)
    part = np.partition(rows, -2, axis=-1)
    return Forced([int(t) for t in best], [float(m) for m in part[:, -1] - part[:, -2]])


# fewer shared tokens than this: each row is run whole (keeping a cache for the prefix saves nothing)
MIN_SHARED_PREFIX = 8


def shared_prefix(rows: list[tuple[list[int], list[int]]]) -> int:
    """How many leading prompt tokens every row shares (an instruction or system prompt repeated per row), short of
    each prompt's last token, whose logits predict the answer's first; 0 when fewer than ``MIN_SHARED_PREFIX``.

    Backends with a KV cache run that prefix once and each row's rest on top of it: the same attention over the
    same tokens, so the same predictions up to float rounding (the tone task's rows share 31 of ~48 prompt tokens).
    """
    if len(rows) < 2:
        return 0
    first = rows[0][0]
    shared = min(len(prompt) for prompt, _ in rows) - 1
    for prompt, _ in rows[1:]:
        shared = next((i for i in range(shared) if prompt[i] != first[i]), shared)
    return shared if shared >= MIN_SHARED_PREFIX else 0


class Stopwatch:
    """Times consecutive steps with perf_counter."""

    def __init__(self) -> None:
        self.last = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        elapsed, self.last = now - self.last, now
        return elapsed
