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


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Percentage (0-100) of predictions equal to their reference after normalization."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("exact match over zero examples")
    hits = sum(normalize_answer(p) == normalize_answer(r) for p, r in zip(predictions, references, strict=True))
    return 100.0 * hits / len(references)
