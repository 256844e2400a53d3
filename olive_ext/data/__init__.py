"""Datasets: loading (local files or the hub, split expressions) and formats (template, alpaca, messages, text)."""

from __future__ import annotations

from typing import Any

from olive_ext.data.formats import (
    Example,
    answer_problem,
    detect_format,
    require_answers,
    response_field_of,
    template_fields,
    to_examples,
)
from olive_ext.data.load import load_rows
from olive_ext.data.spec import DatasetSpec

__all__ = [
    "Example",
    "answer_problem",
    "detect_format",
    "load_examples",
    "load_rows",
    "require_answers",
    "response_field_of",
    "template_fields",
    "to_examples",
]


def load_examples(spec: DatasetSpec, tokenizer: Any = None) -> list[Example]:
    """Load a dataset split and turn every row into an :class:`Example`."""
    return to_examples(load_rows(spec), spec, tokenizer)
