"""Exact-match scoring of generated answers, shared by every runtime (PyTorch, onnxruntime-genai)."""

from __future__ import annotations

import re
from collections.abc import Sequence

_WS = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """Case-folded, whitespace-collapsed, without surrounding quotes or a final period."""
    text = _WS.sub(" ", text).strip().casefold()
    text = text.strip("\"'` ")
    return text[:-1].rstrip() if text.endswith(".") else text


def answer_before(prediction: str, end: str | None) -> str:
    """The generation without the text a template puts after its answer (``end``, e.g. ``</answer>``).

    A model trained on ``answer + end`` generates ``end`` before it stops; only the answer is
    compared. Special tokens such as ``<|im_end|>`` are already gone from decoded text.
    """
    marker = (end or "").strip()
    text = prediction.rstrip()
    return text[: -len(marker)] if marker and text.endswith(marker) else prediction


def exact_match(
    predictions: Sequence[str], references: Sequence[str], ends: Sequence[str | None] | None = None
) -> float:
    """Percentage (0-100) of predictions equal to their reference after normalization.

    ``ends``: per example, the literal that follows the answer in the training text; a
    prediction ending with it is compared without it.
    """
    if not references:
        raise ValueError("exact match over zero examples")
    return 100.0 * count_hits(predictions, references, ends) / len(references)


def count_hits(predictions: Sequence[str], references: Sequence[str], ends: Sequence[str | None] | None = None) -> int:
    """How many predictions equal their reference after normalization (``ends`` as in :func:`exact_match`)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    cut = [answer_before(p, e) for p, e in zip(predictions, ends, strict=True)] if ends else list(predictions)
    return sum(normalize_answer(p) == normalize_answer(r) for p, r in zip(cut, references, strict=True))
